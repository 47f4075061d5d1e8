"""The calls Seldon's wrapper serves for every unit, as a router answers them here
(server/unit_calls.py): predict, transform-input/output, aggregate, gRPC metadata. What
the wrapper itself answers is checked side by side in tests/interop/test_interop_endpoints.py;
this is the rest: bad input, both REST backends, every gRPC service that carries them."""

from __future__ import annotations

import json

import grpc
import pytest
import requests
from google.protobuf import empty_pb2
from grpc_health.v1 import health_pb2

from seldon_routers import ABTest
from seldon_routers.proto import prediction_pb2 as pb
from seldon_routers.server.flask import create_app
from server_cases import ThreadedWerkzeug, assert_seldon_error
from servers import serving

UNIT = "ab"
MESSAGE = {"data": {"names": ["a", "b"], "tensor": {"shape": [1, 2], "values": [1.0, 2.0]}},
           "meta": {"puid": "p-1", "tags": {"user": "u1"}}}


class TaggedABTest(ABTest):
    def tags(self):
        return {"version": "v2"}


@pytest.fixture(scope="module")
def uvicorn_server():
    """The uvicorn and gRPC side: ab-test served in process."""
    with serving("ab-test", "n_branches=2", unit_id=UNIT) as server:
        yield server


@pytest.fixture(scope="module")
def flask_server():
    server = ThreadedWerkzeug(create_app(TaggedABTest(n_branches=2), unit_id=UNIT))
    yield server
    server.stop()


@pytest.fixture(scope="module", params=["uvicorn", "flask"])
def url(request) -> str:
    return (request.getfixturevalue("uvicorn_server") if request.param == "uvicorn"
            else request.getfixturevalue("flask_server")).url


@pytest.mark.parametrize("path", ["/predict", "/api/v1.0/predictions", "/api/v0.1/predictions"])
def test_predict_is_an_empty_prediction_with_the_requests_meta(url, path):
    r = requests.post(url + path, json=MESSAGE, timeout=5)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["data"] == {"names": [], "ndarray": []}
    assert body["meta"]["puid"] == "p-1"
    assert body["meta"]["tags"]["user"] == "u1"  # the request's tags, plus the router's tags()


def test_predict_carries_the_routers_tags(flask_server):
    body = requests.post(flask_server.url + "/predict", json=MESSAGE, timeout=5).json()
    assert body["meta"]["tags"] == {"user": "u1", "version": "v2"}


@pytest.mark.parametrize("path", ["/transform-input", "/transform-output"])
@pytest.mark.parametrize("message", [MESSAGE, {"strData": "hi"}, {"jsonData": {"k": [1, None]}}, {}],
                         ids=["tensor", "str", "json", "empty"])
def test_transform_returns_the_message_unchanged(url, path, message):
    r = requests.post(url + path, json=message, timeout=5)
    assert r.status_code == 200, r.text
    assert r.json() == message


@pytest.mark.parametrize("path", ["/predict", "/transform-input", "/transform-output"])
@pytest.mark.parametrize("message, field", [
    ({"data": {"tensor": {"shape": [3], "values": [1.0]}}}, "data.tensor"),
    ({"data": {"ndarray": 5}}, "data.ndarray"),
    ({"strData": "x", "jsonData": {}}, "only one of"),
    ({"meta": {"puid": 3}}, "meta.puid"),
])
def test_bad_messages_are_a_400_naming_the_field(url, path, message, field):
    assert_seldon_error(requests.post(url + path, json=message, timeout=5), 400, field)


@pytest.mark.parametrize("message", [{"seldonMessages": [MESSAGE]}, MESSAGE, [MESSAGE]])
def test_aggregate_is_refused(url, message):
    status = assert_seldon_error(requests.post(url + "/aggregate", json=message, timeout=5), 400,
                                 "only a COMBINER aggregates")
    assert status["reason"] == "MICROSERVICE_BAD_DATA"


def test_get_reads_the_message_from_the_query(url):
    r = requests.get(url + "/transform-input", params={"json": json.dumps({"strData": "q"})}, timeout=5)
    assert r.status_code == 200 and r.json() == {"strData": "q"}


