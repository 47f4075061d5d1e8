"""What only the `seldon-router serve` process has: the command line building the router
and its limits, Prometheus metrics on their own port, and a graceful SIGTERM (not ready at
once, gRPC health NOT_SERVING, in-flight calls finish, exit 0). Everything else about the
transports runs against in-process servers (conftest.py), which this checks the process
answers like."""

from __future__ import annotations

import signal
import threading
import time

import grpc
import pytest
import requests
from grpc_health.v1 import health_pb2

from seldon_routers.proto import prediction_pb2 as pb
from server_cases import ECHO_UNIT, assert_seldon_error, fb, grpc_call, grpc_error, post_json, reply_dict, serve
from support import scrape, wait_until

SMALL_BODY = 1000


@pytest.fixture(scope="module")
def process():
    """`seldon-router serve echo_router.EchoRouter` with a body limit, as the in-process `small`."""
    rp = serve("echo_router.EchoRouter", "--unit-id", ECHO_UNIT, "--max-body-size", str(SMALL_BODY))
    yield rp
    rp.stop()


@pytest.fixture(scope="module")
def process_channel(process):
    with grpc.insecure_channel(process.grpc_target) as channel:
        yield channel


def test_the_process_answers_as_the_in_process_server_does(process, process_channel, served, small_channel):
    small = served["small"]
    for message in ({"strData": "p"}, {"data": {"names": ["a"], "ndarray": [[1, 2.5]]}, "meta": {"puid": "x"}}):
        by_process, in_process = post_json(process.url + "/route", message), post_json(small.url + "/route", message)
        assert by_process.status_code == in_process.status_code == 200
        assert by_process.json() == in_process.json()
        proto = pb.SeldonMessage(strData="g")
        assert reply_dict(grpc_call(process_channel, "/seldon.protos.Router/Route", proto)) == reply_dict(
            grpc_call(small_channel, "/seldon.protos.Router/Route", proto))
    assert post_json(process.url + "/send-feedback", fb(routing=1)).json() == post_json(
        small.url + "/send-feedback", fb(routing=1)).json()
    # --max-body-size bounds both transports of the process
    assert_seldon_error(post_json(process.url + "/route", {"strData": "x" * SMALL_BODY}), 413, "body", "1000")
    err = grpc_error(process_channel, "/seldon.protos.Router/Route", pb.SeldonMessage(strData="x" * 1200))
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_metrics_count_routes_feedback_and_errors(process, process_channel):
    before = scrape(process)
    for _ in range(2):
        assert post_json(process.url + "/route", {"strData": "m"}).status_code == 200
    grpc_call(process_channel, "/seldon.protos.Router/Route", pb.SeldonMessage(strData="m"))
    assert post_json(process.url + "/send-feedback", fb(routing=1, reward=0.5)).status_code == 200
    assert post_json(process.url + "/route", {"strData": 5}).status_code == 400
    after = scrape(process)
    assert after.value("seldon_router_routes_total", child=0) == before.value("seldon_router_routes_total",
                                                                              child=0) + 3
    assert after.value("seldon_router_feedback_total", child=1) == before.value(
        "seldon_router_feedback_total", child=1) + 1
    assert after.value("seldon_router_reward_sum", child=1) == pytest.approx(before.value(
        "seldon_router_reward_sum", child=1) + 0.5)
    assert after.value("seldon_router_reward_count", child=1) == before.value(
        "seldon_router_reward_count", child=1) + 1
    assert after.value("seldon_router_errors_total", endpoint="route", code=400) == before.value(
        "seldon_router_errors_total", endpoint="route", code=400) + 1
    for transport in ("rest", "grpc"):
        key = dict(endpoint="route", transport=transport)
        assert after.value("seldon_router_request_seconds_count", **key) > before.value(
            "seldon_router_request_seconds_count", **key)


def test_metrics_port_serves_only_metrics(process):
    r = requests.get(f"http://127.0.0.1:{process.metrics_port}/route", timeout=5)
    assert r.status_code == 404
    assert requests.get(f"http://127.0.0.1:{process.metrics_port}/metrics", timeout=5).status_code == 200
    # and the REST port does not serve them
    assert requests.get(process.url + "/metrics", timeout=5).status_code == 404


@pytest.mark.parametrize("service", ["", "seldon.protos.Router"])
def test_sigterm_turns_grpc_health_not_serving(service):
    """A Kubernetes gRPC probe (or a client watching health) sees NOT_SERVING as soon as the
    process is told to stop, before its listeners close."""
    rp = serve("echo_router.EchoRouter", "--unit-id", ECHO_UNIT)
    try:
        with grpc.insecure_channel(rp.grpc_target) as channel:
            watch = channel.unary_stream("/grpc.health.v1.Health/Watch",
                                         request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                                         response_deserializer=health_pb2.HealthCheckResponse.FromString)
            updates = watch(health_pb2.HealthCheckRequest(service=service), timeout=30)
            assert next(updates).status == health_pb2.HealthCheckResponse.SERVING
            rp.proc.send_signal(signal.SIGTERM)
            assert next(updates).status == health_pb2.HealthCheckResponse.NOT_SERVING
            updates.cancel()  # the server drains open calls, this one too: end it
        assert rp.proc.wait(timeout=20) == 0
    finally:
        rp.stop(signal.SIGKILL)


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
        wait_until(lambda: requests.get(rp.url + "/state", timeout=5).json()["state"]["started"] == 2,
                   interval=0.02, what="both calls inside decide")
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
        wait_until(lambda: requests.get(rp.url + "/state", timeout=5).json()["state"]["started"] == 1,
                   interval=0.02, what="the first call inside decide")
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
