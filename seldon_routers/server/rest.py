"""REST: Seldon's endpoints as a bare ASGI app (uvicorn), each handler a few lines into the
dataplane. server/flask.py mounts the same handlers in a Flask app.

ENDPOINTS is every path and method Seldon's wrapper serves for a router unit, plus /live,
/ready and /state; openapi/seldon.json (served at /seldon.json) describes exactly these.
HEAD is answered wherever GET is, OPTIONS on every endpoint (200, with `Allow`)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Mapping
from urllib.parse import parse_qs


from ..codec import from_json, replies
from ..errors import BadRequest, MethodNotAllowed, NotFound, NotReady, PayloadTooLarge, RequestTimeout, RouterError
from ..request import Headers
from . import forwarded, unit_calls
from .dataplane import DataPlane

JSON = "application/json"
_TYPES = {JSON: b"application/json", "text/plain": b"text/plain"}
DEFAULT_MAX_BODY = 16 * 1024 * 1024  # bytes; gRPC's receive limit is set to the same
# Seconds a client has to send a whole request, headers and body (--read-timeout): far more
# than any real client needs on a slow link for 16 MiB (~0.5 MB/s), short enough that a client
# trickling a byte at a time cannot hold a connection for long.
DEFAULT_READ_TIMEOUT = 30.0
# The scope key the server's protocol (server/app.py) puts each request's read deadline in
# (the event loop's clock): the body must arrive by then, counted from the request's start.
READ_DEADLINE = "seldon_routers.read_deadline"


@dataclass
class Call:
    """One HTTP request, as either adapter sees it."""

    method: str
    path: str
    body: bytes = b""
    content_type: str = ""
    headers: Mapping = field(default_factory=Headers)
    query: dict = field(default_factory=dict)
    # The values of the --path-header header on this call (server/forwarded.py), and its name.
    forwarded: tuple = ()
    path_header: str = ""

    def request_url(self) -> tuple[str, dict]:
        """The path and query a router sees: the client's original ones when forwarded."""
        return forwarded.resolve(self.forwarded, self.path_header, self.path, self.query)


def _body(call: Call):
    return from_json.load_body(call.body, call.content_type, call.query)


async def _route(dp: DataPlane, call: Call):
    path, query = call.request_url()
    return 200, JSON, await dp.route_json(_body(call), call.headers, path, query)


async def _feedback(dp: DataPlane, call: Call):
    path, query = call.request_url()
    return 200, JSON, await dp.feedback_json(_body(call), call.headers, path, query)


async def _predict(dp: DataPlane, call: Call):
    return 200, JSON, await unit_calls.predict_json(dp, _body(call))


async def _transform_input(dp: DataPlane, call: Call):
    return 200, JSON, await unit_calls.transform_json(dp, "transform-input", _body(call))


async def _transform_output(dp: DataPlane, call: Call):
    return 200, JSON, await unit_calls.transform_json(dp, "transform-output", _body(call))


async def _aggregate(dp: DataPlane, call: Call):
    return 200, JSON, await unit_calls.aggregate_json(dp, _body(call))


@lru_cache(maxsize=1)
def openapi_document() -> bytes:
    """openapi/seldon.json, shipped as package data (setup.cfg), read on first use."""
    return resources.files(__package__).joinpath("openapi", "seldon.json").read_bytes()


async def _openapi(dp, call):
    return 200, JSON, openapi_document()


async def _ping(dp, call):
    return 200, "text/plain", b"pong"


async def _live(dp, call):
    return 200, JSON, b'{"status":"alive"}'


async def _ready(dp, call):
    if not dp.ready:
        raise NotReady("router is not ready (loading or shutting down)")
    if not dp.serving_ready():
        raise NotReady("the state store is unreachable (and --state-required is set)")
    return 200, JSON, b'{"status":"ready"}'


async def _health_status(dp, call):
    return 200, JSON, dp.health_status()


async def _metadata(dp, call):
    return 200, JSON, replies.dumps(dp.metadata())


