"""gRPC transport, end to end: a `seldon-router serve` process, called through a plain
grpc channel with seldon.protos messages, exactly as the executor and SeldonClient call it.
Where a message has a JSON twin, the router must see the same thing over REST."""

from __future__ import annotations

import contextlib
import math

import grpc
import pytest
import requests
from grpc_health.v1 import health_pb2

from seldon_routers.proto import prediction_pb2 as pb
from server_cases import (ECHO_UNIT, FEEDBACK_ERRORS, PAYLOAD_IDS, PAYLOADS, ROUTE_ERRORS, expected_view, fb,
                          grpc_call, grpc_error, post_json, reply_dict, to_proto, view_core)

ROUTE_METHODS = ["/seldon.protos.Router/Route", "/seldon.protos.Generic/Route"]
FEEDBACK_METHODS = ["/seldon.protos.Router/SendFeedback", "/seldon.protos.Generic/SendFeedback",
                    "/seldon.protos.Model/SendFeedback"]


def grpc_view(reply, unit: str = ECHO_UNIT) -> dict:
    return reply_dict(reply)["meta"]["tags"][unit]["view"]


def rest_state(url: str) -> dict:
    return requests.get(url + "/state", timeout=5).json()["state"]


@contextlib.contextmanager
def state_unchanged(url: str):
    before = rest_state(url)
    yield
    assert rest_state(url) == before


# --- payloads: the same view as REST -------------------------------------------------------------

@pytest.mark.parametrize("method", ROUTE_METHODS)
@pytest.mark.parametrize("payload", PAYLOADS, ids=PAYLOAD_IDS)
def test_route_payloads_same_view_as_rest(echo, echo_channel, payload, method):
    reply = grpc_call(echo_channel, method, to_proto(payload.message), metadata=[("x-echo-trace", "g1")])
    view = grpc_view(reply)
    assert view_core(view) == expected_view(payload)
    assert view["path"] == method
    assert view["headers"] == {"x-echo-trace": "g1"}
    assert view["query"] == {}
    rest_view = post_json(echo.url + "/route", payload.message).json()["meta"]["tags"][ECHO_UNIT]["view"]
    assert view_core(view) == view_core(rest_view)


def test_route_reply(echo_channel):
    reply = grpc_call(echo_channel, "/seldon.protos.Router/Route",
                      pb.SeldonMessage(strData="x", meta=pb.Meta(puid="g-7")))
    assert list(reply.data.names) == ["t:0"]
    assert reply.data.WhichOneof("data_oneof") == "ndarray"
    assert reply_dict(reply)["data"]["ndarray"] == [[0]]
    assert reply.meta.puid == "g-7"
    assert dict(reply.meta.routing) == {ECHO_UNIT: 0}
    assert list(reply.meta.tags) == [ECHO_UNIT]
    assert not reply.HasField("status")


def test_binary_metadata_header(echo_channel):
    reply = grpc_call(echo_channel, "/seldon.protos.Router/Route", pb.SeldonMessage(strData="h"),
                      metadata=[("x-echo-bin", b"\x00\xff"), ("x-echo-a", "1"), ("x-echo-a", "2")])
    headers = grpc_view(reply)["headers"]
    assert headers == {"x-echo-bin": "\x00\xff", "x-echo-a": "1,2"}


# --- feedback -----------------------------------------------------------------------------------

@pytest.mark.parametrize("method", FEEDBACK_METHODS)
def test_feedback_applies(echo, echo_channel, method):
    message = fb(routing=1, reward=0.9,
                 request={"data": {"names": ["f"], "ndarray": [[1, 2]]}, "meta": {"puid": "fb-g"}},
                 truth={"data": {"ndarray": [[7]]}})
    before = rest_state(echo.url)
    reply = grpc_call(echo_channel, method, to_proto(message, pb.Feedback))
    assert reply.meta.puid == "fb-g"
    after = rest_state(echo.url)
    assert after["applied"] == before["applied"] + 1 and after["routed"] == before["routed"]
    grpc_seen = after["last_feedback"]
    assert grpc_seen["routing"] == 1 and grpc_seen["reward"] == 0.9
    assert grpc_seen["request"]["path"] == method
    # the same feedback over REST: the router sees the same thing
    assert post_json(echo.url + "/send-feedback", message).status_code == 200
    rest_seen = rest_state(echo.url)["last_feedback"]
    for key in ("routing", "reward", "truth", "response_meta"):
        assert grpc_seen[key] == rest_seen[key], key
    assert view_core(grpc_seen["request"]) == view_core(rest_seen["request"])


