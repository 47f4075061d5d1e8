"""The runner's MODEL (TRANSFORMER, COMBINER, ...) units: a small server of Seldon's unit
protocol, started as `python -m seldon_routers.graph.stub_model` with the operator's
environment (PREDICTIVE_UNIT_ID, PREDICTIVE_UNIT_HTTP_SERVICE_PORT, PREDICTIVE_UNIT_PARAMETERS).

With no MODEL_NAME it is a stub: /predict, /transform-input and /transform-output answer the
message they get with the tag `"unit": <its name>` added to meta.tags, so a reply says which
unit made it; /aggregate answers the first message, tagged the same way. With MODEL_NAME
(`module.Class`, imported from the working directory as seldon-core-microservice does) it
serves that class the way the wrapper serves a model: `Class(**parameters)`, `load()` if
defined, `predict(X, feature_names)` (and `transform_input` / `transform_output` /
`aggregate` / `send_feedback` where defined); X is a numpy array for ndarray or tensor
data, the string for strData, the decoded JSON for jsonData. Errors answer 400 or 500 in
Seldon's status JSON.
"""

from __future__ import annotations

import importlib
import json
import os

from .. import params
from ..cli import import_from_cwd
from ..codec import from_json
from ..errors import BadRequest
from .wire import failure_json as _error, read_body


def _tagged(message: dict, name: str) -> dict:
    meta = message.get("meta") if isinstance(message.get("meta"), dict) else {}
    tags = meta.get("tags") if isinstance(meta.get("tags"), dict) else {}
    return {**message, "meta": {**meta, "tags": {**tags, "unit": name}}}


class Stub:
    def __init__(self, name: str):
        self.name = name

    def answer(self, endpoint: str, message: dict) -> dict:
        if endpoint == "/aggregate":
            messages = message.get("seldonMessages")
            if not isinstance(messages, list) or not messages or not isinstance(messages[0], dict):
                raise ValueError("seldonMessages: expected a list of SeldonMessages")
            return _tagged(messages[0], self.name)
        if endpoint == "/send-feedback":
            return {"meta": {"tags": {"unit": self.name}}, "data": {"names": [], "ndarray": []}}
        return _tagged(message, self.name)


def _features(message) -> tuple:
    """(features, names) as the wrapper passes them, decoded by the server's own codec (a
    malformed message is its BadRequest naming the field: a 400)."""
    request = from_json.request(message)
    return request.features, request.feature_names


def _reply(result, names) -> dict:
    if isinstance(result, str):
        return {"strData": result, "meta": {}}
    if isinstance(result, dict):
        return {"jsonData": result, "meta": {}}
    array = result.tolist() if hasattr(result, "tolist") else list(result)
    return {"data": {"names": list(names or []), "ndarray": array}, "meta": {}}


class UserModel:
    """A user's class under the wrapper's model contract (the common subset)."""

    def __init__(self, spec: str, parameters: dict):
        module, _, attr = spec.rpartition(".")
        if not module:
            raise SystemExit(f"MODEL_NAME: expected module.Class, got {spec!r}")
        self.obj = getattr(importlib.import_module(module), attr)(**parameters)
        if hasattr(self.obj, "load"):
            self.obj.load()

    def answer(self, endpoint: str, message: dict) -> dict:
        if endpoint == "/send-feedback":
            if hasattr(self.obj, "send_feedback"):
                features, names = _features(message.get("request") or {})
                self.obj.send_feedback(features, names, message.get("reward"), message.get("truth"))
            return {"meta": {}, "data": {"names": [], "ndarray": []}}
        if endpoint == "/aggregate":
            if not hasattr(self.obj, "aggregate"):
                raise LookupError("aggregate is not defined by this class")
            msgs = message.get("seldonMessages") or []
            return _reply(self.obj.aggregate([_features(m)[0] for m in msgs], [[] for _ in msgs]), [])
        method = {"/predict": "predict", "/transform-input": "transform_input",
                  "/transform-output": "transform_output"}[endpoint]
        if not hasattr(self.obj, method):  # the wrapper's identity for a missing transform
            if method == "predict":
                raise LookupError("predict is not defined by this class")
            return message
        features, names = _features(message)
        return _reply(getattr(self.obj, method)(features, names), names)


ENDPOINTS = ("/predict", "/transform-input", "/transform-output", "/aggregate", "/send-feedback")


def app(model):
    async def asgi(scope, receive, send):
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        path = scope["path"]
        if path == "/health/ping":
            status, reply = 200, b"pong"
        elif path in ENDPOINTS:
            try:
                status, reply = 200, json.dumps(model.answer(path, json.loads(body or b"{}"))).encode()
            except (BadRequest, ValueError, KeyError, LookupError, TypeError) as exc:
                status, reply = 400, _error(400, f"{path}: {exc}")
            except Exception as exc:  # a user's model failing is its 500, not the server's end
                status, reply = 500, _error(500, f"{path}: {type(exc).__name__}: {exc}")
        else:
            status, reply = 404, _error(404, f"no endpoint {path}")
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(reply)).encode())]})
        await send({"type": "http.response.body", "body": reply})
    return asgi


def main() -> None:
    import uvicorn

    name = os.environ.get("PREDICTIVE_UNIT_ID", "0")
    spec = os.environ.get("MODEL_NAME", "")
    if spec:
        import_from_cwd()
        model = UserModel(spec, params.from_seldon_json(os.environ.get("PREDICTIVE_UNIT_PARAMETERS", "")))
    else:
        model = Stub(name)
    port = int(os.environ.get("PREDICTIVE_UNIT_HTTP_SERVICE_PORT", "9000"))
    uvicorn.run(app(model), host="127.0.0.1", port=port, lifespan="off", access_log=False, log_level="warning")


if __name__ == "__main__":
    main()