async def _state(dp, call):
    if dp.admin is not None and dp.admin.restrict_state:
        dp.admin.authorize(call.headers, "GET /state")
    refresh = getattr(dp.store, "refresh", None)  # a shared store's counts (LLM in-flight), read now
    if refresh is not None:
        await refresh()
    return 200, JSON, dp.state_json()


async def _admin(dp: DataPlane, call: Call):
    if dp.admin is None:
        raise NotFound(f"no endpoint {call.path}: admin actions are off (docs/security.md: --admin-token-file)")
    action = call.path[len("/admin"):].strip("/")
    return 200, JSON, await dp.admin.call(dp, action, call.method, call.headers, call.body)


_PREDICT = ({"POST"}, _predict)
_FEEDBACK = ({"POST"}, _feedback)
_HEALTH = ({"GET"}, _health_status)
_METADATA = ({"GET"}, _metadata)
# Path -> (methods, handler), as Seldon's wrapper registers them (wrapper.py, 1.18.2).
ENDPOINTS = {
    "/seldon.json": ({"GET"}, _openapi),
    "/predict": ({"POST", "GET"}, _predict),
    "/api/v1.0/predictions": _PREDICT,
    "/api/v0.1/predictions": _PREDICT,
    "/route": ({"POST", "GET"}, _route),
    "/send-feedback": ({"POST", "GET"}, _feedback),
    "/api/v1.0/feedback": _FEEDBACK,
    "/api/v0.1/feedback": _FEEDBACK,
    "/transform-input": ({"POST", "GET"}, _transform_input),
    "/transform-output": ({"POST", "GET"}, _transform_output),
    "/aggregate": ({"POST", "GET"}, _aggregate),
    "/health/ping": ({"GET"}, _ping),
    "/health/status": _HEALTH,
    "/api/v1.0/health/status": _HEALTH,
    "/metadata": _METADATA,
    "/api/v1.0/metadata": _METADATA,
    "/live": ({"GET"}, _live),
    "/ready": ({"GET"}, _ready),
    "/state": ({"GET"}, _state),
}


def parse_query(raw: str) -> dict:
    return parse_qs(raw, keep_blank_values=True) if raw else {}


def _entry(path: str):
    return ENDPOINTS.get(path) or ENDPOINTS.get(path.rstrip("/") or "/")


def allowed(path: str) -> str | None:
    """The `Allow` header of an endpoint (None for an unknown path)."""
    entry = _entry(path)
    if entry is None:
        return None
    methods = set(entry[0]) | {"OPTIONS"} | ({"HEAD"} if "GET" in entry[0] else set())
    return ", ".join(sorted(methods))


async def handle(dp: DataPlane, call: Call) -> tuple[int, str, bytes, list]:
    """Dispatches one call: (status, content type, body, extra headers). Every error
    becomes Seldon's status JSON with its HTTP code (and OpenAI's error object, and its
    headers, where the error has them: replies.error_reply)."""
    try:
        return (*await _dispatch(dp, call), [])
    except RouterError as exc:
        status, body, headers = replies.error_reply(exc)
        return status, JSON, body, headers


async def _dispatch(dp: DataPlane, call: Call) -> tuple[int, str, bytes]:
    entry = _entry(call.path)
    if entry is None and (call.path == "/admin" or call.path.startswith("/admin/")):
        return await _admin(dp, call)
    if entry is None:
        raise NotFound(f"no endpoint {call.path}; see /route, /send-feedback, /health/ping")
    methods, handler = entry
    if call.method == "OPTIONS":  # as Flask answers it for the wrapper: the methods, in Allow
        return 200, "text/plain", b""
    if call.method not in methods and not (call.method == "HEAD" and "GET" in methods):
        raise MethodNotAllowed(f"{call.method} is not allowed on {call.path}; use {' or '.join(sorted(methods))}")
    return await handler(dp, call)