# --- the other services ------------------------------------------------------------------------

@pytest.mark.parametrize("method", [  # Predict and the transforms answer as the wrapper's: test_unit_calls.py
    "/seldon.protos.Generic/Aggregate", "/seldon.protos.Router/Predict", "/seldon.protos.Nope/Route",
])
def test_unimplemented(echo, echo_channel, method):
    with state_unchanged(echo.url):
        err = grpc_error(echo_channel, method, pb.SeldonMessage(strData="x"))
    assert err.code() == grpc.StatusCode.UNIMPLEMENTED


@pytest.mark.parametrize("service", ["", "seldon.protos.Router", "seldon.protos.Generic", "seldon.protos.Model"])
def test_health_check_serving(echo_channel, service):
    reply = grpc_call(echo_channel, "/grpc.health.v1.Health/Check", health_pb2.HealthCheckRequest(service=service),
                      reply_cls=health_pb2.HealthCheckResponse)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_health_check_unknown_service(echo_channel):
    err = grpc_error(echo_channel, "/grpc.health.v1.Health/Check", health_pb2.HealthCheckRequest(service="nope"),
                     reply_cls=health_pb2.HealthCheckResponse)
    assert err.code() == grpc.StatusCode.NOT_FOUND


# --- errors --------------------------------------------------------------------------------------

# The invalid messages that protobuf can carry (the rest are JSON typing errors).
PROTO_ROUTE_ERRORS = [b for b in ROUTE_ERRORS if b.id in {
    "tensor-shape-mismatch", "tensor-shape-negative", "tensor-shape-overflow", "tensor-zero-size-huge-dims",
    "tftensor-shape-mismatch",
    "tftensor-shape-overflow", "tftensor-dtype-unsupported", "tftensor-negative-dim", "tftensor-content-size",
    "tftensor-uint8-range", "tftensor-half-range"}]
PROTO_FEEDBACK_ERRORS = [b for b in FEEDBACK_ERRORS if b.id in {
    "no-response", "no-routing", "routing-other-unit", "routing-too-big", "routing-99", "routing-negative"}]


@pytest.mark.parametrize("method", ROUTE_METHODS)
@pytest.mark.parametrize("bad", PROTO_ROUTE_ERRORS, ids=[b.id for b in PROTO_ROUTE_ERRORS])
def test_route_rejects_like_rest(echo, echo_channel, bad, method):
    with state_unchanged(echo.url):
        err = grpc_error(echo_channel, method, to_proto(bad.body))
        rest = post_json(echo.url + "/route", bad.body)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    for name in bad.names:
        assert name in err.details()
    assert rest.status_code == 400 and rest.json()["status"]["info"] == err.details()


@pytest.mark.parametrize("method", FEEDBACK_METHODS)
@pytest.mark.parametrize("bad", PROTO_FEEDBACK_ERRORS, ids=[b.id for b in PROTO_FEEDBACK_ERRORS])
def test_feedback_rejects_like_rest(echo, echo_channel, bad, method):
    with state_unchanged(echo.url):
        err = grpc_error(echo_channel, method, to_proto(bad.body, pb.Feedback))
        rest = post_json(echo.url + "/send-feedback", bad.body)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    for name in bad.names:
        assert name in err.details()
    assert rest.status_code == 400 and rest.json()["status"]["info"] == err.details()


def _tftensor(dtype: int) -> pb.SeldonMessage:
    msg = pb.SeldonMessage()
    msg.data.tftensor.dtype = dtype
    return msg


@pytest.mark.parametrize("message,names", [
    (_tftensor(999), ("data.tftensor.dtype",)),  # an enum value no DataType has
    (_tftensor(0), ("data.tftensor.dtype",)),  # DT_INVALID
], ids=["dtype-999", "dtype-invalid"])
def test_route_rejects_proto_only(echo, echo_channel, message, names):
    with state_unchanged(echo.url):
        err = grpc_error(echo_channel, "/seldon.protos.Router/Route", message)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    for name in names:
        assert name in err.details()


