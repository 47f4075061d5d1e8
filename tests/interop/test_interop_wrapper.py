"""Our router classes served by Seldon's own python wrapper, `seldon-core-microservice`,
from the Seldon venv: the REST endpoints, the gRPC Router and Generic services (called with
the venv's own generated stubs) and feedback carrying a routing."""

import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from seldon_peers import route_value, seldon_microservice, seldon_side

from seldon_routers import ABTest, Request

pytestmark = pytest.mark.peers

UNIT = "myrouter"


def params(**kv):
    """Seldon's PREDICTIVE_UNIT_PARAMETERS form: values are strings, with a declared type."""
    types = {int: "INT", float: "FLOAT", str: "STRING", bool: "BOOL"}
    return [{"name": k, "value": str(v), "type": types[type(v)]} for k, v in kv.items()]


# Every built-in router class, as the wrapper would be given it. n_children bounds the
# routes it may return; add each new built-in here.
ROUTERS = [
    pytest.param(("seldon_routers.ABTest", params(n_branches=3, weights="0.5:0.3:0.2", seed=7), 3),
                 id="ABTest"),
    pytest.param(("seldon_routers.EpsilonGreedy", params(n_branches=3, epsilon=0.1, seed=0), 3), id="EpsilonGreedy"),
    pytest.param(("seldon_routers.ThompsonSampling", params(n_branches=3, seed=0), 3), id="ThompsonSampling"),
    pytest.param(("seldon_routers.UCB1", params(n_branches=3, seed=0), 3), id="UCB1"),
    pytest.param(("seldon_routers.LinUCB", params(n_branches=3, seed=0), 3), id="LinUCB"),
    # Rules on tags and jsonData work under the wrapper (it passes meta); this request has
    # neither, so the fallback serves it.
    pytest.param(("seldon_routers.RuleRouter", params(config=json.dumps({
        "children": ["a", "b", "c"], "fallback": "c", "rules": [
            {"match": {"tags": {"tier": "gold"}}, "to": "a"}, {"match": {"json": {"model": "gpt"}}, "to": "b"}]}),
        seed=0), 3), id="RuleRouter"),
    # At any hour this hits the 9:1 window or falls to the default c.
    pytest.param(("seldon_routers.TimeOfDay", params(config=json.dumps({
        "children": ["a", "b", "c"], "default": "c", "sticky_key": "tag:user", "windows": [
            {"name": "business", "days": "mon-fri", "start": "09:00", "end": "17:30",
             "to": [{"child": "a", "weight": 9}, {"child": "b", "weight": 1}]}]}),
        timezone="Europe/London", seed=0), 3), id="TimeOfDay"),
    pytest.param(("seldon_routers.Canary", params(branch_names="stable:candidate", min_reward=0.5, seed=0), 2),
                 id="Canary"),
]

REQUEST = {"data": {"names": ["a", "b"], "ndarray": [[1.0, 2.0]]}}


@pytest.fixture(scope="module", params=ROUTERS)
def wrapped(request, seldon_venv):
    interface, parameters, n_children = request.param
    with seldon_microservice(seldon_venv, interface, parameters, unit_id=UNIT) as ms:
        ms.n_children = n_children
        yield ms


def assert_route(ms, reply: requests.Response) -> int:
    assert reply.status_code == 200, f"{reply.status_code} {reply.text}\n{ms.log()}"
    route = route_value(reply.json())
    assert 0 <= route < ms.n_children
    return route


def test_rest_route_all_body_forms(wrapped):
    body = json.dumps(REQUEST)
    assert_route(wrapped, requests.post(wrapped.url + "/route", json=REQUEST, timeout=10))
    assert_route(wrapped, requests.post(wrapped.url + "/route", data={"json": body}, timeout=10))
    assert_route(wrapped, requests.post(wrapped.url + "/route", params={"json": body}, timeout=10))


@pytest.mark.parametrize("path", ["/send-feedback", "/api/v1.0/feedback", "/api/v0.1/feedback"])
def test_rest_feedback_with_routing(wrapped, path):
    route = assert_route(wrapped, requests.post(wrapped.url + "/route", json=REQUEST, timeout=10))
    # What the executor sends: the wrapper hands response.meta.routing[PREDICTIVE_UNIT_ID]
    # to send_feedback(routing=...).
    feedback = {"request": REQUEST, "response": {"meta": {"routing": {UNIT: route}}}, "reward": 1.0}
    reply = requests.post(wrapped.url + path, json=feedback, timeout=10)
    assert reply.status_code == 200, f"{reply.text}\n{wrapped.log()}"
    assert reply.json().get("status", {}).get("status", "SUCCESS") in ("SUCCESS", 0)


