"""JSON and protobuf must give a router the same request view, for every valid message."""

import numpy as np
import orjson
import pytest
from google.protobuf import any_pb2, json_format, struct_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seldon_routers.codec import from_json, from_proto
from seldon_routers.errors import BadRequest
from seldon_routers.proto import prediction_pb2 as pb
from seldon_routers.proto import tensor_pb2 as tf
from seldon_routers.request import CustomData

text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=8)
finite = st.floats(allow_nan=False, allow_infinity=False)
json_values = st.recursive(
    st.none() | st.booleans() | finite | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)


def value_msg(x) -> struct_pb2.Value:
    v = struct_pb2.Value()
    json_format.ParseDict(x, v)
    return v


@st.composite
def ndarrays(draw):
    cells = st.one_of(finite, st.booleans(), text, st.none())
    rows = draw(st.integers(0, 3))
    cols = draw(st.integers(0, 3))
    uniform = draw(st.booleans())
    if uniform:
        return [[draw(finite) for _ in range(cols)] for _ in range(rows)]
    return draw(st.lists(st.one_of(cells, st.lists(cells, max_size=3)), max_size=4))


@st.composite
def tensors(draw):
    shape = draw(st.lists(st.integers(0, 3), max_size=3))
    size = int(np.prod(shape)) if shape else draw(st.integers(0, 4))
    values = draw(st.lists(st.floats(), min_size=size, max_size=size))  # NaN and inf too
    return pb.Tensor(shape=shape, values=values)


_TF = {
    tf.DT_FLOAT: ("float_val", st.floats(width=32)),
    tf.DT_DOUBLE: ("double_val", st.floats()),
    tf.DT_INT32: ("int_val", st.integers(-(2**31), 2**31 - 1)),
    tf.DT_UINT8: ("int_val", st.integers(0, 255)),
    tf.DT_INT64: ("int64_val", st.integers(-(2**63), 2**63 - 1)),
    tf.DT_BOOL: ("bool_val", st.booleans()),
    tf.DT_STRING: ("string_val", st.binary(max_size=5)),
    tf.DT_HALF: ("half_val", st.integers(0, 0x7BFF)),
}


@st.composite
def tftensors(draw):
    dtype = draw(st.sampled_from(sorted(_TF)))
    field, values = _TF[dtype]
    shape = draw(st.lists(st.integers(0, 3), max_size=3))
    size = int(np.prod(shape)) if shape else 1
    msg = tf.TensorProto(dtype=dtype)
    msg.tensor_shape.SetInParent()
    for d in shape:
        msg.tensor_shape.dim.add(size=d)
    if draw(st.booleans()) and dtype not in (tf.DT_STRING, tf.DT_HALF):
        np_type = {tf.DT_FLOAT: "<f4", tf.DT_DOUBLE: "<f8", tf.DT_INT32: "<i4", tf.DT_UINT8: "u1",
                   tf.DT_INT64: "<i8", tf.DT_BOOL: "?"}[dtype]
        msg.tensor_content = np.array(draw(st.lists(values, min_size=size, max_size=size)), dtype=np_type).tobytes()
    else:
        getattr(msg, field).extend(draw(st.lists(values, min_size=size, max_size=size)))
    return msg


@st.composite
def messages(draw):
    msg = pb.SeldonMessage()
    meta = msg.meta
    meta.puid = draw(text)
    for k, v in draw(st.dictionaries(text, json_values, max_size=3)).items():
        meta.tags[k].CopyFrom(value_msg(v))
    meta.routing.update(draw(st.dictionaries(text, st.integers(-(2**31), 2**31 - 1), max_size=3)))
    meta.requestPath.update(draw(st.dictionaries(text, text, max_size=3)))
    kind = draw(st.sampled_from(["none", "ndarray", "tensor", "tftensor", "names", "strData", "binData",
                                 "jsonData", "customData"]))
    if kind in ("ndarray", "tensor", "tftensor", "names"):
        msg.data.names.extend(draw(st.lists(text, max_size=3)))
    if kind == "ndarray":
        msg.data.ndarray.extend(draw(ndarrays()))
    elif kind == "tensor":
        msg.data.tensor.CopyFrom(draw(tensors()))
    elif kind == "tftensor":
        msg.data.tftensor.CopyFrom(draw(tftensors()))
    elif kind == "strData":
        msg.strData = draw(text)
    elif kind == "binData":
        msg.binData = draw(st.binary(max_size=20))
    elif kind == "jsonData":
        msg.jsonData.CopyFrom(value_msg(draw(json_values)))
    elif kind == "customData":
        packed = any_pb2.Any()
        packed.Pack(value_msg(draw(json_values)) if draw(st.booleans()) else pb.SeldonMessage(strData=draw(text)))
        msg.customData.CopyFrom(packed)
    return msg


def same_features(a, b):
    if isinstance(a, CustomData):  # packed bytes of a map may be ordered differently
        unpack = lambda c: json_format.MessageToDict(any_pb2.Any(type_url=c.type_url, value=c.value))  # noqa
        assert isinstance(b, CustomData) and unpack(a) == unpack(b)
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray)
        assert a.dtype == b.dtype and a.shape == b.shape
        if a.dtype.kind == "f":
            np.testing.assert_array_equal(a, b)  # NaN == NaN here
        else:
            assert a.tolist() == b.tolist()
    else:
        assert a == b and type(a) is type(b) or (a == b and isinstance(a, (int, float, dict, list)))


def view(decode, *args):
    try:
        decoded = decode(*args)
        (decoded.request if hasattr(decoded, "request") else decoded).features  # decoded on first read
        return decoded
    except BadRequest as exc:  # both decoders must then refuse alike
        return ("refused", type(exc))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(messages())
