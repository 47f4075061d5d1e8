"""What only the `seldon-router serve` process has: Prometheus metrics on their own port,
and a graceful SIGTERM (not ready at once, in-flight calls finish, exit 0)."""

from __future__ import annotations

import signal
import threading
import time

import grpc
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from seldon_routers.proto import prediction_pb2 as pb
from server_cases import ECHO_UNIT, fb, grpc_call, post_json, serve


def scrape(rp) -> dict:
    """{(sample name, frozenset(labels)): value} from the metrics port."""
    r = requests.get(f"http://127.0.0.1:{rp.metrics_port}/metrics", timeout=5)
    assert r.status_code == 200
    out = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def sample(metrics: dict, name: str, **labels) -> float:
    return metrics.get((name, frozenset(labels.items())), 0.0)


def test_metrics_count_routes_feedback_and_errors(echo, echo_channel):
    before = scrape(echo)
    for _ in range(2):
        assert post_json(echo.url + "/route", {"strData": "m"}).status_code == 200
    grpc_call(echo_channel, "/seldon.protos.Router/Route", pb.SeldonMessage(strData="m"))
    assert post_json(echo.url + "/send-feedback", fb(routing=1, reward=0.5)).status_code == 200
    assert post_json(echo.url + "/route", {"strData": 5}).status_code == 400
    after = scrape(echo)
    assert sample(after, "seldon_router_routes_total", child="0") == sample(before, "seldon_router_routes_total",
                                                                            child="0") + 3
    assert sample(after, "seldon_router_feedback_total", child="1") == sample(
        before, "seldon_router_feedback_total", child="1") + 1
    assert sample(after, "seldon_router_reward_sum", child="1") == pytest.approx(sample(
        before, "seldon_router_reward_sum", child="1") + 0.5)
    assert sample(after, "seldon_router_reward_count", child="1") == sample(
        before, "seldon_router_reward_count", child="1") + 1
    assert sample(after, "seldon_router_errors_total", endpoint="route", code="400") == sample(
        before, "seldon_router_errors_total", endpoint="route", code="400") + 1
    for transport in ("rest", "grpc"):
        key = dict(endpoint="route", transport=transport)
        assert sample(after, "seldon_router_request_seconds_count", **key) > sample(
            before, "seldon_router_request_seconds_count", **key)


def test_metrics_port_serves_only_metrics(echo):
    r = requests.get(f"http://127.0.0.1:{echo.metrics_port}/route", timeout=5)
    assert r.status_code == 404
    assert requests.get(f"http://127.0.0.1:{echo.metrics_port}/metrics", timeout=5).status_code == 200
    # and the REST port does not serve them
    assert requests.get(echo.url + "/metrics", timeout=5).status_code == 404


def test_sigterm_drains_in_flight_calls():
    rp = serve("echo_router.SlowRouter", "--unit-id", "slow", "--param", "delay=1.0", "--graceful-timeout", "10")
    results = {}

    def rest_call():
        try:
            results["rest"] = requests.post(rp.url + "/route", json={"strData": "slow"}, timeout=10)
        except Exception as exc:  # noqa: BLE001  reported by the assertions below
            results["rest"] = exc

    def grpc_call_():
        try:
            with grpc.insecure_channel(rp.grpc_target) as channel:
                results["grpc"] = grpc_call(channel, "/seldon.protos.Router/Route", pb.SeldonMessage(strData="s"))
        except Exception as exc:  # noqa: BLE001
            results["grpc"] = exc

    try:
        threads = [threading.Thread(target=rest_call), threading.Thread(target=grpc_call_)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 10
        while requests.get(rp.url + "/state", timeout=5).json()["state"]["started"] < 2:  # both inside decide
            assert time.monotonic() < deadline, "the calls never reached the router"
            time.sleep(0.02)
        assert not results, results
        rp.proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        readiness = []  # /ready while the calls drain
        while any(t.is_alive() for t in threads) and time.monotonic() - sent < 10:
            try:
                readiness.append(requests.get(rp.url + "/ready", timeout=1).status_code)
            except requests.ConnectionError:
                readiness.append("refused")
            time.sleep(0.05)
        for t in threads:
            t.join(10)
        # Not ready from the moment the signal is handled (a 200 can only precede that) to the end.
        not_ready = [i for i, status in enumerate(readiness) if status != 200]
        assert not_ready, f"/ready never went down while calls drained: {readiness}"
        assert set(readiness[not_ready[0]:]) <= {503, "refused"}, readiness
        rest = results["rest"]
        assert isinstance(rest, requests.Response), rest
        assert rest.status_code == 200 and rest.json()["data"]["ndarray"] == [[1]]
        assert isinstance(results["grpc"], pb.SeldonMessage), results["grpc"]
        assert dict(results["grpc"].meta.routing) == {"slow": 1}
        assert rp.proc.wait(timeout=10) == 0
        assert time.monotonic() - sent < 10
    finally:
        rp.stop(signal.SIGKILL)


def test_sigterm_when_idle_exits_zero():
    rp = serve("echo_router.EchoRouter", "--unit-id", ECHO_UNIT)
    try:
        rp.proc.send_signal(signal.SIGTERM)
        assert rp.proc.wait(timeout=5) == 0
    finally:
        rp.stop(signal.SIGKILL)


def test_calls_beyond_max_in_flight_get_429_and_resource_exhausted():
    rp = serve("echo_router.SlowRouter", "--unit-id", "slow", "--param", "delay=1.5", "--max-in-flight", "1")
    try:
        first = {}
        busy = threading.Thread(target=lambda: first.update(
            r=requests.post(rp.url + "/route", json={"strData": "a"}, timeout=10)))
        busy.start()
        deadline = time.monotonic() + 5
        while requests.get(rp.url + "/state").json()["state"]["started"] < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        rejected = requests.post(rp.url + "/route", json={"strData": "b"}, timeout=10)
        assert rejected.status_code == 429
        assert rejected.json()["status"]["reason"] == "TOO_MANY_REQUESTS"
        with grpc.insecure_channel(rp.grpc_target) as channel, pytest.raises(grpc.RpcError) as err:
            grpc_call(channel, "/seldon.protos.Router/Route", pb.SeldonMessage(strData="c"))
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        busy.join()
        assert first["r"].status_code == 200
        assert requests.get(rp.url + "/state").json()["state"]["started"] == 1  # the rejected never ran
    finally:
        rp.stop()
