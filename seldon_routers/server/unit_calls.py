"""The calls Seldon's python wrapper serves for every unit, whatever its type, answered as
it answers them for a router (seldon-core 1.18.2; tests/interop/test_interop_endpoints.py
runs both side by side):

  predict                 an empty prediction, `data: {names: [], ndarray: []}`, with the
                          request's puid and tags plus the router's tags
  transform-input/output  the message, unchanged (the wrapper's identity when the class
                          has no transform_input / transform_output)
  aggregate               refused: only a COMBINER aggregates (REST 400 as the wrapper;
                          gRPC UNIMPLEMENTED, where the wrapper leaks UNKNOWN)
  metadata (gRPC)         the /metadata document as a SeldonModelMetadata

Seldon's executor never makes these calls on a ROUTER unit; they are answered so that a
client or probe written against the wrapper sees the same thing here. A router's own
predict/transform/aggregate methods, if it has any, are not called.
"""

from __future__ import annotations

from google.protobuf import json_format

from ..codec import from_json, from_proto, replies
from ..errors import NotDefined, RouterFailed
from ..proto import prediction_pb2 as pb
from .dataplane import DataPlane

AGGREGATE = ("aggregate is not defined for a router unit: only a COMBINER aggregates "
             "(this unit answers /route and /send-feedback)")


def _decoded(req):
    req.features  # decode now: malformed data is a 400 naming the field, as for /route
    return req


async def _identity(x):
    return x


async def _refuse(_):
    raise NotDefined(AGGREGATE)


def _predict_meta(dp: DataPlane):
    async def meta(req) -> dict:
        tags = {**req.meta["tags"], **dp.router_tags()}
        return replies.reply_meta(req.puid, tags)
    return meta


# --- REST: decoded JSON in, JSON bytes out --------------------------------------------------

def predict_json(dp: DataPlane, message):
    return dp.serve("predict", "rest", lambda: _decoded(from_json.request(message)), _predict_meta(dp),
                    lambda meta: replies.dumps({"data": {"names": [], "ndarray": []}, "meta": meta}))


def transform_json(dp: DataPlane, endpoint: str, message):
    def checked():
        _decoded(from_json.request(message))
        return message
    return dp.serve(endpoint, "rest", checked, _identity, replies.dumps)


def aggregate_json(dp: DataPlane, message):
    return dp.serve("aggregate", "rest", lambda: message, _refuse, replies.dumps)


# --- gRPC: parsed message in, serialized reply out ------------------------------------------

def predict_proto(dp: DataPlane, msg):
    return dp.serve("predict", "grpc", lambda: _decoded(from_proto.request(msg)), _predict_meta(dp),
                    replies.empty_data_proto_bytes)


def transform_proto(dp: DataPlane, endpoint: str, msg):
    def checked():
        _decoded(from_proto.request(msg))
        return msg
    return dp.serve(endpoint, "grpc", checked, _identity, lambda m: m.SerializeToString())


def aggregate_proto(dp: DataPlane, msg):
    return dp.serve("aggregate", "grpc", lambda: msg, _refuse, bytes)


def metadata_proto(dp: DataPlane) -> bytes:
    """SeldonModelMetadata: `custom` values are strings there, so others are sent as JSON."""
    doc = dict(dp.metadata())
    custom = doc.get("custom") or {}
    doc["custom"] = {str(k): v if isinstance(v, str) else replies.dumps(v).decode() for k, v in custom.items()}
    try:
        # Unknown keys (a V2-style input's "datatype") are dropped, as the wrapper does.
        return json_format.ParseDict(doc, pb.SeldonModelMetadata(), ignore_unknown_fields=True).SerializeToString()
    except (json_format.ParseError, TypeError, ValueError) as exc:
        raise RouterFailed(f"router {dp.name}: metadata is not a SeldonModelMetadata: {exc}") from None
