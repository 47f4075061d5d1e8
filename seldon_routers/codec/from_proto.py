"""SeldonMessage and Feedback protobuf messages -> the request view."""

from __future__ import annotations

from ..request import CustomData, Feedback, Request, empty_meta
from . import arrays
from .common import reward, routing_for


def value(v):
    """google.protobuf.Value -> the plain Python value it holds."""
    kind = v.WhichOneof("kind")
    if kind == "number_value":
        return v.number_value
    if kind == "string_value":
        return v.string_value
    if kind == "bool_value":
        return v.bool_value
    if kind == "struct_value":
        return {k: value(x) for k, x in v.struct_value.fields.items()}
    if kind == "list_value":
        return [value(x) for x in v.list_value.values]
    return None


def meta(m) -> dict:
    out = empty_meta()
    out["puid"] = m.puid
    if m.tags:
        out["tags"] = {k: value(v) for k, v in m.tags.items()}
    if m.routing:
        out["routing"] = dict(m.routing)
    if m.requestPath:
        out["requestPath"] = dict(m.requestPath)
    return out


def request(msg, headers=None, path: str = "", query=None, field: str = "") -> Request:
    """Tensor data is decoded when the router first reads `features` (see Request).
    field: where the message sits (request, truth), so errors name it as from_json's do."""
    req = Request(meta=meta(msg.meta), path=path, query=query)
    if headers is not None:
        req.headers = headers
    kind = msg.WhichOneof("data_oneof")
    if kind is None:
        return req
    if kind == "data":
        data = msg.data
        req.feature_names = list(data.names)
        inner = data.WhichOneof("data_oneof")
        at = f"{field}.data." if field else "data."
        if inner == "ndarray":
            req.defer_features(lambda: arrays.ndarray([value(v) for v in data.ndarray.values], at + "ndarray"))
        elif inner == "tensor":
            req.defer_features(lambda: arrays.tensor(list(data.tensor.shape), list(data.tensor.values), at + "tensor"))
        elif inner == "tftensor":
            req.defer_features(lambda: arrays.tftensor(data.tftensor, at + "tftensor"))
        req.kind = inner or ""
        return req
    req.kind = kind
    if kind == "customData":
        req.features = CustomData(msg.customData.type_url, msg.customData.value)
    elif kind == "jsonData":
        req.features = value(msg.jsonData)
    else:
        req.features = getattr(msg, kind)
    return req


def feedback(msg, unit_id: str, headers=None, path: str = "", query=None) -> Feedback:
    response_meta = meta(msg.response.meta)
    return Feedback(
        request=request(msg.request, headers, path, query, "request"),
        response=request(msg.response, field="response"),
        response_meta=response_meta,
        reward=reward(msg.reward),
        truth=request(msg.truth, field="truth").features if msg.HasField("truth") else None,
        routing=routing_for(response_meta, unit_id),
    )
