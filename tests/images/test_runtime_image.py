"""images/Dockerfile's runtime target, built on the Debian base and run with real podman:
called from outside the container over REST, gRPC and the metrics port, as Seldon's
executor and Prometheus call it; its user, health check, PID 1 and shutdown."""

from __future__ import annotations

import json

import grpc
import pytest
import requests

from podman_engine import ROOT, wait_exit
from seldon_routers.proto import prediction_pb2 as pb
from support import scrape

ROUTE_BODY = {"data": {"ndarray": [[1.0, 2.0]]}}
EPSILON_GREEDY = {"MODEL_NAME": "epsilon-greedy", "PREDICTIVE_UNIT_PARAMETERS": json.dumps(
    [{"name": "n_branches", "value": "2", "type": "INT"}, {"name": "epsilon", "value": "0", "type": "FLOAT"}])}


def post(url: str, body: dict) -> requests.Response:
    return requests.post(url, json=body, timeout=10)


@pytest.fixture(scope="module")
def ab_test(runtime_image, podman):
    """The image as built: no router named, so its default (ROUTER=ab-test)."""
    c = podman.run(runtime_image)
    yield c
    c.remove()


def test_route_answers_a_routing(ab_test):
    r = post(ab_test.url + "/route", ROUTE_BODY)
    assert r.status_code == 200, r.text
    reply = r.json()
    assert reply["meta"]["routing"]["0"] in (0, 1)
    assert reply["data"]["ndarray"] == [[reply["meta"]["routing"]["0"]]]
    assert requests.get(ab_test.url + "/state", timeout=5).json()["router"] == "ab-test"


def test_grpc_route_over_a_channel(ab_test):
    with grpc.insecure_channel(ab_test.grpc_target) as channel:
        grpc.channel_ready_future(channel).result(timeout=10)
        route = channel.unary_unary("/seldon.protos.Router/Route", request_serializer=pb.SeldonMessage.SerializeToString,
                                    response_deserializer=pb.SeldonMessage.FromString)
        reply = route(pb.SeldonMessage(strData="x", meta=pb.Meta(puid="img-1")), timeout=10)
    assert reply.meta.puid == "img-1"
    assert reply.meta.routing["0"] in (0, 1)


def test_metrics_port_counts_routes(ab_test):
    before = scrape(ab_test).total("seldon_router_routes_total")
    post(ab_test.url + "/route", ROUTE_BODY).raise_for_status()
    assert scrape(ab_test).total("seldon_router_routes_total") == before + 1


def test_runs_as_8888_and_the_server_is_pid_1(ab_test):
    assert ab_test.exec("id", "-u").strip() == "8888"
    status = dict(line.split(":\t", 1) for line in ab_test.exec("cat", "/proc/1/status").splitlines() if ":\t" in line)
    assert status["Uid"].split()[0] == "8888"
    assert "seldon-router" in ab_test.exec("cat", "/proc/1/cmdline").replace("\0", " ")


def test_healthcheck_healthy(ab_test, podman):
    done = podman("healthcheck", "run", ab_test.id, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_feedback_with_the_exact_body_is_applied(runtime_image, containers):
    c = containers(runtime_image, env=EPSILON_GREEDY)
    feedback = {"request": {"data": {"ndarray": [[1.0, 2.0]]}, "meta": {"puid": "img-fb-1"}},
                "response": {"meta": {"routing": {"0": 1}}, "data": {"ndarray": [[1]]}}, "reward": 1.0}
    r = post(c.url + "/send-feedback", feedback)
    assert r.status_code == 200, r.text
    state = requests.get(c.url + "/state", timeout=5).json()["state"]
    assert state["policy"] == "epsilon-greedy"
    assert state["pulls"] == [0.0, 1.0] and state["successes"] == [0.0, 1.0]
    # epsilon 0: the greedy arm is now the one rewarded
    assert post(c.url + "/route", ROUTE_BODY).json()["meta"]["routing"]["0"] == 1


def test_a_users_class_from_model_name(runtime_image, containers):
    mount = f"--volume={ROOT / 'examples/custom/my_router.py'}:/app/my_router.py:ro"
    c = containers(runtime_image, mount, env={"MODEL_NAME": "my_router.MyRouter"})
    assert post(c.url + "/route", {"data": {"ndarray": [[1, 2, 3, 4]]}}).json()["meta"]["routing"]["0"] == 0
    assert post(c.url + "/route", ROUTE_BODY).json()["meta"]["routing"]["0"] == 1


def test_a_model_service_type_stops_with_a_clear_error(runtime_image, containers):
    c = containers(runtime_image, env={"SERVICE_TYPE": "MODEL"}, ready="")
    state = wait_exit(c)
    assert state["exit_code"] == 2
    assert "this server serves ROUTER units, got 'MODEL'" in c.logs()


def test_sigterm_stops_within_the_grace_period(runtime_image, containers):
    grace = 10
    c = containers(runtime_image, env=EPSILON_GREEDY)
    post(c.url + "/route", ROUTE_BODY).raise_for_status()
    assert c.stop(grace) == 0, c.logs()[-2000:]
    # A SIGKILL after the grace period would exit 137; well within it, SIGTERM did it.
    assert c.stopped_in < grace / 2, f"stopped in {c.stopped_in:.1f}s"
    assert "shutting down" in c.logs()
