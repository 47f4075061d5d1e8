"""The graph's front door, an ASGI app: the executor's external REST API.

POST /api/v1.0/predictions (and /api/v0.1/...) runs the graph on a SeldonMessage, POST
/api/v1.0/feedback (and /api/v0.1/...) sends a Feedback through it. `Seldon-Puid` is the
client's, or a new UUID4; it is forwarded to every unit and returned as a header, as the
executor's puid middleware does. Every header of the client's request goes to every unit
call (client.HOP excepted). GET /graph lists the units and where they listen (the runner's
own, for tests and for calling a unit directly); /live and /ready answer 200.
"""

from __future__ import annotations

import json
import logging
import uuid

from .executor import Executor, UnitError
from .wire import failure_json as _error, read_body

log = logging.getLogger("seldon_routers.graph")
PUID = "seldon-puid"
PREDICT = ("/api/v1.0/predictions", "/api/v0.1/predictions")
FEEDBACK = ("/api/v1.0/feedback", "/api/v0.1/feedback")


class Front:
    def __init__(self, executor: Executor, units: dict, pids: dict | None = None):
        self.executor = executor
        self.units = units  # name -> url
        self.pids = pids or {}  # name -> pid, for the units the runner started

    def describe(self) -> bytes:
        p = self.executor.predictor
        return json.dumps({"deployment": p.deployment, "predictor": p.name,
                           "units": {u.name: {"type": u.type or u.implementation, "url": self.units.get(u.name),
                                               "pid": self.pids.get(u.name)}
                                     for u in p.units()}}).encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        puid = next((v for k, v in headers if k == PUID and v), "") or str(uuid.uuid4())
        headers = [(k, v) for k, v in headers if k != PUID] + [("Seldon-Puid", puid)]
        status, reply = await self._handle(scope["method"], scope["path"], body, headers)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"seldon-puid", puid.encode("latin-1")),
                                (b"content-length", str(len(reply)).encode())]})
        await send({"type": "http.response.body", "body": reply})

    async def _handle(self, method: str, path: str, body: bytes, headers: list) -> tuple[int, bytes]:
        if path in ("/live", "/ready", "/graph"):
            if method not in ("GET", "HEAD"):
                return 405, _error(405, f"{method} is not allowed on {path}; use GET")
            return 200, (self.describe() if path == "/graph" else b"{}")
        if path not in PREDICT + FEEDBACK:
            return 404, _error(404, f"no endpoint {path}; see /api/v1.0/predictions, /api/v1.0/feedback, /graph")
        if method != "POST":
            return 405, _error(405, f"{method} is not allowed on {path}; use POST")
        what = "SeldonMessage" if path in PREDICT else "Feedback"
        try:
            doc = json.loads(body)
        except ValueError as exc:
            return 400, _error(400, f"body: expected a {what} as JSON ({exc})")
        except RecursionError:  # nested deeper than the parser recurses (about 1000 levels)
            return 400, _error(400, f"body: expected a {what} as JSON: it nests too deep to read")
        if not isinstance(doc, dict):
            return 400, _error(400, f"body: expected a {what} JSON object, got {type(doc).__name__}")
        try:
            if path in PREDICT:
                return 200, await self.executor.predict(body, headers)
            return 200, await self.executor.feedback(body, headers)
        except UnitError as exc:
            return exc.status, exc.body
        except Exception as exc:  # a bug here is still an answer in Seldon's form, and logged
            log.exception("graph: %s failed", path)
            return 500, _error(500, f"graph runner: {type(exc).__name__}: {exc}")
