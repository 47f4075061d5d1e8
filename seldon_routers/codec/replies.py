"""Route, feedback and error replies, as JSON bytes and as protobuf messages.

Reply meta follows Seldon's wrapper: the request's puid, the router's tags and custom
metrics; plus `routing` for this unit, so feedback can be attributed even when the
executor does not inject routing (upstream issue 1823).
"""

from __future__ import annotations

import base64
import numbers
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
import orjson

from ..proto import prediction_pb2 as pb

_ORJSON = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
_METRIC_TYPES = {"COUNTER": 0, "GAUGE": 1, "TIMER": 2}


def _default(obj):
    if isinstance(obj, Mapping):  # e.g. the read-only tags built-in routers keep ready-made
        return dict(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


def dumps(obj) -> bytes:
    return orjson.dumps(obj, default=_default, option=_ORJSON)


def reply_meta(puid: str, tags: dict, routing: dict | None = None, metrics: list | None = None) -> dict:
    out: dict = {}
    if puid:
        out["puid"] = puid
    if tags:
        out["tags"] = tags
    if routing:
        out["routing"] = routing
    if metrics:
        out["metrics"] = metrics
    return out


UNCACHED = object()  # Routed.decision_tags when the reply must be built afresh


class Routed(NamedTuple):
    """What a Route reply says: the child, and the reply meta's parts."""

    child: int
    unit_id: str
    tags: dict
    puid: str
    metrics: list
    decision_tags: Any = UNCACHED  # the router's own tags: what a cached reply is keyed by

    def meta(self) -> dict:
        return reply_meta(self.puid, self.tags, {self.unit_id: self.child}, self.metrics)


def route_json(routed: Routed) -> bytes:
    return dumps({"data": {"names": ["t:0"], "ndarray": [[routed.child]]}, "meta": routed.meta()})


def feedback_json(meta: dict) -> bytes:
    """A SendFeedback reply: the meta and an empty ndarray, as Seldon's wrapper answers."""
    return dumps({"meta": meta, "data": {"ndarray": []}})


def health_json(status) -> bytes:
    """GET /health/status as Seldon's wrapper answers it: "healthy" without a hook (None
    here), else the hook's value in the form its type takes: a str as strData, bytes as
    binData, a list or array as a tensor, anything else as jsonData."""
    if status is None or isinstance(status, str):
        body = {"strData": "healthy" if status is None else status}
    elif isinstance(status, bytes):
        body = {"binData": base64.b64encode(status).decode()}
    elif isinstance(status, (list, tuple)) or hasattr(status, "shape"):
        array = np.asarray(status)
        body = {"data": {"names": [f"t:{i}" for i in range(array.shape[1])] if array.ndim == 2 else [],
                         "tensor": {"shape": list(array.shape), "values": array.ravel().tolist()}}}
    else:
        body = {"jsonData": status}
    return dumps({**body, "meta": {}})


def error_json(message: str, reason: str, openai_error: tuple | None = None) -> bytes:
    """Seldon's error body: SeldonMicroserviceException.to_dict(); with openai_error
    ((type, code): rate limits, unknown models), OpenAI's `error` object beside it, so an
    OpenAI client and a Seldon client each read the field they know."""
    status = {"status": 1, "info": message, "code": -1, "reason": reason}
    if openai_error is None:
        return dumps({"status": status})
    kind, code = openai_error
    return dumps({"error": {"message": message, "type": kind, "param": None, "code": code}, "status": status})


def error_reply(exc) -> tuple[int, bytes, list]:
    """A RouterError as a REST reply: its status, its body, its extra headers (Retry-After,
    x-ratelimit-*) as lower-case (name, value) pairs."""
    return exc.http_status, error_json(exc.message, exc.reason, exc.openai_error), exc.header_pairs()


# --- protobuf --------------------------------------------------------------------------

def fill_value(v, x) -> None:
    """Sets a google.protobuf.Value from a plain (or numpy) Python value."""
    if x is None:
        v.null_value = 0
    elif isinstance(x, bool):
        v.bool_value = x
    elif isinstance(x, numbers.Real):
        v.number_value = float(x)
    elif isinstance(x, str):
        v.string_value = x
    elif isinstance(x, Mapping):
        fields = v.struct_value.fields
        v.struct_value.SetInParent()
        for k, item in x.items():
            fill_value(fields[str(k)], item)
    elif isinstance(x, (list, tuple)) or hasattr(x, "tolist"):
        items = x.tolist() if hasattr(x, "tolist") else x
        if not isinstance(items, list):  # a numpy scalar
            fill_value(v, items)
            return
        v.list_value.SetInParent()
        for item in items:
            fill_value(v.list_value.values.add(), item)
    else:
        v.string_value = str(x)


def fill_meta(target, meta: dict) -> None:
    if meta.get("puid"):
        target.puid = meta["puid"]
    for k, x in meta.get("tags", {}).items():
        fill_value(target.tags[str(k)], x)
    for k, child in meta.get("routing", {}).items():
        target.routing[k] = child
    for m in meta.get("metrics", ()):
        target.metrics.add(key=str(m["key"]), type=_METRIC_TYPES[m["type"]], value=float(m["value"]),
                           tags={str(k): str(x) for k, x in m.get("tags", {}).items()})


def route_proto(routed: Routed):
    msg = pb.SeldonMessage()
    msg.data.names.append("t:0")
    msg.data.ndarray.values.add().list_value.values.add().number_value = routed.child
    fill_meta(msg.meta, routed.meta())
    return msg


def message_proto(meta: dict):
    msg = pb.SeldonMessage()
    fill_meta(msg.meta, meta)
    return msg


def empty_data_proto_bytes(meta: dict) -> bytes:
    """The meta and an empty ndarray: the wrapper's SendFeedback reply (see feedback_json),
    and its Predict reply for a router."""
    msg = message_proto(meta)
    msg.data.ndarray.SetInParent()  # an empty ndarray, as the wrapper's reply has
    return msg.SerializeToString()


class ProtoRouteReplies:
    """Serialized Route replies, reusing the part that repeats.

    Most routers make a handful of distinct decisions (child plus tags), and building the
    tags Struct dominates the cost of a reply. Protobuf merges concatenated messages, so
    a reply is the cached bytes of (data, routing, tags), keyed by their contents,
    followed by the bytes of the per-request part (puid, metrics). Tags whose values are
    not hashable (nested lists or dicts) are built afresh each time.
    """

    def __init__(self, max_entries: int = 4096):
        self._cache: dict = {}
        self._max = max_entries

    def route(self, routed: Routed) -> bytes:
        tags = routed.decision_tags
        try:
            # type() in the key: True == 1 == 1.0, but protobuf writes a bool, not a number
            key = None if tags is UNCACHED else (
                routed.child, None if tags is None else tuple((k, type(v), v) for k, v in tags.items()))
            static = self._cache.get(key) if key is not None else None
        except TypeError:  # an unhashable tag value
            key = static = None
        if static is None:
            static = route_proto(routed._replace(puid="", metrics=[])).SerializeToString()
            if key is not None:
                if len(self._cache) >= self._max:
                    self._cache.clear()
                self._cache[key] = static
        if not routed.puid and not routed.metrics:
            return static
        tail = pb.SeldonMessage()
        fill_meta(tail.meta, reply_meta(routed.puid, {}, None, routed.metrics))
        return static + tail.SerializeToString()
