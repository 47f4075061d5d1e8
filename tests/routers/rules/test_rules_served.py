"""The rules router behind the real server's parts, in process (tests/servers.py serving):
the Envoy example's pools and fallback by header and gRPC method path, jsonData rules,
NoRoute as Seldon's 404 error JSON and gRPC NOT_FOUND, and a ModelRoute's tags and /state."""

import json
import os

import grpc
import pytest
import requests
import yaml
from google.protobuf import json_format

from seldon_routers.proto import prediction_pb2 as pb
from servers import serving

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

ENVOY = os.path.join(ROOT, "examples", "rules-envoy")
MODELROUTE = os.path.join(ROOT, "examples", "rules-modelroute", "modelroute.yaml")
POOLS = ["pool-llama", "pool-mistral", "pool-embed", "general-pool"]
HEADER = "custom-metadata-model-name"
BODY = {"data": {"ndarray": [[1.0, 2.0]]}}


def rest_route(url, body=BODY, headers=None, path="/route"):
    r = requests.post(url + path, json=body, headers=headers or {}, timeout=10)
    assert r.status_code == 200, r.text
    meta = r.json()["meta"]
    [(unit, tags)] = meta["tags"].items()
    assert meta["routing"] == {unit: tags["route"]}
    return tags


def grpc_route(target, service="Router", metadata=(), message=None):
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary(f"/seldon.protos.{service}/Route", request_serializer=pb.SeldonMessage.SerializeToString,
                                   response_deserializer=pb.SeldonMessage.FromString)
        reply = call(message or json_format.ParseDict(BODY, pb.SeldonMessage()), metadata=metadata, timeout=10)
    [(unit, tags)] = json_format.MessageToDict(reply)["meta"]["tags"].items()
    assert int(reply.meta.routing[unit]) == tags["route"]
    return tags


@pytest.fixture(scope="module")
def envoy():
    with serving("rules", f"config_file={os.path.join(ENVOY, 'rules.yaml')}", unit_id="rr") as rp:
        yield rp


def test_the_seldondeployment_carries_the_same_rules():
    with open(os.path.join(ENVOY, "seldondeployment.yaml")) as f:
        sd = yaml.safe_load(f)
    parameters = {p["name"]: p["value"] for p in sd["spec"]["predictors"][0]["graph"]["parameters"]}
    with open(os.path.join(ENVOY, "rules.yaml")) as f:
        assert yaml.safe_load(parameters["config"]) == yaml.safe_load(f)
    assert parameters["branch_names"].split(":") == POOLS


@pytest.mark.parametrize("model, expected", [
    ("llama-3-70b", "pool-llama"), ("Llama-2", "pool-llama"), ("mistral", "general-pool"),
    ("bge-large", "general-pool"), (None, "general-pool")])
def test_envoy_example_over_rest(envoy, model, expected):
    # REST's path is /route: mistral's rule wants a gRPC method path, embeddings the Generic service
    tags = rest_route(envoy.url, headers={HEADER: model} if model else {})
    assert tags["branch"] == expected and tags["route"] == POOLS.index(expected)
    assert tags.get("fallback", False) is (expected == "general-pool")


@pytest.mark.parametrize("service, model, expected, rule", [
    ("Router", "llama-3", "pool-llama", "llama"),
    ("Router", "mistral", "pool-mistral", "mistral-grpc"),
    ("Generic", "mistral", "pool-mistral", "mistral-grpc"),
    ("Generic", "bge-large", "pool-embed", "embeddings"),
    ("Generic", "e5-small", "pool-embed", "embeddings"),
    ("Router", "bge-large", "general-pool", None),  # not the Generic service
    ("Generic", "gpt", "general-pool", None),  # Generic, but no any_of block holds
    ("Router", None, "general-pool", None),
])
def test_envoy_example_over_grpc(envoy, service, model, expected, rule):
    tags = grpc_route(envoy.grpc_target, service, ((HEADER, model),) if model else ())
    assert tags["branch"] == expected and tags.get("rule") == rule


def test_envoy_example_any_of_by_tag_over_grpc(envoy):
    message = json_format.ParseDict({**BODY, "meta": {"tags": {"task": "embedding"}}}, pb.SeldonMessage())
    assert grpc_route(envoy.grpc_target, "Generic", (), message)["branch"] == "pool-embed"


RULES = {"children": ["a", "b"], "rules": [
    {"name": "gpt", "match": {"json": {"model": {"prefix": "gpt-"}, "messages.0.role": "system"}}, "to": "b"},
    {"name": "beta", "match": {"query": {"beta": "1"}}, "to": "a"}]}


@pytest.fixture(scope="module")
def no_fallback():
    with serving("rules", f"config={json.dumps(RULES)}", unit_id="rr") as rp:
        yield rp


def test_json_payload_rules_through_the_server(no_fallback):
    body = {"jsonData": {"model": "gpt-4o", "messages": [{"role": "system", "content": "hi"}]}}
    assert rest_route(no_fallback.url, body) == {"rule": "gpt", "route": 1, "branch": "b", "propensity": 1.0}
    message = json_format.ParseDict(body, pb.SeldonMessage())
    assert grpc_route(no_fallback.grpc_target, message=message)["rule"] == "gpt"


def test_query_rules_through_the_server(no_fallback):
    r = requests.post(no_fallback.url + "/route?beta=1", json=BODY, timeout=10)
    assert r.status_code == 200 and r.json()["meta"]["tags"]["rr"]["rule"] == "beta", r.text


def test_no_route_is_a_404_in_seldons_error_json(no_fallback):
    r = requests.post(no_fallback.url + "/route", json={"jsonData": {"model": "llama"}}, timeout=10)
    assert r.status_code == 404, r.text
    status = r.json()["status"]
    assert status["reason"] == "NO_ROUTE" and status["status"] == 1 and status["code"] == -1
    assert "no rule matches the request and no fallback" in status["info"]


def test_no_route_is_grpc_not_found(no_fallback):
    with pytest.raises(grpc.RpcError) as info:
        grpc_route(no_fallback.grpc_target)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert "no rule matches the request" in info.value.details()


def test_model_route_tags_and_state_through_the_server():
    with serving("rules", f"config_file={MODELROUTE}", "branch_names=stable:canary:fallback", "seed=0",
                 unit_id="rr") as rp:
        seen = {}
        with requests.Session() as s:
            for _ in range(200):
                tags = s.post(rp.url + "/route", json=BODY, timeout=10).json()["meta"]["tags"]["rr"]
                seen[tags["branch"]] = tags
        assert set(seen) == {"stable", "canary"}
        assert seen["canary"] == {"rule": "chat-stable", "route": 1, "branch": "canary", "propensity": 0.1,
                                  "timeout": "30s", "retries": 2}
        assert grpc_route(rp.grpc_target)["fallback"] is True  # the gRPC path is not /route
        state = requests.get(rp.url + "/state", timeout=10).json()
        assert state["router"] == "rules" and state["state"]["format"] == "ModelRoute"
        assert state["state"]["rules"][0]["not_enforced"]["canary"] == {"timeout": "30s", "retries": 2}