def test_rest_health_and_metadata(wrapped):
    # These call the class's optional hooks (health_status, metrics, tags, init_metadata).
    for path in ("/health/status", "/metadata"):
        reply = requests.get(wrapped.url + path, timeout=10)
        assert reply.status_code == 200, f"{path}: {reply.text}\n{wrapped.log()}"


@pytest.mark.parametrize("service", ["Router", "Generic"])
def test_grpc_route_and_feedback(wrapped, seldon_python, service):
    replies = seldon_side(seldon_python, "stub", "--target", wrapped.grpc_target, "--service", service,
                          "--method", "Route", "--json", json.dumps(REQUEST), "--repeat", "5")
    routes = []
    for reply in replies:
        assert "error" not in reply, f"{reply}\n{wrapped.log()}"
        routes.append(route_value(reply))
    assert all(0 <= r < wrapped.n_children for r in routes), routes
    feedback = {"request": REQUEST, "response": {"meta": {"routing": {UNIT: routes[0]}}}, "reward": 1.0}
    [reply] = seldon_side(seldon_python, "stub", "--target", wrapped.grpc_target, "--service", service,
                          "--method", "SendFeedback", "--json", json.dumps(feedback))
    assert "error" not in reply, f"{reply}\n{wrapped.log()}"


def test_ab_test_weights_respected(seldon_venv):
    weights = [0.5, 0.3, 0.2]
    n = 300
    parameters = params(n_branches=3, weights=":".join(map(str, weights)), seed=11)
    with seldon_microservice(seldon_venv, "seldon_routers.ABTest", parameters, unit_id=UNIT) as ms:
        ms.n_children = 3
        with requests.Session() as s:
            counts = Counter(assert_route(ms, s.post(ms.url + "/route", json=REQUEST, timeout=10))
                             for _ in range(n))
    # 0.1 is more than 3 standard deviations of a share over 300 draws (at most 0.029).
    for child, w in enumerate(weights):
        assert abs(counts[child] / n - w) < 0.1, counts


def test_a_bandit_learns_under_the_wrapper(seldon_venv):
    """Feedback through Seldon's wrapper reaches send_feedback with its routing: after
    rewards for child 2 only, a greedy bandit routes everything there."""
    parameters = params(n_branches=3, epsilon=0.0, seed=3)
    with seldon_microservice(seldon_venv, "seldon_routers.EpsilonGreedy", parameters, unit_id=UNIT) as ms:
        ms.n_children = 3
        with requests.Session() as s:
            for child in (0, 1, 2):
                feedback = {"request": REQUEST, "response": {"meta": {"routing": {UNIT: child}}},
                            "reward": 1.0 if child == 2 else 0.0}
                assert s.post(ms.url + "/send-feedback", json=feedback, timeout=10).status_code == 200
            routes = {assert_route(ms, s.post(ms.url + "/route", json=REQUEST, timeout=10)) for _ in range(20)}
    assert routes == {2}


def test_rules_and_sticky_keys_see_meta_under_the_wrapper(seldon_venv):
    """The wrapper hands route() the request's meta: rules on tags and jsonData fields
    decide there, and a tag sticky key pins a user to one child."""
    config = {"children": ["a", "b", "c"], "fallback": "c", "rules": [
        {"match": {"tags": {"tier": "gold"}}, "to": "a"}, {"match": {"json": {"model": {"prefix": "gpt"}}}, "to": "b"}]}
    cases = [({"data": {"ndarray": [[1.0]]}, "meta": {"tags": {"tier": "gold"}}}, 0),
             ({"jsonData": {"model": "gpt-4o"}}, 1),
             (REQUEST, 2)]
    with seldon_microservice(seldon_venv, "seldon_routers.RuleRouter", params(config=json.dumps(config)),
                             unit_id=UNIT) as ms:
        ms.n_children = 3
        for body, expected in cases:
            assert assert_route(ms, requests.post(ms.url + "/route", json=body, timeout=10)) == expected, body
    users = [f"user-{i}" for i in range(12)]
    with seldon_microservice(seldon_venv, "seldon_routers.ABTest", params(n_branches=3, sticky_key="tag:user"),
                             unit_id=UNIT) as ms:
        ms.n_children = 3
        with requests.Session() as s:
            def child(u):
                body = {"data": {"ndarray": [[1.0]]}, "meta": {"tags": {"user": u}}}
                return assert_route(ms, s.post(ms.url + "/route", json=body, timeout=10))
            first = [child(u) for u in users]
            assert [child(u) for u in users] == first
    # the same keys in this process give the same children
    here = ABTest(n_branches=3, sticky_key="tag:user")
    assert first == [here.decide(Request(meta={"tags": {"user": u}})).child for u in users]


