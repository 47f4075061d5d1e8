"""The classifier behind real servers, in process (tests/servers.py serving, built from
string parameters as `seldon-router serve classifier ...` builds it): digits routed over
REST and gRPC, shape errors as 400 / INVALID_ARGUMENT naming both shapes, batch-size and
inference-time histograms on /metrics; and as a `seldon-router serve` process, /ready only
after warm-up."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
import requests

from classifier_cases import HERE, MODELS, grpc_route, need, route
from servers import serving, start_router, wait_http
from support import scrape

ENV = {"PYTHONPATH": os.pathsep.join(p for p in (HERE, os.environ.get("PYTHONPATH")) if p)}
SHAPE_ERROR = "features: expected shape (N, 1, 8, 8) (or (N, 64)), got (2, 3)"
BATCHES = "seldon_router_classifier_batch_size_count"


@pytest.fixture(scope="module")
def digits():
    need("onnxruntime", "onnx")
    with serving("classifier", f"model_path={MODELS['onnx']}", "class_to_child=[0,0,0,0,0,1,1,1,1,1]",
                 "branch_names=digits-0-4:digits-5-9", unit_id="digits") as rp:
        yield rp


def test_known_digits_over_rest_and_grpc(digits, heldout):
    x, y = heldout
    for i in range(10):
        rows = x[i:i + 1] if i % 2 else x[i:i + 1].reshape(1, 64)  # (1, 1, 8, 8) or flat (1, 64)
        r = route(digits.url, {"data": {"ndarray": rows.tolist()}})
        assert r.status_code == 200, r.text
        tags = r.json()["meta"]["tags"]["digits"]
        assert tags["class"] == int(y[i]) and tags["route"] == int(y[i] >= 5)
        assert tags["branch"] == ["digits-0-4", "digits-5-9"][tags["route"]] and tags["fallback"] is False
        assert r.json()["data"]["ndarray"] == [[tags["route"]]]
    reply = grpc_route(digits.grpc_target, {"data": {"tensor": {"shape": [1, 64], "values": x[0].ravel().tolist()}}})
    assert reply.meta.routing["digits"] == int(y[0] >= 5)


def test_a_shape_error_is_a_400_naming_both_shapes(digits):
    r = route(digits.url, {"data": {"ndarray": [[1, 2, 3], [4, 5, 6]]}})
    assert r.status_code == 400, r.text
    assert r.json()["status"]["reason"] == "MICROSERVICE_BAD_DATA" and r.json()["status"]["info"] == SHAPE_ERROR
    r = route(digits.url, {"strData": "a picture of a seven"})
    assert r.status_code == 400 and "got strData" in r.json()["status"]["info"]


def test_a_shape_error_over_grpc_is_invalid_argument(digits):
    with pytest.raises(grpc.RpcError) as info:
        grpc_route(digits.grpc_target, {"data": {"ndarray": [[1, 2, 3], [4, 5, 6]]}})
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT and SHAPE_ERROR in info.value.details()


def test_concurrent_calls_show_in_the_batch_histograms(digits, heldout):
    x, _ = heldout

    def counts():
        samples = scrape(digits)
        assert BATCHES in samples.names(), "the batch histogram is not on /metrics"
        return [samples.value(BATCHES), samples.value("seldon_router_classifier_batch_size_sum"),
                samples.value("seldon_router_classifier_inference_seconds_count"),
                samples.value("seldon_router_classifier_batch_size_bucket", le="512.0")]

    before = counts()
    bodies = [{"data": {"ndarray": x[i].reshape(1, 64).tolist()}} for i in range(64)]
    with ThreadPoolExecutor(16) as pool:
        assert all(r.status_code == 200 for r in pool.map(lambda b: route(digits.url, b), bodies))
    batches, rows, timed, bucketed = (a - b for a, b in zip(counts(), before))
    assert 1 <= batches <= 64 and rows == 64  # concurrent calls may share a batch
    assert timed == batches and bucketed == batches
    state = requests.get(digits.url + "/state", timeout=10).json()["state"]
    assert state["backend"] == "onnx" and state["device"] == "cpu" and state["batching"]["rows"] >= 64


def test_a_callable_classifier_served_by_import_path():
    with serving("classifier_models.LinearClassifier", "min_confidence=0.9") as rp:
        r = route(rp.url, {"data": {"ndarray": [[0, 0, 5, 0]]}})
        assert r.status_code == 200 and r.json()["meta"]["tags"]["0"]["branch"] == "high", r.text
        r = route(rp.url, {"data": {"ndarray": [[1, 1, 1, 1]]}})
        assert r.json()["meta"]["tags"]["0"] == {"class": 0, "probability": 0.25, "route": -1, "branch": None,
                                                 "fallback": True}
        samples = scrape(rp)
        assert BATCHES in samples.names() and samples.value(BATCHES) == 2  # warm-up is not counted


def test_ready_only_once_the_warm_up_has_answered(tmp_path):
    gate = tmp_path / "gate"
    rp = start_router("classifier_models.GatedClassifier", env={**ENV, "GATE": str(gate)},
                      ready="/live")  # the listeners are up while the model warms up
    try:
        for _ in range(3):
            assert requests.get(rp.url + "/ready", timeout=5).status_code == 503
            r = route(rp.url, {"data": {"ndarray": [[1, 0, 0, 0]]}})
            assert r.status_code == 503 and r.json()["status"]["reason"] == "NOT_READY"
            time.sleep(0.1)
        gate.touch()
        wait_http(rp.url + "/ready", rp.proc, output=rp.output)
        assert route(rp.url, {"data": {"ndarray": [[1, 0, 0, 0]]}}).json()["meta"]["routing"] == {"0": 0}
    finally:
        assert rp.stop() == 0
