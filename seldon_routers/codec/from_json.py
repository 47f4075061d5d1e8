"""SeldonMessage and Feedback in the proto3 JSON mapping -> the request view.

Hand-written over plain dicts (orjson-decoded) because json_format is too slow for the
hot path; tests/codec checks it gives the same view as the protobuf decoder.
"""

from __future__ import annotations

import base64
import binascii
from urllib.parse import parse_qs

import numpy as np
import orjson

from ..errors import BadRequest, clip, quote
from ..request import MAX_DEPTH, CustomData, Feedback, Request, empty_meta, too_deep
from . import arrays
from .common import DATA_FIELDS, INT32, reward, routing_for

_JSON_TYPES = ("application/json", "")


def load_body(body: bytes, content_type: str, query: dict) -> object:
    """The message from a form field `json=`, a query argument `?json=`, or a JSON body,
    in that order, as Seldon's wrapper reads it (SeldonClient sends the form field)."""
    if content_type == "application/json" and body and not query:  # the usual request
        return _parse(body)
    kind = content_type.split(";", 1)[0].strip().lower()
    text = None
    if kind == "application/x-www-form-urlencoded":
        try:
            text = parse_qs(body.decode("utf-8"), keep_blank_values=True).get("json", [None])[0]
        except UnicodeDecodeError:
            raise BadRequest("body: form data is not valid UTF-8") from None
    if text is None and query.get("json"):
        text = query["json"][0]
    if text is None:
        if not body:
            raise BadRequest("body: empty; send a SeldonMessage as JSON (body, form field json= or ?json=)")
        if kind not in _JSON_TYPES and not kind.endswith("+json") and kind != "text/plain":
            raise BadRequest(f"body: unsupported Content-Type {quote(content_type)}; use application/json")
        text = body
    return _parse(text)


def _parse(text) -> object:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"body: invalid JSON: {exc}") from None


def _obj(value, field: str) -> dict:
    if not isinstance(value, dict):
        raise BadRequest(f"{field}: expected a JSON object, got {type(value).__name__}")
    return value


def _or_empty(value, empty):
    """An absent (or null) field as empty; a present one as it is, so that a wrong type
    such as [] for an object, or 0 for a list, is reported rather than taken as absent."""
    return empty if value is None else value


def _strings(value, field: str) -> list:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadRequest(f"{field}: expected a list of strings")
    return value


def _int32(value, field: str) -> int:
    if isinstance(value, str):  # proto3 JSON allows integers as strings
        try:
            value = int(value)
        except ValueError:
            raise BadRequest(f"{field}: expected an integer, got {quote(value)}") from None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not INT32[0] <= value <= INT32[1]:
        raise BadRequest(f"{field}: expected a 32-bit integer, got {quote(value)}")
    return value


def meta(value, field: str = "meta") -> dict:
    out = empty_meta()
    if value is None:
        return out
    _obj(value, field)
    puid = value.get("puid")
    if puid is not None:
        if not isinstance(puid, str):
            raise BadRequest(f"{field}.puid: expected a string")
        out["puid"] = puid
    if value.get("tags") is not None:
        out["tags"] = dict(_obj(value["tags"], f"{field}.tags"))
    if value.get("routing") is not None:
        out["routing"] = {k: _int32(v, f"{field}.routing.{k}")
                          for k, v in _obj(value["routing"], f"{field}.routing").items()}
    if value.get("requestPath") is not None:
        paths = _obj(value["requestPath"], f"{field}.requestPath")
        if not all(isinstance(v, str) for v in paths.values()):
            raise BadRequest(f"{field}.requestPath: values must be strings")
        out["requestPath"] = dict(paths)
    return out


def _float32(v):
    """FLT_MAX printed shortest (3.4028235e+38) reads back as a double just above FLT_MAX,
    which json_format refuses; numpy rounds it to FLT_MAX, as protobuf's wire form holds it."""
    if isinstance(v, float) and abs(v) > _FLT_MAX:
        with np.errstate(over="ignore"):
            narrowed = np.float32(v)
        if np.isfinite(narrowed):
            return float(narrowed)
    return v


_FLT_MAX = float(np.finfo(np.float32).max)


def _not_too_deep(value, field: str) -> None:
    """json_format recurses, and its ParseError quotes the value: nested ~1000 deep (JSON
    allows 1024 here) that was a RecursionError, a 500. Refused at a fixed depth instead,
    above anything a gRPC client can send (protobuf nests 100 messages: 49 levels of lists)."""
    if too_deep(value):
        raise BadRequest(f"{field}: nested deeper than {MAX_DEPTH} levels")


def _tftensor(value, field: str):
    from google.protobuf import json_format  # rare form: json_format is exact, speed is moot

    from ..proto.tensor_pb2 import TensorProto

    _not_too_deep(value, field)
    values = value.get("floatVal") if isinstance(value, dict) else None
    if isinstance(values, list):  # see _float32
        value = {**value, "floatVal": [_float32(v) for v in values]}
    try:
        proto = json_format.ParseDict(_obj(value, field), TensorProto())
    except json_format.ParseError as exc:
        raise BadRequest(f"{field}: {clip(str(exc))}") from None
    return arrays.tftensor(proto, field)


