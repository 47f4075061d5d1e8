"""Three example graphs end to end through the runner: the digits classifier routing
held-out digits to the specialist for their half, a bandit learning from feedback sent
through /api/v1.0/feedback, and the rules router reading the client's headers."""

from __future__ import annotations

import pytest
import requests

from graph_runner import EXAMPLES
from support import MODELS, require

INJECT = {"SELDON_ENABLE_ROUTING_INJECTION": "1"}


@pytest.fixture(scope="module")
def heldout():
    require("onnxruntime", MODELS, "pip install onnxruntime")
    require("sklearn", MODELS, "pip install scikit-learn")
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)  # split as examples/digits-router/train.py splits it
    _, x_test, _, y_test = train_test_split(x.astype(np.float32), y, test_size=0.25, random_state=0, stratify=y)
    return x_test, y_test


def test_the_digits_router_sends_each_half_to_its_specialist(runners, heldout):
    runner = runners(EXAMPLES / "digits-router" / "seldondeployment-onnx.yaml", env=INJECT)
    x, y = heldout
    right = fallback = 0
    for pixels, digit in zip(x[:60], y[:60]):
        reply = runner.predict({"data": {"ndarray": [pixels.tolist()]}, "meta": {}}).json()
        route = reply["meta"]["routing"]["digits-router"]
        if route == -1:  # below min_confidence: both children, child 0's reply
            fallback += 1
            assert reply["meta"]["tags"]["unit"] == "digits-0-4"
            continue
        want = 0 if digit < 5 else 1
        right += route == want
        assert reply["meta"]["tags"]["unit"] == ("digits-0-4", "digits-5-9")[route]
    assert right >= 0.9 * (60 - fallback) and fallback <= 6


@pytest.mark.parametrize("example,router", [("epsilon-greedy", "eg-router"), ("thompson-sampling", "ts-router")])
def test_a_bandit_learns_from_feedback_through_the_runner(runners, example, router):
    runner = runners(EXAMPLES / example / "seldondeployment.yaml")  # injection from its svcOrchSpec.env
    state_url = runner.units()[router]["url"] + "/state"
    msg = {"data": {"ndarray": [[1.0]]}, "meta": {}}

    def round_(n: int) -> list:
        routes = []
        for _ in range(n):
            reply = runner.predict(msg).json()
            route = reply["meta"]["routing"][router]
            routes.append(route)
            feedback = {"request": msg, "response": reply, "reward": 1.0 if route == 1 else 0.0}
            assert runner.feedback(feedback).status_code == 200
        return routes

    round_(40)
    state = requests.get(state_url, timeout=10).json()["state"]
    assert state["pulls"][0] + state["pulls"][1] == 40  # every feedback reached the router once
    assert state["successes"][0] == 0 and state["successes"][1] == state["pulls"][1] > 0
    later = round_(30)
    assert sum(r == 1 for r in later) >= 20  # it now sends most traffic to the better child


@pytest.fixture(scope="module")
def rules_graph(runners):
    return runners(EXAMPLES / "rules-envoy" / "seldondeployment.yaml")


@pytest.mark.parametrize("header,pool", [("llama-3-70b", "pool-llama"), ("LLAMA2", "pool-llama"),
                                         ("bge-large", "general-pool"), (None, "general-pool")])
def test_the_rules_router_routes_by_the_clients_headers(rules_graph, header, pool):
    runner = rules_graph
    headers = {"custom-metadata-model-name": header} if header else {}
    reply = runner.predict({"data": {"ndarray": [[1]]}, "meta": {}}, headers).json()
    assert reply["meta"]["tags"]["unit"] == pool