# A user's model-as-router on Seldon's wrapper: the classifier router with a numpy model (the
# wrapper's environment has neither torch nor onnxruntime), in the image's working directory.
ARGMAX_ROUTER = '''
import numpy as np
from seldon_routers import ClassifierRouter


class ArgmaxRouter(ClassifierRouter):
    """Class = the largest of 4 inputs; classes 0-1 to child 0, 2-3 to child 1."""

    def __init__(self, max_batch_size: int = 32, min_confidence: float = 0.0):
        super().__init__(model=lambda x: np.asarray(x, dtype=np.float32) * 10.0, input_shape="4",
                         class_to_child="[0, 0, 1, 1]", n_branches=2, max_batch_size=max_batch_size,
                         min_confidence=min_confidence, fallback=-1)
'''


def test_a_classifier_router_runs_under_the_wrapper(seldon_venv, seldon_python):
    """load() (the warm-up) runs in the wrapper's workers, route() blocks on the batcher, and
    concurrent calls (gunicorn threads) each get the route for their own input."""
    rows = [[1.0 if j == i % 4 else 0.0 for j in range(4)] for i in range(24)]
    with seldon_microservice(seldon_venv, "argmax_router.ArgmaxRouter", params(min_confidence=0.5),
                             unit_id=UNIT, modules={"argmax_router.py": ARGMAX_ROUTER}) as ms:
        ms.n_children = 2

        def call(row):
            r = requests.post(ms.url + "/route", json={"data": {"ndarray": [row]}}, timeout=10)
            return assert_route(ms, r)

        with ThreadPoolExecutor(8) as pool:
            assert list(pool.map(call, rows)) == [0 if i % 4 < 2 else 1 for i in range(24)]
        unsure = requests.post(ms.url + "/route", json={"data": {"ndarray": [[0.0, 0.0, 0.0, 0.0]]}}, timeout=10)
        assert route_value(unsure.json()) == -1  # below min_confidence: the fallback, all children
        bad = requests.post(ms.url + "/route", json={"data": {"ndarray": [[1.0, 2.0]]}}, timeout=10)
        assert bad.status_code != 200 and "expected shape (N, 4), got (1, 2)" in bad.text, bad.text
        [reply] = seldon_side(seldon_python, "stub", "--target", ms.grpc_target, "--service", "Router",
                              "--method", "Route", "--json", json.dumps({"data": {"ndarray": [rows[3]]}}))
        assert "error" not in reply and route_value(reply) == 1, f"{reply}\n{ms.log()}"


def test_an_llm_router_counts_and_releases_under_the_wrapper(seldon_venv):
    """least-request under Seldon's wrapper: the chat body arrives as jsonData, routes spread
    over the pods as they fill, and a feedback (which the wrapper hands over with its routing
    but no puid) ends the oldest request on that pod, so the next request goes there."""
    chat = {"jsonData": {"model": "llama", "messages": [{"role": "user", "content": "Say this is a test!"}]}}
    with seldon_microservice(seldon_venv, "seldon_routers.LeastRequest", params(n_branches=3, seed=0),
                             unit_id=UNIT) as ms:
        ms.n_children = 3
        with requests.Session() as s:
            routes = [assert_route(ms, s.post(ms.url + "/route", json=chat, timeout=10)) for _ in range(6)]
            assert Counter(routes) == {0: 2, 1: 2, 2: 2}, routes
            feedback = {"request": chat, "response": {"meta": {"routing": {UNIT: 1}}}}
            reply = s.post(ms.url + "/send-feedback", json=feedback, timeout=10)
            assert reply.status_code == 200, f"{reply.text}\n{ms.log()}"
            assert assert_route(ms, s.post(ms.url + "/route", json=chat, timeout=10)) == 1
            # the wrapper answers 500 for any exception not its own, but with our message
            bad = s.post(ms.url + "/route", json={"data": {"ndarray": [[1.0]]}}, timeout=10)
            assert bad.status_code != 200 and "needs an OpenAI request body" in bad.text, bad.text