def test_json_and_protobuf_give_the_same_view(msg):
    from_wire = pb.SeldonMessage.FromString(msg.SerializeToString())
    as_json = orjson.loads(json_format.MessageToJson(msg))
    a, b = view(from_json.request, as_json), view(from_proto.request, from_wire)
    if isinstance(a, tuple) or isinstance(b, tuple):
        assert a == b
        return
    assert a.kind == b.kind
    assert a.feature_names == b.feature_names
    assert a.meta == b.meta
    same_features(a.features, b.features)


@settings(max_examples=150, deadline=None)
@given(messages(), messages(), st.floats(width=32, allow_nan=False, allow_infinity=False), st.booleans())
def test_feedback_views_agree(request, response, reward, with_truth):
    fb = pb.Feedback(request=request, response=response, reward=reward)
    if with_truth:
        fb.truth.CopyFrom(request)
    unit = next(iter(response.meta.routing), "0")
    a = view(from_json.feedback, orjson.loads(json_format.MessageToJson(fb)), unit)
    b = view(from_proto.feedback, pb.Feedback.FromString(fb.SerializeToString()), unit)
    if isinstance(a, tuple) or isinstance(b, tuple):
        assert a == b
        return
    assert a.reward == b.reward
    assert a.routing == b.routing == (response.meta.routing[unit] if unit in response.meta.routing else None)
    assert a.response_meta == b.response_meta
    same_features(a.request.features, b.request.features)
    same_features(a.truth, b.truth)


def test_reward_keeps_its_decimal_value_on_both_transports():
    fb = pb.Feedback(reward=0.9)
    assert from_proto.feedback(fb, "r").reward == 0.9
    assert from_json.feedback({"reward": 0.9}, "r").reward == 0.9


def test_missing_reward_reads_zero_and_says_so():
    fb = from_json.feedback({}, "r")
    assert fb.reward == 0.0 and not fb.reward_given
    assert from_json.feedback({"reward": 0}, "r").reward_given


@pytest.mark.parametrize("reward", [float("nan"), float("inf"), 1e39, "0.5", True])
def test_bad_rewards_are_refused_with_the_field_named(reward):
    with pytest.raises(BadRequest, match="reward"):
        from_json.feedback({"reward": reward}, "r")


@pytest.mark.parametrize("data", [
    {"tensor": {"shape": [3], "values": [1.0]}},
    {"tftensor": {"dtype": "DT_FLOAT", "tensorShape": {"dim": [{"size": "3"}]}, "floatVal": [1, 2]}},
], ids=["tensor", "tftensor"])
def test_both_decoders_name_a_feedbacks_request_and_truth_alike(data):
    """The protobuf decoder said data.tensor for a feedback's request (its default field)."""
    for part in ("request", "truth"):
        body = {part: {"data": data}, "reward": 1}
        errors = []
        proto = json_format.ParseDict(body, pb.Feedback())
        for decode, message in ((from_json.feedback, body), (from_proto.feedback, proto)):
            with pytest.raises(BadRequest) as exc:
                decoded = decode(message, "u")
                decoded.request.features
            errors.append(exc.value.message)
        kind = next(iter(data))
        assert errors[0].startswith(f"{part}.data.{kind}") and errors[1].startswith(f"{part}.data.{kind}"), errors


DEEP_OBJECT = orjson.loads(b'{"a": ' * 900 + b"1" + b"}" * 900)


@pytest.mark.parametrize("message, field", [
    ({"customData": {"@type": "type.googleapis.com/google.protobuf.Struct", "value": DEEP_OBJECT}}, "customData"),
    ({"data": {"tftensor": {"dtype": "DT_FLOAT", "floatVal": DEEP_OBJECT}}}, "data.tftensor"),
    ({"data": {"tftensor": {"dtype": "DT_FLOAT", "tensorShape": DEEP_OBJECT}}}, "data.tftensor"),
], ids=["customData", "tftensor-values", "tftensor-shape"])
def test_json_format_never_sees_a_value_nested_past_the_limit(message, field):
    """json_format recursed into these and its ParseError quoted them: a RecursionError."""
    with pytest.raises(BadRequest, match=f"^{field}: nested deeper than 64 levels"):
        from_json.request(message).features


def test_a_library_message_quoting_the_value_is_cut_short():
    with pytest.raises(BadRequest) as exc:
        from_json.request({"data": {"tftensor": {"dtype": "DT_FLOAT", "floatVal": "y" * 100_000}}}).features
    assert exc.value.message.startswith("data.tftensor: Failed to parse floatVal") and len(exc.value.message) < 300


def test_a_bare_openai_body_reads_as_json_data():
    chat = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    req = from_json.request(chat)
    assert req.kind == "jsonData" and req.features == chat
    assert from_json.request({"prompt": "x", "meta": {"puid": "a"}}).kind == ""  # a SeldonMessage: meta
    assert from_json.request({"jsonData": chat}).features == chat
    assert from_json.request({"other": 1}).kind == ""  # neither: a message without data, as before


def test_a_feedbacks_response_data_is_in_its_view_on_both_transports():
    usage = {"usage": {"total_tokens": 12}, "choices": []}
    fb = from_json.feedback({"request": {"meta": {"puid": "p"}}, "response": {"jsonData": usage}}, "r")
    assert fb.response.kind == "jsonData" and fb.response.features == usage
    bare = from_json.feedback({"response": usage}, "r")  # an OpenAI response, as the pod sent it
    assert bare.response.features == usage
    proto = json_format.ParseDict({"response": {"jsonData": usage}}, pb.Feedback())
    assert from_proto.feedback(proto, "r").response.features == usage
