"""The executor's semantics (Seldon Core 1.18.2, executor/predictor/predictor_process.go),
through `seldon-router graph run` and real sockets: routers and models here are the doubles
of doubles.py, given to the runner by --unit NAME=URL, each recording what it is sent."""

from __future__ import annotations

import json

import pytest

from doubles import FORMS, Double, tagged
from graph_runner import INJECT, deployment, unit

pytestmark = pytest.mark.usefixtures("fresh")

MSG = {"data": {"ndarray": [[1.0, 2.0]]}, "meta": {}}


@pytest.mark.parametrize("form", ["ndarray", "ndarray-flat", "tensor", "tftensor", "array", "float"])
def test_route_n_sends_to_child_n_only_in_every_reply_form(routed, doubles, form):
    r = routed.predict(MSG, {"x-route": "1", "x-form": form})
    assert r.status_code == 200, r.text
    assert r.json()["meta"]["tags"] == {"unit": "b"}
    assert doubles["a"].calls == [] and doubles["b"].paths() == ["/predict"]
    assert r.json()["meta"]["routing"] == {"r": 1, "b": -1}


def test_a_reply_that_is_not_default_data_routes_to_every_child_and_child_0_answers(routed, doubles):
    r = routed.predict(MSG, {"x-form": "strdata", "x-route": "1"})
    assert r.status_code == 200, r.text
    assert r.json()["meta"]["tags"] == {"unit": "a"}  # no COMBINER: child 0's reply, unchanged
    assert doubles["a"].paths() == ["/predict"] and doubles["b"].paths() == ["/predict"]
    assert r.json()["meta"]["routing"] == {"r": -1, "a": -1, "b": -1}


def test_minus_one_calls_every_child(routed, doubles):
    r = routed.predict(MSG, {"x-route": "-1"})
    assert r.json()["meta"]["tags"] == {"unit": "a"}
    assert len(doubles["a"].calls) == len(doubles["b"].calls) == 1


def test_minus_two_returns_the_routers_input(routed, doubles):
    r = routed.predict({"data": {"ndarray": [[3.0]]}, "meta": {"tags": {"mine": 1}}}, {"x-route": "-2"})
    assert r.status_code == 200
    assert r.json() == {"data": {"ndarray": [[3.0]]}, "meta": {"tags": {"mine": 1}, "routing": {"r": -2}}}
    assert doubles["a"].calls == doubles["b"].calls == []


def test_a_route_past_the_children_is_a_clear_500(routed, doubles):
    r = routed.predict(MSG, {"x-route": "7"})
    assert r.status_code == 500
    status_ = r.json()["status"]
    assert status_["code"] == 500 and status_["status"] == "FAILURE"
    assert "'r' is 7, but it has 2 children" in status_["info"]
    assert doubles["a"].calls == doubles["b"].calls == []


def test_a_failing_router_keeps_its_status_with_the_executors_payload(routed):
    r = routed.predict(MSG, {"x-router-status": "503"})
    assert r.status_code == 503
    assert r.json()["status"]["status"] == "FAILURE" and "status code 503" in r.json()["status"]["info"]


def test_routing_injection_only_where_meta_is_an_object(routed):
    r = routed.predict({"strData": "x"}, {"x-route": "-2"})  # the input comes back: it has no meta
    assert r.json() == {"strData": "x"}
    r = routed.predict({"strData": "x", "meta": None}, {"x-route": "-2"})  # nor a null one
    assert r.json() == {"strData": "x", "meta": None}


def test_without_the_variable_nothing_is_injected(runners, doubles):
    graph = unit("r", "ROUTER", unit("a", "MODEL"), unit("b", "MODEL"))
    plain = runners(deployment(graph), {n: doubles[n].url for n in "rab"}, env={"SELDON_ENABLE_ROUTING_INJECTION": ""})
    r = plain.predict(MSG, {"x-route": "1"})
    assert r.json() == {"data": MSG["data"], "meta": {"tags": {"unit": "b"}}}


# --- feedback --------------------------------------------------------------------------------

FEEDBACK = {"request": MSG, "reward": 1.0}


def test_feedback_goes_to_the_routed_child_and_the_router(routed, doubles):
    fb = {**FEEDBACK, "response": {"meta": {"routing": {"r": 1}}}}
    r = routed.feedback(fb)
    assert r.status_code == 200
    assert r.json() == {"meta": {"tags": {"unit": "r"}}, "data": {"names": [], "ndarray": []}}  # the root's
    assert doubles["a"].calls == []
    assert doubles["b"].paths() == ["/send-feedback"] and doubles["r"].paths() == ["/send-feedback"]
    assert doubles["b"].calls[0][2] == doubles["r"].calls[0][2] == fb  # the same Feedback to every unit


def test_feedback_without_routing_goes_to_every_child(routed, doubles):
    assert routed.feedback(FEEDBACK).status_code == 200
    assert doubles["a"].paths() == doubles["b"].paths() == doubles["r"].paths() == ["/send-feedback"]


def test_feedback_with_a_route_past_the_children_is_a_clear_500(routed, doubles):
    r = routed.feedback({**FEEDBACK, "response": {"meta": {"routing": {"r": 5}}}})
    assert r.status_code == 500 and "routing of 'r' is 5" in r.json()["status"]["info"]
    assert doubles["r"].calls == []


# --- the call order, COMBINER, transformers -----------------------------------------------------

@pytest.fixture(scope="module")
def combined(runners):
    """comb (COMBINER) over t (TRANSFORMER) -> m (MODEL), and o (OUTPUT_TRANSFORMER), each a
    recording double logging to one list in arrival order; routing injection on."""
    log: list = []
    names = ("comb", "t", "m", "o")
    made = {n: Double(tagged(n), log, n) for n in names}
    graph = unit("comb", "COMBINER", unit("t", "TRANSFORMER", unit("m", "MODEL")), unit("o", "OUTPUT_TRANSFORMER"))
    runner = runners(deployment(graph), {n: made[n].url for n in names}, env=INJECT)
    yield runner, made, log
    for d in made.values():
        d.close()


def test_calls_in_the_executors_order(combined):
    runner, made, log = combined
    r = runner.predict(MSG)
    assert r.status_code == 200, r.text
    assert log.index(("t", "/transform-input")) < log.index(("m", "/predict")) < log.index(("comb", "/aggregate"))
    assert log.index(("o", "/transform-output")) < log.index(("comb", "/aggregate")) == len(log) - 1
    aggregated = made["comb"].calls[0][2]["seldonMessages"]
    assert [m["meta"]["tags"]["unit"] for m in aggregated] == ["m", "o"]  # in child order
    # MODEL, TRANSFORMER, COMBINER record -1; a leaf OUTPUT_TRANSFORMER records nothing
    assert r.json()["meta"]["routing"] == {"comb": -1, "t": -1, "m": -1}


def test_feedback_reaches_models_and_routers_only_and_is_echoed_by_a_combiner_root(combined):
    runner, made, log = combined
    log.clear()
    r = runner.feedback(FEEDBACK)
    assert r.status_code == 200 and r.json() == FEEDBACK  # the root does not take feedback: echoed
    assert log == [("m", "/send-feedback")]