@pytest.mark.parametrize("reward", [math.nan, math.inf, -math.inf])
def test_feedback_rejects_non_finite_reward(echo, echo_channel, reward):
    message = to_proto(fb(routing=0), pb.Feedback)
    message.reward = reward
    with state_unchanged(echo.url):
        err = grpc_error(echo_channel, "/seldon.protos.Router/SendFeedback", message)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "reward" in err.details()


UNDECODABLE = {
    "truncated-varint": b"\x08\xff",
    "length-past-end": b"\x0a\x10abc",  # field 1 claims 16 bytes, has 3
    "bad-wire-type": b"\x0f",
    "field-zero": b"\x00\x01",
    "random": bytes(range(255, 0, -7)),
}
# SeldonMessage bytes that are wrong inside: sent as is to Route, as Feedback.request to
# SendFeedback.
UNDECODABLE_INSIDE = {
    "strData-not-utf8": b"\x2a\x02\xff\xfe",
    "tensor-truncated": b"\x1a\x03\x12\x05\x00",  # data.tensor with a truncated body
    "meta-puid-not-utf8": b"\x12\x03\x0a\x01\xc3",
    "tag-key-not-utf8": b"\x12\x07\x12\x05\x0a\x01\xff\x12\x00",
}


def _undecodable(name: str, method: str) -> bytes:
    if name in UNDECODABLE:
        return UNDECODABLE[name]
    raw = UNDECODABLE_INSIDE[name]
    return raw if method.endswith("/Route") else b"\x0a" + bytes([len(raw)]) + raw


@pytest.mark.parametrize("method", ROUTE_METHODS + FEEDBACK_METHODS)
@pytest.mark.parametrize("name", [*UNDECODABLE, *UNDECODABLE_INSIDE])
def test_undecodable_bytes(echo, echo_channel, method, name):
    with state_unchanged(echo.url):
        err = grpc_error(echo_channel, method, _undecodable(name, method))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, (err.code(), err.details())
    assert "request" in err.details()


def test_oversized_message(served, small_channel):
    small = served["small"]
    big = pb.SeldonMessage(strData="x" * 1200)
    with state_unchanged(small.url):
        err = grpc_error(small_channel, "/seldon.protos.Router/Route", big)
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err.details()
        err = grpc_error(small_channel, "/seldon.protos.Router/SendFeedback",
                         pb.Feedback(request=big, response=pb.SeldonMessage(meta=pb.Meta(routing={ECHO_UNIT: 0}))))
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err.details()


def test_reply_larger_than_request_limit(served, small_channel):
    """--max-body-size bounds requests; a reply over it (here the echo of a 900-byte
    request) still goes out, as it does over REST."""
    reply = grpc_call(small_channel, "/seldon.protos.Router/Route", pb.SeldonMessage(strData="y" * 900))
    assert reply.ByteSize() > 1000
    assert grpc_view(reply)["features"]["value"] == "y" * 900


# --- decisions ---------------------------------------------------------------------------------

def _scripted(case: str) -> pb.SeldonMessage:
    return to_proto({"jsonData": {"return": case}})


@pytest.mark.parametrize("case", ["str", "99", "2", "-3", "float", "bool", "none", "decision-str", "raise"])
def test_bad_decision_is_internal(scripted_channel, case):
    err = grpc_error(scripted_channel, "/seldon.protos.Router/Route", _scripted(case))
    assert err.code() == grpc.StatusCode.INTERNAL
    assert "ScriptedRouter" in err.details()


@pytest.mark.parametrize("case,child", [("np.int64", 1), ("np.int32-decision", 1), ("-1", -1), ("-2", -2)])
def test_valid_decisions(scripted_channel, case, child):
    reply = grpc_call(scripted_channel, "/seldon.protos.Generic/Route", _scripted(case))
    assert reply_dict(reply)["data"]["ndarray"] == [[child]]
    assert dict(reply.meta.routing) == {"scripted": child}
