"""Valid SeldonMessage and Feedback protos, built by hypothesis from their descriptors (every
field, every oneof member: data.tensor/ndarray/tftensor, strData, binData, jsonData as a deep
Struct, customData as a packed Any; meta's puid, tags, routing, requestPath, metrics), with
extreme values: NaN and infinities, the integer types' bounds, long strings, empty and huge
shapes, shapes that do not match the values.

Each message goes to a live `seldon-router serve` process of a learning router: over gRPC
(Router/Route, Router/SendFeedback) and, as its proto3 JSON (json_format.MessageToDict),
over REST (/route, /send-feedback), so both transports see the same messages. Whatever the
message, the answer is a success or the client's fault (never INTERNAL/UNKNOWN, never a
5xx), and a refused call leaves GET /state as it was.

Unlike test_transport_fuzz.py (arbitrary bytes, arbitrary wire data, arbitrary JSON), every
message here is a well-formed SeldonMessage or Feedback (some nested past protobuf's parse
depth limit, on purpose): what is tested is how the router reads what a client can build."""

from __future__ import annotations

import json
import math

import grpc
import pytest
import requests
from google.protobuf import any_pb2, json_format, message, struct_pb2
from google.protobuf.descriptor import FieldDescriptor as F
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seldon_routers.proto import prediction_pb2 as pb
from server_cases import grpc_call, serve_learning

UNIT = "u"
FUZZ = settings(max_examples=150, derandomize=True, database=None, deadline=None,
                suppress_health_check=list(HealthCheck))
SERVER_FAULTS = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}

# --- scalars, at their extremes too ----------------------------------------------------------------

FLOAT32_MAX = 3.4028234663852886e38
doubles = st.floats() | st.sampled_from([0.0, -0.0, 0.5, 1.0, math.nan, math.inf, -math.inf, 1.7976931348623157e308,
                                         5e-324, FLOAT32_MAX, -FLOAT32_MAX])
floats32 = st.floats(width=32) | st.sampled_from([0.0, 1.0, 0.25, math.nan, math.inf, -math.inf, FLOAT32_MAX])


def ints(bits: int, signed: bool):
    lo, hi = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    return st.integers(-3, 5).filter(lambda n: lo <= n <= hi) | st.sampled_from([lo, hi]) | st.integers(lo, hi)


# Past 64 KiB as UTF-8 (built in a map: a failure's report shows the strategy, not the text).
long_texts = st.integers(35_000, 40_000).map(lambda n: "\u00e9" * n)
texts = st.text(max_size=12) | st.sampled_from(["", UNIT, "0", "-1", "\x00", "\U0010ffff"]) | long_texts
SCALARS = {
    F.TYPE_DOUBLE: doubles, F.TYPE_FLOAT: floats32,
    F.TYPE_INT32: ints(32, True), F.TYPE_SINT32: ints(32, True), F.TYPE_SFIXED32: ints(32, True),
    F.TYPE_INT64: ints(64, True), F.TYPE_SINT64: ints(64, True), F.TYPE_SFIXED64: ints(64, True),
    F.TYPE_UINT32: ints(32, False), F.TYPE_FIXED32: ints(32, False),
    F.TYPE_UINT64: ints(64, False), F.TYPE_FIXED64: ints(64, False),
    F.TYPE_BOOL: st.booleans(), F.TYPE_STRING: texts,
    F.TYPE_BYTES: st.binary(max_size=24) | st.integers(65_000, 70_000).map(lambda n: b"\xff" * n),
}

# --- google.protobuf.Value / Struct / ListValue: JSON, and deep ---------------------------------


def nested(depth: int, leaf, as_object: bool):
    value = leaf
    for _ in range(depth):
        value = {"a": value} if as_object else [value]
    return value


json_leaves = st.none() | st.booleans() | doubles | st.text(max_size=6)
json_values = st.recursive(json_leaves, lambda kids: st.lists(kids, max_size=4)
                           | st.dictionaries(st.text(max_size=4), kids, max_size=4), max_leaves=12)
# Each JSON level is three message levels (Value, Struct, its map entry): depth 40 is past
# protobuf's default parse limit of 100 nested messages.
deep_json = st.builds(nested, st.integers(1, 40), json_leaves, st.booleans())
any_json = json_values | deep_json


def value_message(v) -> struct_pb2.Value:
    out = struct_pb2.Value()
    fill(out, v)
    return out