def _custom(value, field: str) -> CustomData:
    from google.protobuf import any_pb2, json_format

    from ..proto import prediction_pb2  # noqa: F401  registers seldon.protos types for Any

    _not_too_deep(value, field)
    try:
        packed = json_format.ParseDict(_obj(value, field), any_pb2.Any())
    except (json_format.ParseError, TypeError, KeyError, AttributeError) as exc:  # {"@type": null}: AttributeError
        raise BadRequest(f"{field}: cannot unpack Any: {clip(str(exc))}") from None
    return CustomData(packed.type_url, packed.value)


def _data(value, field: str):
    """DefaultData -> (kind, a function decoding the features, names). The structure is
    checked now; the array is built only if the router reads it (as from_proto does)."""
    _obj(value, field)
    names = _strings(value["names"], f"{field}.names") if value.get("names") is not None else []
    present = [k for k in ("ndarray", "tensor", "tftensor") if value.get(k) is not None]
    if len(present) > 1:
        raise BadRequest(f"{field}: only one of ndarray, tensor, tftensor may be set, got {present}")
    if not present:
        return "", None, names
    kind = present[0]
    if kind == "ndarray":
        nested = value["ndarray"]
        if not isinstance(nested, list):
            raise BadRequest(f"{field}.ndarray: expected a JSON array, got {type(nested).__name__}")
        return kind, lambda: arrays.ndarray(nested, f"{field}.ndarray"), names
    if kind == "tensor":
        t = _obj(value["tensor"], f"{field}.tensor")
        shape = _or_empty(t.get("shape"), [])
        if not isinstance(shape, list):
            raise BadRequest(f"{field}.tensor.shape: expected a list of integers")
        values = _or_empty(t.get("values"), [])
        if not isinstance(values, list):
            raise BadRequest(f"{field}.tensor.values: expected a list of numbers")
        return kind, lambda: arrays.tensor(shape, values, f"{field}.tensor"), names
    tensor = _obj(value["tftensor"], f"{field}.tftensor")
    return kind, lambda: _tftensor(tensor, f"{field}.tftensor"), names


# Fields that make a JSON object a bare OpenAI body rather than a SeldonMessage: a chat,
# completion or embedding request (messages, prompt, input) and a response (choices, usage).
OPENAI_FIELDS = frozenset(("messages", "prompt", "input", "choices", "usage"))


def request(message, headers=None, path: str = "", query=None, field: str = "") -> Request:
    """A SeldonMessage (decoded JSON) -> Request. An object with none of SeldonMessage's
    fields (data, strData, binData, jsonData, customData, meta) and one of OpenAI's
    (messages, prompt, input; choices, usage in a response) is a bare OpenAI body: it
    reads as the jsonData of a SeldonMessage, so the LLM routers take it as posted."""
    prefix = f"{field}." if field else ""
    if type(message) is not dict:
        _obj(message, field or "body")
    if not OPENAI_FIELDS.isdisjoint(message) and "meta" not in message and all(k not in message for k in DATA_FIELDS):
        message = {"jsonData": message}
    kind = None
    for name in DATA_FIELDS:
        if name in message and (message[name] is not None or name == "jsonData"):
            if kind is not None:
                raise BadRequest(f"{field or 'body'}: only one of {', '.join(DATA_FIELDS)} may be set, "
                                 f"got {kind} and {name}")
            kind = name
    raw_meta = message.get("meta")
    req = Request(meta=empty_meta() if raw_meta is None else meta(raw_meta, prefix + "meta"), path=path,
                  query=query or {})
    if headers is not None:
        req.headers = headers
    if kind is None:
        return req
    value = message[kind]
    if kind == "data":
        req.kind, decode, req.feature_names = _data(value, prefix + "data")
        if decode is not None:
            req.defer_features(decode)
        return req
    req.kind = kind
    if kind == "strData":
        if not isinstance(value, str):
            raise BadRequest(f"{prefix}strData: expected a string")
        req.features = value
    elif kind == "binData":
        if not isinstance(value, str):
            raise BadRequest(f"{prefix}binData: expected a base64 string")
        try:
            padded = value + "=" * (-len(value) % 4)  # proto3 JSON accepts unpadded base64
            urlsafe = "-" in value or "_" in value  # ...and the URL-safe alphabet
            req.features = base64.b64decode(padded, altchars=b"-_" if urlsafe else None, validate=True)
        except (binascii.Error, ValueError):
            raise BadRequest(f"{prefix}binData: not valid base64") from None
    elif kind == "jsonData":
        req.features = value
    else:
        req.features = _custom(value, prefix + "customData")
    return req


def feedback(message, unit_id: str, headers=None, path: str = "", query=None) -> Feedback:
    """A Feedback (decoded JSON) -> Feedback, with the routing this unit recorded."""
    _obj(message, "body")
    req = request(_or_empty(message.get("request"), {}), headers, path, query, "request")
    response = _or_empty(message.get("response"), {})
    response_meta = meta(_obj(response, "response").get("meta"), "response.meta")
    truth = message.get("truth")
    return Feedback(
        response=request(response, field="response"),
        request=req,
        response_meta=response_meta,
        reward=reward(message["reward"]) if message.get("reward") is not None else 0.0,
        reward_given=message.get("reward") is not None,
        truth=request(truth, field="truth").features if truth is not None else None,
        routing=routing_for(response_meta, unit_id),
    )
