"""The canary behind real servers: in process (tests/servers.py serving), route tags over
REST and gRPC carry the phase and weight, /state shows the rollout, an error tag in a
feedback's response.meta.tags counts as an error, a bad feedback is a 400 naming the field;
and through `seldon-router serve` processes, a file snapshot carries the rollout over a
restart."""

import os
import time

import grpc
import pytest
import requests
from google.protobuf import json_format

from seldon_routers.proto import prediction_pb2 as pb
from servers import running_router, serving

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
ROUTER = "canary"  # `canary` once registered: the same class
UNIT = "cn"
BODY = {"data": {"ndarray": [[1.0, 2.0]]}}
# An hour between checks: nothing moves on its own during a test.
PARAMS = ("branch_names=stable:candidate", "min_reward=0.9", "max_error_rate=0.1", "step_weights=20:50",
          "interval=3600", "seed=0")
ARGS = (ROUTER, "--unit-id", UNIT, *[arg for pair in PARAMS for arg in ("--param", pair)])


def state(rp) -> dict:
    r = requests.get(rp.url + "/state", timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["state"]


def rest_route(rp) -> dict:
    r = requests.post(rp.url + "/route", json=BODY, timeout=10)
    assert r.status_code == 200, r.text
    meta = r.json()["meta"]
    assert meta["routing"] == {UNIT: meta["tags"][UNIT]["route"]}
    return meta["tags"][UNIT]


def feedback(rp, body) -> requests.Response:
    return requests.post(rp.url + "/send-feedback", json=body, timeout=10)


def grpc_call(rp, method, message, reply=pb.SeldonMessage):
    with grpc.insecure_channel(rp.grpc_target) as channel:
        call = channel.unary_unary(f"/seldon.protos.Router/{method}",
                                   request_serializer=type(message).SerializeToString,
                                   response_deserializer=reply.FromString)
        return call(message, timeout=10)


@pytest.fixture(scope="module")
def served():
    with serving(ROUTER, *PARAMS, unit_id=UNIT) as rp:
        yield rp


def test_the_first_route_starts_the_rollout(served):
    assert state(served)["phase"] == "Initialized"
    tags = rest_route(served)
    assert tags["phase"] == "Progressing" and tags["weight"] == 20 and tags["failed_checks"] == 0
    assert tags["branch"] == ["stable", "candidate"][tags["route"]] and tags["propensity"] in (0.8, 0.2)
    after = state(served)
    assert after["phase"] == "Progressing" and 0 < after["next_check_at"] - time.time() <= 3600


def test_rest_and_grpc_route_tags_carry_phase_and_weight(served):
    seen = {}
    for _ in range(60):
        tags = rest_route(served)
        seen[tags["branch"]] = tags
    assert seen["candidate"] == {"route": 1, "branch": "candidate", "propensity": 0.2, "phase": "Progressing",
                                 "weight": 20, "failed_checks": 0}
    reply = grpc_call(served, "Route", json_format.ParseDict(BODY, pb.SeldonMessage()))
    tags = json_format.MessageToDict(reply)["meta"]["tags"][UNIT]
    assert int(reply.meta.routing[UNIT]) == tags["route"]
    assert tags["phase"] == "Progressing" and tags["weight"] == 20


def test_an_error_tag_in_the_response_counts_as_an_error(served):
    rest_route(served)
    before = state(served)["window"]["candidate"]
    ok = feedback(served, {"request": BODY, "response": {"meta": {"routing": {UNIT: 1}}}, "reward": 1.0})
    error = feedback(served, {"request": BODY, "response": {"meta": {"routing": {UNIT: 1}, "tags": {"error": True}}}})
    assert ok.status_code == 200 and error.status_code == 200, (ok.text, error.text)
    over_grpc = {"request": BODY, "response": {"meta": {"routing": {UNIT: 1}, "tags": {"error": "true"}}}, "reward": 0}
    msg = json_format.ParseDict(over_grpc, pb.Feedback())
    grpc_call(served, "SendFeedback", msg)
    after = state(served)["window"]["candidate"]
    assert after["n"] == before["n"] + 3 and after["errors"] == before["errors"] + 2
    assert after["reward_sum"] == before["reward_sum"] + 1.0


@pytest.mark.parametrize("body, field", [
    ({"response": {"meta": {"routing": {UNIT: 1}}}}, "reward: missing"),
    ({"response": {"meta": {"routing": {UNIT: 1}}}, "reward": "high"}, "reward"),
    ({"response": {"meta": {}}, "reward": 1}, "response.meta.routing"),
    ({"response": {"meta": {"routing": {UNIT: 2}}}, "reward": 1}, "response.meta.routing"),
    ({"response": {"meta": {"routing": {UNIT: 1}, "tags": {"error": "maybe"}}}, "reward": 1},
     "response.meta.tags.error"),
])
def test_a_bad_feedback_is_a_400_naming_the_field(served, body, field):
    rest_route(served)
    before = state(served)
    r = feedback(served, {"request": BODY, **body})
    assert r.status_code == 400, r.text
    assert r.json()["status"]["info"].startswith(field), r.text
    after = state(served)
    assert after["totals"] == before["totals"] and after["window"] == before["window"]


def test_file_state_survives_a_restart(tmp_path):
    path = tmp_path / "canary.json"
    store = ("--state", f"file:{path}")
    with running_router(*ARGS, *store) as rp:
        rest_route(rp)
        for i in range(5):
            assert feedback(rp, {"request": {**BODY, "meta": {"puid": f"p{i}"}},
                                 "response": {"meta": {"routing": {UNIT: i % 2}}}, "reward": 1.0}).status_code == 200
        before = state(rp)
    assert path.exists()
    with running_router(*ARGS, *store) as rp:
        after = state(rp)
        assert after["phase"] == "Progressing" and after["weight"] == 20
        for field in ("totals", "window", "baseline", "history", "failed_checks"):
            assert after[field] == before[field], field
        assert rest_route(rp)["weight"] == 20  # still at the restored step, not restarted


def test_a_model_route_document_through_the_server(tmp_path):
    # MatrixInfer's canary example, verbatim, as the example SeldonDeployment serves it
    example = os.path.join(ROOT, "tests", "routers", "rules", "modelroute_examples", "03-canary-deployment.yaml")
    path = tmp_path / "canary.json"
    args = (ROUTER, "--unit-id", UNIT, "--param", f"config_file={example}", "--param",
            "branch_names=stable-model-server:canary-model-server", "--param", "seed=0", "--state", f"file:{path}")
    with running_router(*args) as rp:
        tags = rest_route(rp)
        assert tags["phase"] == "Progressing" and tags["weight"] == 10 and tags["propensity"] in (0.9, 0.1)
        before = state(rp)
        assert before["interval"] == 300 and before["candidate"] == "canary-model-server"
        assert list(before["not_enforced"]) == ["spec.routes[0].match"]
    with running_router(*args) as rp:  # the snapshot, not_enforced and all, restores
        after = state(rp)
        assert (after["phase"], after["weight"], after["history"]) == ("Progressing", 10, before["history"])