def fill(out: struct_pb2.Value, v) -> None:
    """Writes v into `out` in place: a copy of a deep Value would go through protobuf's parser,
    which refuses past 100 levels, and these are deeper on purpose."""
    if v is None:
        out.null_value = struct_pb2.NULL_VALUE
    elif isinstance(v, bool):
        out.bool_value = v
    elif isinstance(v, float):
        out.number_value = v
    elif isinstance(v, str):
        out.string_value = v
    elif isinstance(v, list):
        out.list_value.SetInParent()
        for x in v:
            fill(out.list_value.values.add(), x)
    else:
        out.struct_value.SetInParent()
        for k, x in v.items():
            fill(out.struct_value.fields[k], x)


values = any_json.map(value_message)
structs = st.dictionaries(st.text(max_size=4), any_json, max_size=4).map(
    lambda d: value_message(d).struct_value)
list_values = st.lists(any_json, max_size=5).map(lambda xs: value_message(xs).list_value)
WELL_KNOWN = {"google.protobuf.Value": values, "google.protobuf.Struct": structs,
              "google.protobuf.ListValue": list_values}

# --- messages from their descriptors -----------------------------------------------------------

# Keys a router looks up: its unit id (meta.routing, meta.tags) and the rest at random.
map_keys = st.sampled_from([UNIT, "other", ""]) | st.text(max_size=4)
# Fields drawn nearer what a router reads, so that many messages are accepted, and learned from.
OVERRIDES = {
    "seldon.protos.Tensor.shape": st.lists(st.integers(0, 4) | st.sampled_from([-1, 2**31 - 1]), max_size=4),
    "seldon.protos.Feedback.reward": floats32 | st.floats(0, 1),
}


def strategy_for(descriptor, depth: int = 0):
    """A strategy of valid messages of `descriptor`'s type: every field maybe set, at most one
    member of each oneof."""
    if descriptor.full_name in WELL_KNOWN:
        return WELL_KNOWN[descriptor.full_name]
    if descriptor.full_name == "google.protobuf.Any":
        return packed_any(depth)
    cls = message_class(descriptor)
    loose = [f for f in descriptor.fields if f.containing_oneof is None]
    parts = {f.name: st.none() | field_values(f, depth) for f in loose}
    oneofs = {o.name: st.none() | st.one_of([st.tuples(st.just(f.name), field_values(f, depth)) for f in o.fields])
              for o in descriptor.oneofs}
    return st.builds(lambda fields, chosen: build(cls, fields, chosen), st.fixed_dictionaries(parts),
                     st.fixed_dictionaries(oneofs))


def field_values(field, depth: int):
    if field.full_name in OVERRIDES:
        return OVERRIDES[field.full_name]
    if is_map(field):
        key, value = field.message_type.fields_by_name["key"], field.message_type.fields_by_name["value"]
        return st.dictionaries(map_keys if key.type == F.TYPE_STRING else single(key, depth), single(value, depth),
                               max_size=3)
    if repeated(field):
        return st.lists(single(field, depth), max_size=5)
    return single(field, depth)


def single(field, depth: int):
    if field.type == F.TYPE_MESSAGE:
        if depth >= 3:  # SeldonMessage holds SeldonMessages (Feedback, Any): a bounded tree
            return st.just(message_class(field.message_type)())
        return st.deferred(lambda: strategy_for(field.message_type, depth + 1))
    if field.type == F.TYPE_ENUM:
        return st.sampled_from([v.number for v in field.enum_type.values]) | st.integers(-1, 99)
    return SCALARS[field.type]


def packed_any(depth: int):
    """An Any holding a message the server knows (the wire types and the JSON ones), or one of a
    type it does not."""
    known = st.sampled_from([pb.SeldonMessage.DESCRIPTOR, pb.DefaultData.DESCRIPTOR, pb.Tensor.DESCRIPTOR,
                             struct_pb2.Value.DESCRIPTOR, struct_pb2.Struct.DESCRIPTOR,
                             struct_pb2.ListValue.DESCRIPTOR]).flatmap(lambda d: strategy_for(d, depth + 1))
    unknown = st.builds(lambda url, raw: any_pb2.Any(type_url=url, value=raw),
                        st.sampled_from(["type.googleapis.com/no.such.Type", "", "x/"]), st.binary(max_size=12))
    return st.builds(pack, known) | unknown


def pack(msg) -> any_pb2.Any:
    out = any_pb2.Any()
    out.Pack(msg)
    return out


