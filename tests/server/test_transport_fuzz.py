"""Property tests on the running servers: whatever a client sends, the answer is the
client's fault (4xx / INVALID_ARGUMENT...) or a success, never a server error (5xx,
INTERNAL, UNKNOWN). One server per session serves every example."""

from __future__ import annotations

import json

import grpc
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server_cases import ECHO_UNIT, grpc_call, varint as _varint

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

CONTENT_TYPES = [None, "application/json", "application/x-www-form-urlencoded", "text/plain",
                 "multipart/form-data; boundary=xyz", "application/octet-stream", "application/json; charset=latin-1",
                 "application/x-www-form-urlencoded; charset=utf-8", "\u00ff/\u00fe"]

# Words of the Seldon messages, so generated JSON reaches deep into the decoders.
FIELDS = ["data", "names", "ndarray", "tensor", "shape", "values", "tftensor", "dtype", "tensorShape", "dim", "size",
          "name", "unknownRank", "floatVal", "doubleVal", "intVal", "int64Val", "boolVal", "stringVal", "halfVal",
          "uint32Val", "uint64Val", "tensorContent", "versionNumber", "strData", "binData", "jsonData", "customData",
          "@type", "value", "fields", "meta", "puid", "tags", "routing", "requestPath", "metrics", "key", "type",
          "status", "request", "response", "reward", "truth", ECHO_UNIT, "0"]
WORDS = ["DT_FLOAT", "DT_DOUBLE", "DT_INT32", "DT_UINT8", "DT_INT16", "DT_INT8", "DT_STRING", "DT_INT64", "DT_BOOL",
         "DT_HALF", "DT_UINT32", "DT_UINT64", "DT_INVALID", "1", "-1", "4294967296", "AA==", "AAAAAA==", "-_8", "!!",
         "NaN", "Infinity", "type.googleapis.com/google.protobuf.Value",
         "type.googleapis.com/google.protobuf.Struct", "type.googleapis.com/google.protobuf.ListValue",
         "type.googleapis.com/google.protobuf.Any", "type.googleapis.com/seldon.protos.SeldonMessage",
         "type.googleapis.com/seldon.protos.Feedback", "type.googleapis.com/tensorflow.TensorProto", "/x"]

json_scalars = (st.none() | st.booleans() | st.integers(-(2**65), 2**65) | st.integers(-3, 70000)
                | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12) | st.sampled_from(WORDS))
json_values = st.recursive(
    json_scalars,
    lambda kids: st.lists(kids, max_size=5) | st.dictionaries(st.text(max_size=6), kids, max_size=5),
    max_leaves=30)
seldonish_values = st.recursive(
    json_scalars,
    lambda kids: st.lists(kids, max_size=5) | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=3), kids,
                                                              max_size=5),
    max_leaves=30)
seldonish_messages = st.dictionaries(st.sampled_from(FIELDS), seldonish_values, max_size=5)

REST_PATHS = ["/route", "/send-feedback"]


@pytest.fixture(scope="module")
def session():
    with requests.Session() as s:
        yield s


def check_reply(r: requests.Response) -> None:
    assert r.status_code < 500, (r.status_code, r.text[:500])
    if r.status_code != 200:
        body = r.json()
        assert body["status"]["status"] == 1 and body["status"]["code"] == -1, body


def post(session, url: str, body: bytes, content_type) -> requests.Response:
    headers = {"Content-Type": content_type} if content_type is not None else {}
    return session.post(url, data=body, headers=headers, timeout=10)


@FUZZ
@given(body=st.binary(max_size=300) | st.text(max_size=200).map(str.encode), content_type=st.sampled_from(CONTENT_TYPES),
       path=st.sampled_from(REST_PATHS))
def test_rest_arbitrary_bytes(rest, session, body, content_type, path):
    check_reply(post(session, rest.url + path, body, content_type))


@FUZZ
@given(value=json_values | seldonish_messages, path=st.sampled_from(REST_PATHS),
       form=st.sampled_from(["json-body", "form-field", "query"]))
