"""A learning router behind the real server's parts (in process): one state for REST and gRPC, feedback
attributed through meta.routing, applied once per puid, bad feedback refused."""

import grpc
import pytest
import requests

from seldon_routers.proto import prediction_pb2 as pb
from servers import serving


@pytest.fixture(scope="module")
def ts():
    with serving("thompson-sampling", "n_branches=3", "seed=0", "branch_names=a:b:c", unit_id="ts") as rp:
        yield rp


def state(rp):
    return requests.get(rp.url + "/state").json()["state"]


def test_feedback_from_rest_and_grpc_lands_in_one_state_once_per_puid(ts):
    reply = requests.post(ts.url + "/route", json={"data": {"ndarray": [[1, 2]]}, "meta": {"puid": "p-1"}}).json()
    arm = reply["meta"]["routing"]["ts"]
    assert reply["meta"]["tags"]["ts"]["branch"] == "abc"[arm] and 0 < reply["meta"]["tags"]["ts"]["propensity"] <= 1
    before = state(ts)["pulls"][arm]
    body = {"request": {"data": {"ndarray": [[1, 2]]}, "meta": {"puid": "p-1"}}, "response": reply, "reward": 1}
    assert requests.post(ts.url + "/send-feedback", json=body).status_code == 200
    assert requests.post(ts.url + "/api/v1.0/feedback", json=body).status_code == 200  # a retry: applied once
    msg = pb.Feedback(reward=1.0)
    msg.response.meta.routing["ts"] = arm
    msg.response.meta.puid = "p-1"
    with grpc.insecure_channel(ts.grpc_target) as channel:
        channel.unary_unary("/seldon.protos.Router/SendFeedback", request_serializer=pb.Feedback.SerializeToString,
                            response_deserializer=pb.SeldonMessage.FromString)(msg)
        msg.response.meta.puid = "p-2"  # a new prediction over gRPC counts
        channel.unary_unary("/seldon.protos.Generic/SendFeedback", request_serializer=pb.Feedback.SerializeToString,
                            response_deserializer=pb.SeldonMessage.FromString)(msg)
    after = state(ts)
    assert after["pulls"][arm] == before + 2 and after["duplicates"] >= 2


@pytest.mark.parametrize("body, field", [
    ({"response": {"meta": {"routing": {"ts": 0}}}}, "reward: missing"),
    ({"response": {"meta": {"routing": {"ts": 0}}}, "reward": 1.5}, "reward"),
    ({"response": {"meta": {}}, "reward": 1}, "routing"),
    ({"response": {"meta": {"routing": {"ts": 7}}}, "reward": 1}, "routing"),
    ({"response": {"meta": {"routing": {"other-unit": 0}}}, "reward": 1}, "routing"),
])
def test_feedback_a_bandit_cannot_use_is_400_and_changes_nothing(ts, body, field):
    before = state(ts)
    reply = requests.post(ts.url + "/send-feedback", json=body)
    assert reply.status_code == 400 and field in reply.json()["status"]["info"]
    assert state(ts) == before
