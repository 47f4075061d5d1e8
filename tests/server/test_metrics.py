"""The unit's Prometheus metrics, and what the dataplane does with them once a feedback is
applied: rewards of any sign, a bounded set of child labels, and no metric that fails a call."""

from __future__ import annotations

import asyncio
import logging

import pytest

from seldon_routers import Router
from seldon_routers.errors import RouterFailed
from seldon_routers.server.dataplane import DataPlane
from seldon_routers.server.metrics import Metrics


def value(metrics: Metrics, name: str, **labels) -> float:
    found = metrics.registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


def series(metrics: Metrics, name: str) -> set:
    return {s.labels.get("child") for family in metrics.registry.collect() for s in family.samples
            if s.name == name}


def test_rewards_of_any_sign_are_summed_and_counted():
    """A counter refuses to go down: a negative reward raised ValueError, a 500 after the update."""
    m = Metrics()
    for reward in (0.5, -2.0, 0.0):
        m.fed_back(1, reward, 2)
    m.fed_back(1, None, 2)  # no reward given: a feedback, not an observation
    assert value(m, "seldon_router_reward_sum", child="1") == -1.5
    assert value(m, "seldon_router_reward_count", child="1") == 3
    assert value(m, "seldon_router_feedback_total", child="1") == 4


def test_child_labels_are_the_children_when_their_number_is_known():
    m = Metrics()
    for child in (None, -2, -1, 0, 1, 2, 1000):  # 2 and 1000: the dataplane refuses them first
        m.fed_back(child, 1.0, 2)
    assert series(m, "seldon_router_feedback_total") == {"-2", "-1", "0", "1", "other"}


def test_child_labels_without_a_number_of_children_are_those_routed_to():
    m = Metrics()
    m.routed(7)
    for child in range(1000, 3000):
        m.fed_back(child, 1.0)
    m.fed_back(7, 1.0)
    assert series(m, "seldon_router_feedback_total") == {"other", "7"}
    assert value(m, "seldon_router_feedback_total", child="other") == 2000


@pytest.mark.parametrize("item, message", [
    ({"type": "COUNTER", "key": "c", "value": -1}, r"^metrics\(\): COUNTER 'c' must add a finite amount >= 0, got -1"),
    ({"type": "COUNTER", "key": "c", "value": float("inf")}, "must add a finite amount"),
    ({"type": "COUNTER", "key": "c", "value": float("nan")}, "must add a finite amount"),
])
def test_a_custom_counter_that_would_go_down_is_a_router_failure_naming_it(item, message):
    with pytest.raises(RouterFailed, match=message):
        Metrics().custom([item])


def test_a_custom_key_whose_name_is_taken_is_a_router_failure_naming_it():
    m = Metrics()
    m.custom([{"type": "COUNTER", "key": "a", "value": 1}])  # also registers seldon_router_custom_a_total
    with pytest.raises(RouterFailed, match=r"^metrics\(\): key 'a_total': "):
        m.custom([{"type": "GAUGE", "key": "a_total", "value": 1}])


class Counting(Router):
    """Learns by counting; tags() and metrics() fail once `broken` is set."""

    n_children = 2
    broken = False

    def __init__(self):
        self.applied = 0

    def route(self, features, feature_names, **kwargs):
        return 0

    def send_feedback(self, features, feature_names, reward, truth, routing=None, **kwargs):
        self.applied += 1

    def tags(self):
        if self.broken:
            raise RuntimeError("tags broke")
        return {"applied": self.applied}

    def metrics(self):
        return [{"type": "COUNTER", "key": "applied", "value": -1 if self.broken else 1}]


class BrokenMetrics(Metrics):
    def fed_back(self, child, reward, n_children=None):
        raise ValueError("the metrics backend broke")


FEEDBACK = {"response": {"meta": {"routing": {"u": 1}}}, "reward": -1.0}


def feed(dp: DataPlane, body=FEEDBACK):
    return asyncio.run(dp.feedback_json(body))


def test_an_applied_feedback_is_answered_even_when_its_metrics_fail(caplog):
    router = Counting()
    dp = DataPlane(router, unit_id="u", metrics=BrokenMetrics())
    dp.load()
    with caplog.at_level(logging.ERROR, "seldon_routers"):
        assert feed(dp).startswith(b'{"meta"')
    assert router.applied == 1 and "feedback applied, but recording its metrics failed" in caplog.text


def test_an_applied_feedback_is_answered_even_when_tags_or_metrics_of_the_router_fail(caplog):
    router = Counting()
    dp = DataPlane(router, unit_id="u")
    dp.load()
    router.broken = True
    with caplog.at_level(logging.ERROR, "seldon_routers"):
        assert feed(dp) == b'{"meta":{}}'  # the router's tags and metrics left out
    assert router.applied == 1 and "feedback applied, but its tags() or metrics() failed" in caplog.text
    assert value(dp.metrics, "seldon_router_feedback_total", child="1") == 1
