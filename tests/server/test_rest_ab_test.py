"""The built-in ab-test behind both transports: the reply carries the route where the
executor reads it and the decision where a client can see it. Its weights are checked
statistically in-process (a transport adds nothing to a draw)."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
import requests
from scipy.stats import chisquare

from seldon_routers import ABTest, Request
from seldon_routers.proto import prediction_pb2 as pb
from server_cases import grpc_call, post_json, reply_dict
from servers import running_router

UNIT = "abtest"
EXPECTED_TAGS = [{"route": 0, "branch": "a", "propensity": 0.25}, {"route": 1, "branch": "b", "propensity": 0.75}]


def test_ab_test_rest_reply(rest):
    seen = set()
    for i in range(40):
        r = post_json(rest.ab_url + "/route", {"data": {"ndarray": [[i]]}, "meta": {"puid": f"ab-{i}"}})
        assert r.status_code == 200, r.text
        body = r.json()
        child = body["data"]["ndarray"][0][0]
        assert type(child) is int and child in (0, 1)
        assert body["data"] == {"names": ["t:0"], "ndarray": [[child]]}
        assert body["meta"]["routing"] == {UNIT: child}
        assert body["meta"]["tags"] == {UNIT: EXPECTED_TAGS[child]}
        assert body["meta"]["puid"] == f"ab-{i}"
        seen.add(child)
    assert seen == {0, 1}


def test_ab_test_state_and_feedback(rest):
    body = requests.get(rest.ab_url + "/state", timeout=5).json()
    assert isinstance(body.pop("pid"), int)  # the process (under --workers, the worker) that answered
    assert body == {"router": "ab-test", "unit": UNIT, "state": {"weights": {"a": 0.25, "b": 0.75}},
                    "store": {"kind": "memory"}}
    # ab-test does not learn: feedback is accepted with or without routing, and changes nothing
    for message in ({"reward": 1}, {"reward": 0, "response": {"meta": {"routing": {UNIT: 1}}}}):
        assert post_json(rest.ab_url + "/send-feedback", message).status_code == 200
    after = requests.get(rest.ab_url + "/state", timeout=5).json()
    after.pop("pid")
    assert after == body


def test_ab_test_grpc_reply(served):
    with grpc.insecure_channel(served["abtest"].grpc_target) as channel:
        for _ in range(10):
            reply = grpc_call(channel, "/seldon.protos.Router/Route", pb.SeldonMessage(strData="x"))
            child = int(reply.meta.routing[UNIT])
            assert reply_dict(reply)["data"] == {"names": ["t:0"], "ndarray": [[child]]}
            assert reply_dict(reply)["meta"]["tags"] == {UNIT: EXPECTED_TAGS[child]}


def draws(router: ABTest, n: int) -> np.ndarray:
    request = Request()
    return np.bincount([router.decide(request).child for _ in range(n)], minlength=router.n_children)


@pytest.mark.parametrize("params,probabilities", [
    ({"weights": [0.2, 0.3, 0.5]}, [0.2, 0.3, 0.5]),
    ({"weights": "1:3"}, [0.25, 0.75]),
    ({"ratioA": 0.1}, [0.1, 0.9]),
    ({"n_branches": 4}, [0.25] * 4),
])
def test_ab_test_weights_are_respected(params, probabilities):
    n = 4000
    counts = draws(ABTest(seed=7, **params), n)
    assert counts.sum() == n
    _, p = chisquare(counts, np.asarray(probabilities) * n)
    assert p > 0.001, (counts, probabilities)


def test_ab_test_zero_weight_never_chosen():
    counts = draws(ABTest(weights=[0, 1, 1], seed=0), 2000)
    assert counts[0] == 0 and counts[1] > 0 and counts[2] > 0


def test_ab_test_seed_reproducible():
    a, b = ABTest(weights="1:1:2", seed=0), ABTest(weights="1:1:2", seed=0)
    request = Request()
    assert [a.decide(request).child for _ in range(200)] == [b.decide(request).child for _ in range(200)]


def test_ab_test_sticky_by_header_over_rest_and_grpc():
    """A user id header pins a user to one child on both transports (gRPC metadata is the
    header there), across two server processes."""
    users = [f"u{i}" for i in range(30)]
    seen = []
    for _ in range(2):
        with running_router("ab-test", "--param", "n_branches=3", "--param", "sticky_key=header:x-user-id") as rp:
            rest_children = []
            for u in users:
                body = post_json(rp.url + "/route", {"data": {"ndarray": [[1]]}}, headers={"X-User-Id": u}).json()
                [tags] = body["meta"]["tags"].values()
                assert tags["sticky"] is True
                rest_children.append(tags["route"])
            with grpc.insecure_channel(rp.grpc_target) as channel:
                grpc_children = [int(next(iter(grpc_call(channel, "/seldon.protos.Router/Route", pb.SeldonMessage(
                    strData="x"), metadata=(("x-user-id", u),)).meta.routing.values()))) for u in users]
            assert rest_children == grpc_children
            seen.append(rest_children)
    assert seen[0] == seen[1] and len(set(seen[0])) == 3