def test_a_route_still_routes_after_them(url):
    """These calls go through the dataplane's admission and counting, never its router."""
    for path in ("/predict", "/transform-input", "/aggregate"):
        requests.post(url + path, json=MESSAGE, timeout=5)
    r = requests.post(url + "/route", json=MESSAGE, timeout=5)
    assert r.status_code == 200 and r.json()["data"]["ndarray"][0][0] in (0, 1)


# --- gRPC ---------------------------------------------------------------------------------

def _call(rp, method: str, request, reply_cls=pb.SeldonMessage):
    with grpc.insecure_channel(rp.grpc_target) as channel:
        fn = channel.unary_unary(method, request_serializer=lambda m: m.SerializeToString(),
                                 response_deserializer=reply_cls.FromString)
        return fn(request, timeout=10)


def _grpc_message() -> pb.SeldonMessage:
    msg = pb.SeldonMessage(meta=pb.Meta(puid="p-1"))
    msg.data.names.extend(["a", "b"])
    msg.data.tensor.shape.extend([1, 2])
    msg.data.tensor.values.extend([1.0, 2.0])
    msg.meta.tags["user"].string_value = "u1"
    return msg


@pytest.mark.parametrize("method", ["/seldon.protos.Model/Predict", "/seldon.protos.Seldon/Predict"])
def test_grpc_predict(uvicorn_server, method):
    reply = _call(uvicorn_server, method, _grpc_message())
    assert reply.data.WhichOneof("data_oneof") == "ndarray" and len(reply.data.ndarray.values) == 0
    assert reply.meta.puid == "p-1" and reply.meta.tags["user"].string_value == "u1"


@pytest.mark.parametrize("method", ["/seldon.protos.Generic/TransformInput", "/seldon.protos.Generic/TransformOutput",
                                    "/seldon.protos.Transformer/TransformInput",
                                    "/seldon.protos.OutputTransformer/TransformOutput"])
def test_grpc_transform_echoes(uvicorn_server, method):
    assert _call(uvicorn_server, method, _grpc_message()) == _grpc_message()


@pytest.mark.parametrize("method", ["/seldon.protos.Generic/Aggregate", "/seldon.protos.Combiner/Aggregate"])
def test_grpc_aggregate_is_unimplemented(uvicorn_server, method):
    with pytest.raises(grpc.RpcError) as exc:
        _call(uvicorn_server, method, pb.SeldonMessageList(seldonMessages=[_grpc_message()]))
    assert exc.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "only a COMBINER aggregates" in exc.value.details()


def test_grpc_graph_metadata_is_unimplemented(uvicorn_server):
    with pytest.raises(grpc.RpcError) as exc:
        _call(uvicorn_server, "/seldon.protos.Seldon/GraphMetadata", empty_pb2.Empty())
    assert exc.value.code() == grpc.StatusCode.UNIMPLEMENTED and "GraphMetadata" in exc.value.details()


@pytest.mark.parametrize("method", ["/seldon.protos.Model/Metadata", "/seldon.protos.Seldon/ModelMetadata"])
def test_grpc_metadata_is_the_rest_document(uvicorn_server, method):
    reply = _call(uvicorn_server, method, empty_pb2.Empty(), pb.SeldonModelMetadata)
    rest = requests.get(uvicorn_server.url + "/metadata", timeout=5).json()
    assert reply.name == rest["name"] == "ab-test"
    # custom is a string map in Seldon's proto: non-strings travel as their JSON text
    assert dict(reply.custom) == {k: v if isinstance(v, str) else str(v) for k, v in rest["custom"].items()}


def test_grpc_bad_data_is_invalid_argument(uvicorn_server):
    msg = pb.SeldonMessage()
    msg.data.tensor.shape.extend([3])
    msg.data.tensor.values.extend([1.0])
    for method in ("/seldon.protos.Model/Predict", "/seldon.protos.Generic/TransformInput"):
        with pytest.raises(grpc.RpcError) as exc:
            _call(uvicorn_server, method, msg)
        assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT, method


@pytest.mark.parametrize("service", ["Transformer", "OutputTransformer", "Combiner", "Seldon"])
def test_grpc_health_reports_every_service_served(uvicorn_server, service):
    reply = _call(uvicorn_server, "/grpc.health.v1.Health/Check",
                  health_pb2.HealthCheckRequest(service=f"seldon.protos.{service}"), health_pb2.HealthCheckResponse)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING
