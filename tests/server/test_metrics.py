"""The unit's Prometheus metrics as /metrics shows them (an in-process server's metrics app,
scraped over HTTP): a router's Seldon-style custom metrics (COUNTER adds, GAUGE sets,
TIMER is milliseconds observed as seconds), the histograms a router registers through
`register_metrics`, and custom metrics the server refuses."""

from __future__ import annotations

import pytest
import requests

from seldon_routers import Router
from servers import in_process
from support import scrape

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
