"""The canary router given a MatrixInfer ModelRoute (config / config_file): the verbatim
canary example as a rollout (stable, candidate, first weight, interval, success-rate
criterion), parameters that agree or conflict with the document, documents it refuses, what
it reports as not enforced, and the example SeldonDeployment carrying the document."""

import copy
import logging
import os

import pytest
import yaml

from seldon_routers import ConfigError, Feedback, Request, params
from seldon_routers.routers.canary import Canary

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
EXAMPLE = os.path.join(ROOT, "tests", "routers", "rules", "modelroute_examples", "03-canary-deployment.yaml")
NAMES = "stable-model-server:canary-model-server"


class Clock:
    def __init__(self, t: float = 1_700_000_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def doc() -> dict:
    with open(EXAMPLE) as f:
        return yaml.safe_load(f)


def canary(config=None, branch_names=NAMES, **kw) -> Canary:
    kw.setdefault("seed", 0)
    return Canary(config=doc() if config is None else config, branch_names=branch_names, clock=Clock(), **kw)


def fb(routing, error=False) -> Feedback:
    response = {"puid": "", "tags": {"error": error}, "routing": {"c": routing}, "requestPath": {}}
    return Feedback(Request(), response, 0.0 if error else 1.0, None, routing, True)


def test_the_verbatim_example_is_the_rollout():
    r = Canary(config_file=EXAMPLE, branch_names=NAMES, clock=Clock())
    assert (r.stable, r.candidate) == (0, 1)
    assert r.rollout.interval == 300.0  # analysis.interval "5m"
    assert (r.rollout.steps.first(), r.rollout.steps.step_weight, r.rollout.steps.top) == (10.0, 10.0, 50.0)
    assert r.criteria.max_error_rate == 0.05  # analysis.threshold 95: a 95% success rate
    assert (r.criteria.min_reward, r.criteria.margin, r.rollout.threshold) == (None, None, 5)
    r.decide(Request())
    assert (r.state()["phase"], r.state()["weight"]) == ("Progressing", 10.0)


def test_children_in_the_graphs_order():
    r = canary(branch_names="canary-model-server:other:stable-model-server")
    assert (r.stable, r.candidate) == (2, 0) and r.state()["stable"] == "stable-model-server"


def rollout(r: Canary, errors_per_check: list) -> list:
    """Each interval: min_samples candidate feedbacks, `errors` of them errors; the (phase,
    weight) after the check."""
    r.decide(Request())
    seen = []
    for errors in errors_per_check:
        n = r.criteria.min_samples
        for i in range(n):
            r.learn(fb(r.candidate, error=i < errors))
        r.clock.t += r.rollout.interval
        r.decide(Request())
        seen.append((r.state()["phase"], r.state()["weight"]))
    return seen


@pytest.mark.parametrize("errors, expected", [
    # 0 or 1 error in 20 feedbacks (<= 5%) passes: 10 -> 20 -> ... -> 50 -> promoted
    ([0, 1, 0, 0, 0, 0], [("Progressing", 20.0), ("Progressing", 30.0), ("Progressing", 40.0),
                          ("Progressing", 50.0), ("Promoting", 100.0), ("Succeeded", 100.0)]),
    # 2 in 20 (10%) fails; the 5th failed check (the threshold parameter) rolls back
    ([2, 2, 2, 2, 2], [("Progressing", 10.0)] * 4 + [("Failed", 0.0)]),
])
def test_checks_follow_the_documents_threshold_and_interval(errors, expected):
    assert rollout(canary(), errors) == expected


def test_seldon_string_parameters_build_it():
    r = params.build(Canary, params.from_pairs([f"config_file={EXAMPLE}", f"branch_names={NAMES}", "min_samples=5"]))
    assert r.rollout.interval == 300.0 and r.criteria.min_samples == 5


@pytest.mark.parametrize("kwargs", [
    dict(interval=300), dict(interval=60.0),  # the default reads as unset: the document's 5m
    dict(step_weight=10), dict(max_error_rate=0.05), dict(stable="stable-model-server"), dict(candidate="1"),
    dict(step_weights="10:25:50"), dict(step_weights=[10, 50], max_weight=50), dict(min_reward=0.9),
])
def test_parameters_that_agree_with_the_document(kwargs):
    assert canary(**kwargs).rollout.interval == 300.0


@pytest.mark.parametrize("kwargs, match", [
    (dict(interval=30), r"^interval: 30 is given, but the ModelRoute's spec.canary.analysis.interval sets 300.0"),
    (dict(max_error_rate=0.1), r"^max_error_rate: 0.1 is given, but the ModelRoute's spec.canary.analysis.threshold"),
    (dict(step_weight=5), r"^step_weight: 5 is given, but the ModelRoute's spec.canary.trafficSplit.canary sets 10"),
    (dict(stable="canary-model-server"), r"^stable: 'canary-model-server' is given, but the ModelRoute's "
                                         r"spec.routes\[0\].destination sets 'stable-model-server'"),
    (dict(step_weights="5:10:25"), r"^step_weights: start at 5, but spec.canary.trafficSplit.canary starts the "
                                   r"candidate at 10"),
    (dict(max_weight=5), r"^spec.canary.trafficSplit.canary: 10 is above max_weight 5"),
])
def test_parameters_that_conflict_with_the_document(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        canary(**kwargs)


def edited(edit) -> dict:
    d = copy.deepcopy(doc())
    edit(d)
    return d


@pytest.mark.parametrize("config, branch_names, match", [
    (edited(lambda d: d["spec"].pop("canary")), NAMES, r"^spec.canary: missing"),
    (edited(lambda d: d["spec"]["canary"].update(enabled=False)), NAMES, r"^spec.canary.enabled: false"),
    (edited(lambda d: d["spec"]["canary"].pop("enabled")), NAMES, r"^spec.canary.enabled: false \(or not set\)"),
    (edited(lambda d: d["spec"]["routes"].append(
        {"match": {"headers": {"x": "1"}}, "destination": {"modelServerRef": {"name": "stable-model-server"}}})),
     NAMES, r"^spec.routes\[2\]: the canary router sends every request to the pair's stable or canary server"),
    (edited(lambda d: d["spec"]["canary"]["trafficSplit"].update(stable=100, canary=0)), NAMES,
     r"^spec.canary.trafficSplit: 100/0, but the pair's routes weigh 90/10"),
    (edited(lambda d: [r.pop("weight") for r in d["spec"]["routes"]] and d["spec"]["canary"].update(
        trafficSplit={"stable": 100, "canary": 0})), NAMES, r"^spec.canary.trafficSplit.canary: 0: a canary starts"),
    (doc(), None, r"^branch_names: a ModelRoute names model servers"),
    (doc(), "stable-model-server:other", r"^spec.routes\[1\].destination.modelServerRef.name: 'canary-model-server' "
                                         r"is not one of the graph's children \(stable-model-server, other\)"),
    ({"children": ["a", "b"], "rules": []}, "a:b", r"^config: the canary router reads a MatrixInfer ModelRoute.*got "
                                                   r"kind None"),
    ("[1, 2]", "a:b", r"^config: the canary router reads a MatrixInfer ModelRoute.*got a list"),
    (edited(lambda d: d["spec"]["canary"]["analysis"].update(interval="5")), NAMES,
     r"^spec.canary.analysis.interval: expected a duration"),
])
def test_documents_it_refuses(config, branch_names, match):
    with pytest.raises(ConfigError, match=match):
        canary(config, branch_names)


def test_without_analysis_the_parameters_set_the_checks():
    d = edited(lambda d: d["spec"]["canary"].pop("analysis"))
    with pytest.raises(ConfigError, match="min_reward: a canary must check something"):
        canary(d)
    r = canary(d, min_reward=0.9, interval=120)
    assert (r.rollout.interval, r.criteria.max_error_rate, r.rollout.steps.first()) == (120, None, 10.0)


def test_what_it_does_not_enforce_is_in_state_and_logged(caplog):
    d = edited(lambda d: (d["spec"]["routes"][1].update(timeout="30s", retries=2),
                          d["spec"].update(fallback={"modelServerRef": {"name": "stable-model-server"}})))
    with caplog.at_level(logging.INFO, logger="seldon_routers"):
        state = canary(d).state()
    assert list(state["not_enforced"]) == ["spec.routes[0].match", "spec.fallback", "spec.routes[1].timeout",
                                           "spec.routes[1].retries"]
    assert state["not_enforced"]["spec.routes[0].match"].startswith(
        '{"path": "/v1/models/production/*"}: the canary router splits every request')
    for where in state["not_enforced"]:
        assert f"canary: ModelRoute canary-deployment: {where} not enforced" in caplog.text
    assert "not_enforced" not in Canary(min_reward=0.9).state()  # only a ModelRoute's rollout has any


def test_the_example_seldondeployment_carries_the_verbatim_document():
    with open(os.path.join(ROOT, "examples", "canary-modelroute", "seldondeployment.yaml")) as f:
        sd = yaml.safe_load(f)
    graph = sd["spec"]["predictors"][0]["graph"]
    parameters = {p["name"]: p["value"] for p in graph["parameters"]}
    with open(EXAMPLE) as f:
        verbatim = f.read()
    assert parameters["config"] == verbatim  # byte for byte, as MatrixInfer's reference writes it
    assert parameters["branch_names"].split(":") == [c["name"] for c in graph["children"]]