def test_rest_arbitrary_json(rest, session, value, path, form):
    text = json.dumps(value)
    if form == "json-body":
        r = post(session, rest.url + path, text.encode(), "application/json")
    elif form == "form-field":
        r = session.post(rest.url + path, data={"json": text}, timeout=10)
    else:
        r = session.post(rest.url + path, params={"json": text}, timeout=10)
    check_reply(r)


@FUZZ
@given(message=seldonish_messages)
def test_rest_arbitrary_feedback_parts(rest, session, message):
    """Valid-looking feedback whose request, truth and response are generated."""
    body = {"request": message, "truth": message, "reward": 0.5, "response": {"meta": {"routing": {ECHO_UNIT: 1}}}}
    check_reply(post(session, rest.url + "/send-feedback", json.dumps(body).encode(), "application/json"))
    body = {"request": {"strData": "x"}, "response": message, "reward": 1}
    check_reply(post(session, rest.url + "/send-feedback", json.dumps(body).encode(), "application/json"))


def test_rest_still_serving_after_fuzz(rest):
    assert requests.get(rest.url + "/ready", timeout=5).status_code == 200


# --- gRPC ----------------------------------------------------------------------------------------

GRPC_METHODS = ["/seldon.protos.Router/Route", "/seldon.protos.Router/SendFeedback",
                "/seldon.protos.Generic/Route", "/seldon.protos.Model/SendFeedback"]
SERVER_FAULTS = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}


def _field(number: int, wire: int, payload: bytes) -> bytes:
    return _varint(number << 3 | wire) + payload


field_numbers = st.integers(1, 13) | st.integers(14, 2**29 - 1)
leaf_fields = st.one_of(
    st.builds(lambda n, v: _field(n, 0, _varint(v)), field_numbers, st.integers(0, 2**64 - 1)),
    st.builds(lambda n, b: _field(n, 1, b), field_numbers, st.binary(min_size=8, max_size=8)),
    st.builds(lambda n, b: _field(n, 5, b), field_numbers, st.binary(min_size=4, max_size=4)),
    st.builds(lambda n, b: _field(n, 2, _varint(len(b)) + b), field_numbers, st.binary(max_size=20)),
    # packed varints: Tensor.shape, TensorProto.int_val...
    st.builds(lambda n, vs: _field(n, 2, _varint(len(p := b"".join(map(_varint, vs)))) + p), field_numbers,
              st.lists(st.integers(0, 2**64 - 1), max_size=5)),
)
# Well-formed protobuf wire data (nested messages included) of any shape: it parses, so
# it reaches the decoders with every field number and type the messages have.
wire_messages = st.recursive(
    st.lists(leaf_fields, max_size=6).map(b"".join),
    lambda kids: st.lists(leaf_fields | st.builds(lambda n, m: _field(n, 2, _varint(len(m)) + m),
                                                  st.integers(1, 8), kids), max_size=6).map(b"".join),
    max_leaves=20)


def grpc_check(channel, method: str, raw: bytes) -> None:
    try:
        grpc_call(channel, method, raw)
    except grpc.RpcError as exc:
        assert exc.code() not in SERVER_FAULTS, (exc.code(), exc.details(), raw)


@FUZZ
@given(raw=st.binary(max_size=300), method=st.sampled_from(GRPC_METHODS))
def test_grpc_arbitrary_bytes(echo_channel, raw, method):
    grpc_check(echo_channel, method, raw)


@FUZZ
@given(raw=wire_messages, method=st.sampled_from(GRPC_METHODS))
def test_grpc_arbitrary_wire_messages(echo_channel, raw, method):
    grpc_check(echo_channel, method, raw)


def test_grpc_still_serving_after_fuzz(echo_channel):
    from seldon_routers.proto import prediction_pb2 as pb

    grpc_call(echo_channel, "/seldon.protos.Router/Route", pb.SeldonMessage(strData="ok"))
