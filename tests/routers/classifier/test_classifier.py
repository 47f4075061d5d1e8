"""The classifier router with a Python callable model: routes, class_to_child, labels,
confidence fallback, input validation, configuration errors, and a light import."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import numpy as np
import pytest

from classifier_models import Linear, one_hot_model
from seldon_routers import ClassifierRouter, Decision, Request, params, registry
from seldon_routers.errors import BadRequest, ConfigError, NoRoute, NotReady

E = np.eye(4, dtype=np.float32)


def loaded(**kwargs) -> ClassifierRouter:
    kwargs.setdefault("model", one_hot_model())
    kwargs.setdefault("input_shape", "4")
    router = ClassifierRouter(**kwargs)
    router.load()
    return router


def test_importing_the_package_loads_neither_torch_nor_onnxruntime():
    code = ("import sys, seldon_routers; from seldon_routers.routers.classifier import backends, batcher, images; "
            "print(sorted(m for m in ('torch', 'onnxruntime', 'onnx', 'prometheus_client', 'PIL') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_registered_as_classifier():
    assert registry.resolve("classifier") is ClassifierRouter
    assert registry.builtin_name(ClassifierRouter) == "classifier"


def test_identity_mapping_by_default():
    router = loaded()
    assert router.n_children == 4
    for k in range(4):
        d = router.classify(E[k:k + 1] * 3)
        assert d.child == k
        assert d.tags == {"class": k, "probability": pytest.approx(float(np.exp(15) / (np.exp(15) + 3))),
                          "route": k, "branch": str(k), "fallback": False}


def test_class_to_child_by_label_and_branch_name():
    router = loaded(labels="cat:dog:fox:owl", class_to_child='{"cat": "pets", "dog": "pets", "fox": "wild", "3": 1}',
                    branch_names="pets:wild")
    assert router.n_children == 2
    assert [router.classify(E[k:k + 1]).child for k in range(4)] == [0, 0, 1, 1]
    assert router.classify(E[2:3]).tags["class"] == "fox"
    assert router.classify(E[2:3]).tags["branch"] == "wild"


def test_class_to_child_as_a_list_sets_the_number_of_children():
    router = loaded(class_to_child="0:0:1:1")
    assert router.n_children == 2 and router.branch_names == ["0", "1"]
    assert router.route(E[3:4], []) == 1 and type(router.route(E[3:4], [])) is int  # Seldon wants a Python int


def test_a_request_with_several_rows_goes_by_the_mean_probability():
    router = loaded(class_to_child="0:0:1:1")
    rows = np.stack([E[0] * 3, E[2] * 2, E[3] * 2])  # class 0 wins one row clearly; 2 and 3 share child 1
    d = router.classify(rows)
    assert d.tags["class"] == 0  # argmax of the mean over classes, not a vote over children
    mean = np.mean([np.exp(r) / np.exp(r).sum() for r in rows @ np.eye(4) * 5], axis=0)
    assert d.tags["probability"] == pytest.approx(float(mean.max()), rel=1e-5)


@pytest.mark.parametrize("fallback, expected", [("1", 1), ("high", 1), (-1, -1), (-2, -2)])
def test_low_confidence_goes_to_fallback(fallback, expected):
    router = loaded(class_to_child=[0, 0, 1, 1], branch_names=["low", "high"], min_confidence=0.9, fallback=fallback)
    sure, unsure = router.classify(E[0:1] * 2), router.classify(np.full((1, 4), 0.25))
    assert sure.child == 0 and sure.tags["fallback"] is False
    assert unsure.child == expected and unsure.tags["fallback"] is True
    assert unsure.tags["probability"] == pytest.approx(0.25)
    assert unsure.tags["branch"] == ({1: "high"}.get(expected))


def test_the_number_of_children_counts_the_fallback():
    assert ClassifierRouter(model=one_hot_model(), input_shape="4", class_to_child={"0": -2}, fallback=0,
                            min_confidence=0.5).n_children == 1
    router = loaded(fallback=5)  # identity over 4 classes, and a sixth child for the rest
    assert router.n_children == 6 and router.classify(np.full((1, 4), 0.25)).child == 0


def test_a_class_without_a_child_goes_to_fallback():
    router = loaded(class_to_child={"0": 0, "1": 1}, fallback=-2)
    assert router.classify(E[3:4]).child == -2 and router.classify(E[3:4]).tags["fallback"] is True


def test_a_class_without_a_child_and_no_fallback_is_refused_at_load():
    with pytest.raises(ConfigError, match=r"class_to_child: classes 2, 3 have no child"):
        loaded(class_to_child={"0": 0, "1": 1})


def test_without_warmup_the_first_batch_reports_a_missing_mapping():
    router = loaded(class_to_child={"0": 0, "1": 1}, n_branches=2, warmup=False)
    with pytest.raises(ConfigError, match="classes 2, 3 have no child"):
        router.classify(E[0:1])


def test_no_route_when_table_has_a_gap():
    router = loaded(class_to_child={"0": 0, "1": 1}, fallback=0)
    router.fallback = None  # as if no fallback: the error is a 404 NO_ROUTE, never a 500
    with pytest.raises(NoRoute, match="class 3 has no child"):
        router.classify(E[3:4])


def test_probabilities_output_is_taken_as_is():
    router = loaded(model=lambda x: x.reshape(len(x), -1), output="probabilities", min_confidence=0.5, fallback=-1)
    d = router.classify(np.array([[0.1, 0.6, 0.2, 0.1]]))
    assert d.child == 1 and d.tags["probability"] == pytest.approx(0.6)


@pytest.mark.parametrize("features, message", [
    (np.zeros((2, 3)), r"features: expected shape \(N, 4\), got \(2, 3\)"),
    (np.zeros((0, 4)), r"with N >= 1, got \(0, 4\)"),
    (np.array([["a", "b", "c", "d"]]), r"expected numbers of shape \(N, 4\), got dtype <U1"),
    ("text", r"expected numeric tensor data of shape \(N, 4\), got str"),
    (None, r"got NoneType"),
    # NaN or infinity would give NaN probabilities: an arbitrary class, and tags JSON cannot carry
    (np.array([[1.0, np.nan, 0.0, 0.0]]), r"features: NaN or infinity at row 0"),
    (np.array([[1.0, 0.0, 0.0, 0.0], [np.inf, 0.0, 0.0, 0.0]]), r"features: NaN or infinity at row 1"),
    (np.array([[1e300, 0.0, 0.0, 0.0]]), r"features: NaN or infinity at row 0"),  # inf once float32
    # jsonData reaches the model as decoded JSON: np.asarray raised on these (a 500)
    ([[1, 0, 0, 0], [1, 0]], r"features: expected numbers of shape \(N, 4\), got a list that is not a rectangular"),
    ([[1, 0, 0, 0], 7], r"not a rectangular array"),
    (json.loads("[" * 900 + "1" + "]" * 900), r"not a rectangular array"),  # past numpy's 64 dimensions
])
def test_bad_features_are_a_bad_request(features, message):
    with pytest.raises(BadRequest, match=message):
        loaded().classify(features)


def test_more_rows_than_max_request_rows_is_a_bad_request_before_the_model_runs():
    calls = []
    model = one_hot_model()
    router = loaded(model=lambda b: (calls.append(len(b)), model(b))[1], max_request_rows=3)
    calls.clear()
    with pytest.raises(BadRequest, match="features: 4 rows in one request, more than max_request_rows=3"):
        router.classify(np.tile(E[:1], (4, 1)))
    assert calls == [] and router.classify(np.tile(E[1:2], (3, 1))).child == 1
    with pytest.raises(BadRequest, match="1025 rows in one request, more than max_request_rows=1024"):
        loaded().classify(np.zeros((1025, 4)))  # the default
    assert loaded().state()["max_request_rows"] == 1024


def test_nan_scores_go_to_the_fallback_with_no_class_or_probability():
    nan_model = lambda b: np.where(b[:, :1] > 0, np.nan, 1.0) * np.ones((len(b), 4))  # noqa: E731
    router = loaded(model=nan_model, min_confidence=0.6, fallback=-1)
    d = router.classify(np.array([[1.0, 0, 0, 0]]))
    assert (d.child, d.tags["class"], d.tags["probability"], d.tags["fallback"]) == (-1, None, None, True)
    json.dumps(d.tags, allow_nan=False)  # what a reply can carry
    mixed = router.classify(np.array([[0.0, 0, 0, 0], [1.0, 0, 0, 0]]))  # one of the caller's rows is NaN
    assert mixed.child == -1 and mixed.tags["fallback"] is True
    assert router.classify(np.zeros((1, 4))).tags["fallback"] is True  # uniform: 0.25 < 0.6, a finite answer
    assert router.classify(np.zeros((1, 4))).tags["probability"] == pytest.approx(0.25)
    with pytest.raises(BadRequest, match="features: the model's scores for these features are not finite"):
        loaded(model=nan_model).classify(np.array([[1.0, 0, 0, 0]]))  # no fallback
    probabilities = loaded(model=lambda b: np.full((len(b), 4), np.nan), output="probabilities", fallback=1)
    assert probabilities.classify(E[:1]).child == 1


def test_a_fallback_or_mapped_child_that_does_not_exist_is_a_config_error():
    with pytest.raises(ConfigError, match=r"fallback: unknown child 7 \(children: 0, 1, 2, 3\); expected a name or an "
                                          r"index 0..3, or -1 \(all children\) or -2 \(none\) \(one child per label"):
        ClassifierRouter(model=one_hot_model(), input_shape="4", labels="a:b:c:d", min_confidence=0.9, fallback=7)
    with pytest.raises(ConfigError, match=r"fallback: unknown child 2 \(children: 0, 1\); expected .* index 0..1, "
                                          r"or -1 \(all children\) or -2 \(none\)"):
        ClassifierRouter(model=one_hot_model(), input_shape="4", n_branches=2, fallback=2)
    router = loaded(labels="a:b:c:d", min_confidence=0.9, fallback=3)
    assert router.classify(np.full((1, 4), 0.25)).child == 3


def test_registering_metrics_again_replaces_the_hook():
    from seldon_routers.server.metrics import Metrics

    router = loaded()
    first, second = Metrics(), Metrics()
    router.register_metrics(first)
    router.register_metrics(second)  # a second DataPlane on the same router
    router.classify(E[:1])
    count = "seldon_router_classifier_batch_size_count"
    assert first.registry.get_sample_value(count) == 0 and second.registry.get_sample_value(count) == 1


def test_rows_reshape_from_flat_and_shape_errors_name_both_forms():
    router = loaded(model=Linear(np.eye(6, 4)), input_shape="1,2,3")
    assert router.classify(np.eye(1, 6)).child == 0  # (N, 6) is reshaped to (N, 1, 2, 3)
    assert router.classify(np.eye(1, 6).reshape(1, 1, 2, 3)).child == 0
    with pytest.raises(BadRequest, match=r"expected shape \(N, 1, 2, 3\) \(or \(N, 6\)\), got \(1, 2, 3\)"):
        router.classify(np.zeros((1, 2, 3)))


def test_integer_and_bool_features_are_cast():
    router = loaded()
    assert router.classify(np.array([[0, 0, 7, 0]])).child == 2
    assert router.classify(np.array([[False, True, False, False]])).child == 1


def test_decide_is_awaitable_on_a_running_loop_and_plain_elsewhere():
    router = loaded()
    request = Request(E[1:2], kind="ndarray")
    assert router.decide(request).child == 1

    async def on_loop():
        pending = router.decide(Request(E[2:3], kind="ndarray"))
        assert asyncio.isfuture(pending)
        return await pending

    assert asyncio.run(on_loop()).child == 2


def test_not_loaded_is_not_ready():
    with pytest.raises(NotReady, match="not loaded"):
        ClassifierRouter(model=one_hot_model(), input_shape="4").classify(E[:1])


def test_input_shape_can_come_from_the_model():
    model = one_hot_model()
    model.input_shape = (4,)
    router = ClassifierRouter(model=model)
    router.load()
    assert router.input_shape == (4,)
    with pytest.raises(ConfigError, match=r"input_shape: \(5,\) given, but the model takes \(4,\)"):
        ClassifierRouter(model=model, input_shape="5").load()
    with pytest.raises(ConfigError, match="input_shape: the callable model does not say"):
        ClassifierRouter(model=one_hot_model()).load()


def test_labels_must_match_the_model():
    with pytest.raises(ConfigError, match="labels: 3 given, but the model scores 4 classes"):
        loaded(labels="a:b:c", class_to_child=[0, 0, 0])


@pytest.mark.parametrize("kwargs, field", [
    ({}, "model_path"),
    ({"model_path": "x.onnx", "model": one_hot_model()}, "model_path"),
    ({"model_path": "https://example.com/model.onnx"}, "model_path: 'https://example.com/model.onnx' is a URL"),
    ({"model_path": "s3://bucket/model.pt"}, "is a URL"),
    ({"model_path": "gs://bucket/model.pt"}, "is a URL"),
    ({"model_path": "/nonexistent/model.onnx"}, "model_path: no such file"),
    ({"model": one_hot_model(), "device": "tpu"}, "device"),
    ({"model": one_hot_model(), "backend": "onnx"}, "backend"),
    ({"model": one_hot_model(), "backend": "tensorflow"}, "backend"),
    ({"model": one_hot_model(), "output": "scores"}, "output"),
    ({"model": one_hot_model(), "min_confidence": 1.5}, "min_confidence"),
    ({"model": one_hot_model(), "min_confidence": 0.5}, "fallback: min_confidence=0.5 needs a fallback"),
    ({"model": one_hot_model(), "max_batch_size": 0}, "max_batch_size"),
    ({"model": one_hot_model(), "max_request_rows": 0}, "max_request_rows: must be an integer >= 1, got 0"),
    ({"model": one_hot_model(), "max_request_rows": True}, "max_request_rows"),
    ({"model": one_hot_model(), "max_batch_delay_ms": -1.0}, "max_batch_delay_ms"),
    ({"model": one_hot_model(), "input_shape": "0,8"}, "input_shape"),
    ({"model": one_hot_model(), "input_shape": "a,b"}, "input_shape"),
    ({"model": one_hot_model(), "class_to_child": "{not json"}, "class_to_child: not valid JSON"),
    ({"model": one_hot_model(), "class_to_child": [0, "nope"]}, r"class_to_child\[1\]"),
    ({"model": one_hot_model(), "class_to_child": [0, 2], "n_branches": 2}, r"class_to_child\[1\]: unknown child 2 \(children: 0, 1\)"),
    ({"model": one_hot_model(), "fallback": -3}, "fallback: unknown child -3"),
    ({"model": one_hot_model(), "fallback": "other", "branch_names": "a:b"}, r"fallback: unknown child 'other' \(children: a, b\)"),
])
def test_invalid_configuration_names_the_field(kwargs, field):
    with pytest.raises(ConfigError, match=field):
        ClassifierRouter(**kwargs)


def test_a_callable_cannot_ask_for_cuda():
    with pytest.raises(ConfigError, match="device: 'cuda' means nothing to a Python callable"):
        ClassifierRouter(model=one_hot_model(), input_shape="4", device="cuda").load()


def test_parameters_from_the_command_line_are_coerced():
    router = params.build(ClassifierRouter, params.from_pairs([
        "model_path=" + __file__.replace("test_classifier.py", "classifier_models.py"), "backend=onnx",
        "min_confidence=0.7", "fallback=-1", "max_batch_size=64", "max_batch_delay_ms=2", "warmup=false",
        "class_to_child=[0,0,1,1]", "input_shape=1,8,8"]))
    assert (router.min_confidence, router.fallback, router.max_batch_size, router.max_batch_delay_ms,
            router.warmup, router.input_shape, router.n_children) == (0.7, -1, 64, 2.0, False, (1, 8, 8), 2)
    with pytest.raises(ConfigError, match="parameter 'model'"):
        params.build(ClassifierRouter, {"model": "my.module.fn"})


def test_state_reports_the_setup_and_the_batching():
    router = loaded(class_to_child=[0, 0, 1, 1])
    router.classify(E[:1])
    state = router.state()
    assert state["backend"] == "callable" and state["device"] == "cpu" and state["input_shape"] == [4]
    assert state["class_to_child"] == {"0": 0, "1": 0, "2": 1, "3": 1}
    assert state["batching"]["batches"] >= 1 and state["batching"]["max_batch_size"] == 32


def test_decision_is_a_decision():
    assert isinstance(loaded().classify(E[:1]), Decision)
