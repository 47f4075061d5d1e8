"""The executor's semantics (Seldon Core 1.18.2, executor/predictor/predictor_process.go),
through `seldon-router graph run` and real sockets: routers and models here are the doubles
of doubles.py, given to the runner by --unit NAME=URL, each recording what it is sent."""

from __future__ import annotations


import pytest

from doubles import NONSENSE, Double, InFlight, scripted_router, tagged
from graph_runner import INJECT, deployment, unit

pytestmark = pytest.mark.usefixtures("fresh")

MSG = {"data": {"ndarray": [[1.0, 2.0]]}, "meta": {}}


@pytest.mark.parametrize("form", ["ndarray", "ndarray-flat", "tensor", "tftensor", "int_val", "array", "float"])
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


def test_minus_one_calls_the_children_concurrently(runners):
    """Both children in flight at once: each holds its reply until the other has arrived (a
    sequential walk would leave one alone, and `most` at 1)."""
    flight = InFlight(expect=2)
    made = {"r": Double(scripted_router), "c0": Double(flight.behaviour("c0")), "c1": Double(flight.behaviour("c1"))}
    try:
        graph = unit("r", "ROUTER", unit("c0", "MODEL"), unit("c1", "MODEL"))
        runner = runners(deployment(graph), {n: d.url for n, d in made.items()})
        r = runner.predict(MSG, {"x-route": "-1"})
        assert r.status_code == 200, r.text
        assert flight.most == 2
        assert made["c0"].paths() == made["c1"].paths() == ["/predict"]
    finally:
        for d in made.values():
            d.close()


@pytest.mark.parametrize("form", NONSENSE, ids=list(NONSENSE))
def test_a_route_reply_of_the_wrong_shape_is_a_500_saying_what_the_router_answered(routed, doubles, form):
    r = routed.predict(MSG, {"x-form": form})
    assert r.status_code == 500
    info = r.json()["status"]["info"]
    assert info.startswith("router 'r': /route answered") and NONSENSE[form][1] in info, info
    assert doubles["a"].calls == doubles["b"].calls == []


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


def test_a_reply_that_would_not_serialise_back_is_passed_on_unchanged(routed):
    raw = b'{"data":{"ndarray":[[1e400]]},"meta":{}}'  # legal JSON; Python reads inf
    r = routed.http.post(routed.url + "/api/v1.0/predictions", data=raw, headers={"x-route": "-2"}, timeout=30)
    assert r.status_code == 200 and r.content == raw  # not {"ndarray":[[Infinity]]}, no JSON


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


def _raw_feedback(runner, routing: str):
    raw = b'{"request":{"data":{"ndarray":[[1]]}},"reward":1,"response":{"meta":{"routing":{"r":%s}}}}'
    return runner.http.post(runner.url + "/api/v1.0/feedback", data=raw % routing.encode(), timeout=30)


@pytest.mark.parametrize("routing", ["5", "2", "-3", "1e400", "NaN", "-Infinity", "1.5", "100000000000000000000"])
def test_feedback_with_a_routing_value_that_is_no_route_is_a_400_naming_it(routed, doubles, routing):
    r = _raw_feedback(routed, routing)
    assert r.status_code == 400, r.text
    status_ = r.json()["status"]
    assert status_["code"] == 400 and status_["info"].startswith("response.meta.routing.r: ")
    assert "Seldon-Puid" in r.headers
    assert doubles["r"].calls == doubles["a"].calls == doubles["b"].calls == []  # nothing changed


def test_feedback_routing_1_0_is_route_1(routed, doubles):
    assert _raw_feedback(routed, "1.0").status_code == 200
    assert doubles["a"].calls == [] and doubles["b"].paths() == ["/send-feedback"]


@pytest.mark.parametrize("route", [1, -2, -1])
def test_the_runners_own_reply_is_taken_back_as_feedback(routed, doubles, route):
    """meta.routing as the runner wrote it: -2 (no child had the prediction) sends the feedback
    to no child, only to the router (upstream indexes children[-2] there and panics)."""
    reply = routed.predict(MSG, {"x-route": str(route)}).json()
    assert reply["meta"]["routing"]["r"] == route
    doubles["r"].clear(), doubles["a"].clear(), doubles["b"].clear()
    r = routed.feedback({**FEEDBACK, "response": reply})
    assert r.status_code == 200, r.text
    assert doubles["r"].paths() == ["/send-feedback"]
    expect = {1: ([], ["/send-feedback"]), -2: ([], []), -1: (["/send-feedback"], ["/send-feedback"])}[route]
    assert (doubles["a"].paths(), doubles["b"].paths()) == expect


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
