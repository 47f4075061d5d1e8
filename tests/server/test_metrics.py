"""The unit's Prometheus metrics, and what the dataplane does with them once a feedback is
applied: rewards of any sign, a bounded set of child labels, and no metric that fails a call.
Then as /metrics shows them (an in-process server's metrics app, scraped over HTTP): a
router's Seldon-style custom metrics (COUNTER adds, GAUGE sets, TIMER is milliseconds
observed as seconds), the histograms a router registers through `register_metrics`, and
custom metrics the server refuses."""

from __future__ import annotations

import asyncio
import logging

import pytest
import requests

from seldon_routers import Router
from seldon_routers.errors import RouterFailed
from seldon_routers.server.dataplane import DataPlane
from seldon_routers.server.metrics import Metrics
from servers import in_process
from support import scrape


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
        assert feed(dp) == b'{"meta":{},"data":{"ndarray":[]}}'  # the router's tags and metrics left out
    assert router.applied == 1 and "feedback applied, but its tags() or metrics() failed" in caplog.text
    assert value(dp.metrics, "seldon_router_feedback_total", child="1") == 1


# --- as /metrics shows them ------------------------------------------------------------

class Custom(Router):
    """Reports the metrics a request's jsonData lists, Seldon style."""

    n_children = 1

    def __init__(self):
        self.next = []

    def route(self, features, feature_names, **kwargs):
        self.next = features if isinstance(features, list) else []
        return 0

    def metrics(self):
        return self.next


def route(server, *items):
    return requests.post(server.url + "/route", json={"jsonData": list(items)}, timeout=10)


@pytest.fixture
def custom():
    with in_process(Custom(), unit_id="m") as server:
        yield server


def test_a_timer_in_milliseconds_is_observed_in_seconds(custom):
    r = route(custom, {"type": "TIMER", "key": "model_latency", "value": 250})
    assert r.status_code == 200, r.text
    assert r.json()["meta"]["metrics"] == [{"type": "TIMER", "key": "model_latency", "value": 250}]
    samples = scrape(custom)
    name = "seldon_router_custom_model_latency"
    assert samples.value(f"{name}_count") == 1 and samples.value(f"{name}_sum") == pytest.approx(0.25)
    assert samples.value(f"{name}_bucket", le="0.25") == 1 and samples.value(f"{name}_bucket", le="0.1") == 0
    route(custom, {"type": "TIMER", "key": "model_latency", "value": 1500})
    samples = scrape(custom)
    assert samples.value(f"{name}_count") == 2 and samples.value(f"{name}_sum") == pytest.approx(1.75)


def test_a_counter_adds_and_a_gauge_holds_the_last_value(custom):
    for value in (2, 3):
        assert route(custom, {"type": "COUNTER", "key": "hits", "value": value},
                     {"type": "GAUGE", "key": "queue.depth", "value": value * 10}).status_code == 200
    samples = scrape(custom)
    assert samples.value("seldon_router_custom_hits_total") == 5
    assert samples.value("seldon_router_custom_queue_depth") == 30  # a key's dots become underscores


@pytest.mark.parametrize("items,why", [
    ([{"type": "HISTOGRAM", "key": "x", "value": 1}], "COUNTER|GAUGE|TIMER"),
    ([{"type": "COUNTER", "key": "x", "value": "1"}], "numeric value"),
    ([{"type": "COUNTER", "key": "x", "value": True}], "numeric value"),
    ([{"type": "GAUGE", "value": 1}], "key"),
])
def test_a_malformed_custom_metric_is_a_router_failure(custom, items, why):
    r = route(custom, *items)
    assert r.status_code == 500 and why in r.json()["status"]["info"], r.text


def test_a_key_cannot_change_its_type(custom):
    assert route(custom, {"type": "COUNTER", "key": "k", "value": 1}).status_code == 200
    r = route(custom, {"type": "GAUGE", "key": "k", "value": 1})
    assert r.status_code == 500 and "key 'k' changed type to GAUGE" in r.json()["status"]["info"]


def test_a_routers_own_histogram_from_register_metrics_is_exposed():
    class Sized(Router):
        def register_metrics(self, metrics):
            self.sizes = metrics.histogram("seldon_router_test_rows", "Rows per request.", (1, 4, 16))

        def route(self, features, feature_names):
            self.sizes.observe(len(features))
            return 0

    with in_process(Sized()) as server:
        for rows in ([[1.0]], [[1.0]] * 3, [[1.0]] * 9):
            assert requests.post(server.url + "/route", json={"data": {"ndarray": rows}}, timeout=10).ok
        samples = scrape(server)
    assert samples.value("seldon_router_test_rows_count") == 3 and samples.value("seldon_router_test_rows_sum") == 13
    assert [samples.value("seldon_router_test_rows_bucket", le=le) for le in ("1.0", "4.0", "16.0", "+Inf")] == [
        1, 2, 3, 3]