class RestApp:
    """The ASGI application: reads the body (bounded), calls `handle`, writes the reply."""

    def __init__(self, dp: DataPlane, max_body_size: int = DEFAULT_MAX_BODY,
                 path_header: str = forwarded.DEFAULT_PATH_HEADER, read_timeout: float = DEFAULT_READ_TIMEOUT):
        self.dp = dp
        self.max_body_size = max_body_size
        self.read_timeout = read_timeout
        self.path_header = forwarded.header_name(path_header, "path_header")
        self._path_header = self.path_header.encode("latin-1") if self.path_header else None

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            return await _lifespan(receive, send)
        if scope["type"] != "http":
            return
        content_type = content_length = b""
        original = ()
        for name, value in scope["headers"]:  # ASGI gives lower-case names
            if name == b"content-type":
                content_type = value
            elif name == b"content-length":
                content_length = value
            elif name == self._path_header:
                original += (value,)
        raw_query = scope["query_string"]
        query = parse_query(raw_query.decode("latin-1")) if raw_query else {}
        try:
            body = await read_body(receive, content_length, self.max_body_size,
                                   read_deadline(scope, self.read_timeout))
            call = Call(scope["method"], scope["path"], body, content_type.decode("latin-1"),
                        Headers(scope["headers"]), query, original, self.path_header)
            status, content_type, reply, extra = await handle(self.dp, call)
        except RouterError as exc:  # the body's: too large, too slow, cut short (handle() answers the rest)
            (status, reply, extra), content_type = replies.error_reply(exc), JSON
        headers = [(b"content-type", _TYPES.get(content_type) or content_type.encode()),
                   (b"content-length", str(len(reply)).encode())]
        headers += [(name.encode("latin-1"), value.encode("latin-1")) for name, value in extra]
        if status == 405 or scope["method"] == "OPTIONS":
            allow = allowed(scope["path"])
            if allow:
                headers.append((b"allow", allow.encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": reply})


def read_deadline(scope, timeout: float) -> float | None:
    """When (the loop's clock) this request's body must have arrived by: the deadline the
    server's protocol set at the request's start, else `timeout` from now (another ASGI
    server); None: no bound (timeout 0)."""
    deadline = scope.get(READ_DEADLINE)
    if deadline is None and timeout:
        deadline = asyncio.get_running_loop().time() + timeout
    return deadline


async def read_body(receive, declared: bytes, limit: int, deadline: float | None = None) -> bytes:
    """An ASGI request's whole body, refused (413) past `limit` bytes, declared or read, and
    (408) when it has not all arrived by `deadline` (the loop's clock)."""
    if declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"body: {int(declared)} bytes is over the limit of {limit}")
    if deadline is None:
        return await _read(receive, limit)
    return await _by(deadline, _read(receive, limit))


async def _by(deadline: float, coro):
    """`coro`'s result, or RequestTimeout once the loop's clock passes `deadline`. A timer
    that cancels this task, not asyncio.wait_for: no task per request (and 3.9 has no
    asyncio.timeout). The cancel always lands inside the `await` below: the timer is
    cancelled before anything else runs."""
    task = asyncio.current_task()
    expired = []

    def expire():
        expired.append(True)
        task.cancel()

    timer = asyncio.get_running_loop().call_at(deadline, expire)
    try:
        return await coro
    except asyncio.CancelledError:
        if not expired:
            raise
        if hasattr(task, "uncancel"):  # 3.11+: this cancel is handled, the task is not cancelling
            task.uncancel()
        raise RequestTimeout("body: not received within the read timeout (--read-timeout)") from None
    finally:
        timer.cancel()


async def _read(receive, limit: int) -> bytes:
    message = await receive()
    body = message.get("body", b"")
    if not message.get("more_body", False):  # the usual case: the whole body at once
        if len(body) > limit:
            raise PayloadTooLarge(f"body: over the limit of {limit} bytes")
        return body
    chunks, size, more = [body], len(body), True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":  # a part is no request: nothing may act on it
            raise BadRequest("body: the client closed the connection before sending all of it")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"body: over the limit of {limit} bytes")
        chunks.append(chunk)
        more = message.get("more_body", False)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _lifespan(receive, send):
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


__all__ = ["RestApp", "Call", "handle", "allowed", "read_body", "ENDPOINTS"]