def repeated(field) -> bool:
    if hasattr(field, "is_repeated"):  # protobuf 7 has no `label`
        return field.is_repeated
    return field.label == F.LABEL_REPEATED


def is_map(field) -> bool:
    return field.type == F.TYPE_MESSAGE and field.message_type.GetOptions().map_entry


def message_class(descriptor):
    from google.protobuf import message_factory

    return message_factory.GetMessageClass(descriptor)


def build(cls, fields: dict, chosen):
    msg = cls()
    for name, value in fields.items():
        if value is not None:
            assign(msg, msg.DESCRIPTOR.fields_by_name[name], value)
    for choice in chosen.values():
        if choice is not None:
            assign(msg, msg.DESCRIPTOR.fields_by_name[choice[0]], choice[1])
    return msg


def assign(msg, field, value) -> None:
    if is_map(field):
        target = getattr(msg, field.name)
        for k, v in value.items():
            if field.message_type.fields_by_name["value"].type == F.TYPE_MESSAGE:
                target[k].CopyFrom(v)
            else:
                target[k] = v
    elif repeated(field):
        getattr(msg, field.name).extend(value)
    elif field.type == F.TYPE_MESSAGE:
        getattr(msg, field.name).CopyFrom(value)
    else:
        setattr(msg, field.name, value)


seldon_messages = strategy_for(pb.SeldonMessage.DESCRIPTOR)
feedbacks = strategy_for(pb.Feedback.DESCRIPTOR)


def routed(feedback: pb.Feedback, child: int) -> pb.Feedback:
    """The feedback with response.meta.routing naming a child, as a route's reply would."""
    out = pb.Feedback()
    out.CopyFrom(feedback)
    out.response.meta.routing[UNIT] = child
    return out


# Half the feedbacks name a child the router has (0..2), so rewards reach the learning code.
feedback_messages = feedbacks | st.builds(routed, feedbacks, st.integers(-2, 3))

# --- the live server -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server():
    rp = serve_learning(UNIT)
    yield rp
    rp.stop()


@pytest.fixture(scope="module")
def channel(server):
    with grpc.insecure_channel(server.grpc_target) as ch:
        grpc.channel_ready_future(ch).result(timeout=10)
        yield ch


@pytest.fixture(scope="module")
def session():
    with requests.Session() as s:
        yield s


def learned(session, server) -> str:
    r = session.get(server.url + "/state", timeout=10)
    assert r.status_code == 200, r.text
    return json.dumps(r.json()["state"], sort_keys=True)


def over_grpc(channel, method: str, msg) -> grpc.StatusCode:
    try:
        grpc_call(channel, method, msg, timeout=30)
    except grpc.RpcError as exc:
        assert exc.code() not in SERVER_FAULTS, (method, exc.code(), exc.details(), msg)
        return exc.code()
    return grpc.StatusCode.OK


def as_json(msg):
    """The message in proto3 JSON, or None where JSON has no form for it (an Any of an unknown
    type)."""
    try:
        return json_format.MessageToDict(msg)
    except (json_format.Error, message.Error, TypeError, ValueError, RecursionError):
        return None  # (an Any's content past protobuf's depth limit: its JSON needs it parsed)


def over_rest(session, url: str, body) -> int:
    r = session.post(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, timeout=30)
    assert r.status_code < 500, (url, r.status_code, r.text[:500], body)
    return r.status_code


def check_both(server, channel, session, msg, rpc: str, path: str) -> None:
    """msg over gRPC, then its JSON over REST: no server fault, and a refusal changes no state."""
    before = learned(session, server)
    if over_grpc(channel, f"/seldon.protos.Router/{rpc}", msg) != grpc.StatusCode.OK:
        assert learned(session, server) == before, ("grpc", rpc, msg)
    body = as_json(msg)
    if body is None:
        return
    before = learned(session, server)
    if over_rest(session, server.url + path, body) >= 400:
        assert learned(session, server) == before, ("rest", path, body)


@FUZZ
@given(msg=seldon_messages)
def test_route_any_valid_message(server, channel, session, msg):
    check_both(server, channel, session, msg, "Route", "/route")


@FUZZ
@given(msg=feedback_messages)
def test_feedback_any_valid_message(server, channel, session, msg):
    check_both(server, channel, session, msg, "SendFeedback", "/send-feedback")


def test_the_router_learned_from_some_of_them(server, session):
    """Runs after the properties above: the generated feedback reached the bandit, so the
    properties tested its learning code, not only its refusals."""
    assert sum(json.loads(learned(session, server))["pulls"]) > 0
