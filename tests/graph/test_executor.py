"""The executor's semantics (Seldon Core 1.18.2, executor/predictor/predictor_process.go),
through `seldon-router graph run` and real sockets: routers and models here are the doubles
of doubles.py, given to the runner by --unit NAME=URL, each recording what it is sent."""

from __future__ import annotations

import json
import uuid

import pytest

from doubles import Double, held, status, tagged
from graph_runner import deployment, unit
from servers import free_port

INJECT = {"SELDON_ENABLE_ROUTING_INJECTION": "1"}
FORMS = {  # how a router may answer route N, all read as N by the executor
    "ndarray": lambda n: {"data": {"names": ["t:0"], "ndarray": [[n]]}, "meta": {}},
    "ndarray-flat": lambda n: {"data": {"ndarray": [n]}},
    "tensor": lambda n: {"data": {"tensor": {"shape": [1, 1], "values": [n]}}},
    "tftensor": lambda n: {"data": {"tftensor": {"dtype": "DT_INT32", "intVal": [n]}}},
    "array": lambda n: [n],
    "float": lambda n: {"data": {"ndarray": [[n + 0.9]]}},  # truncated
    "strdata": lambda n: {"strData": str(n)},  # not DefaultData: -1 whatever it says
}


def scripted_router(path, headers, body):
    """Routes as the request's x-route header says, in the form x-form names."""
    if path == "/send-feedback":
        return 200, {"meta": {"tags": {"unit": "r"}}, "data": {"names": [], "ndarray": []}}
    if "x-router-status" in headers:
        return int(headers["x-router-status"]), {"status": {"code": -1, "info": "router down"}}
    return 200, FORMS[headers.get("x-form", "ndarray")](int(headers.get("x-route", "0")))


@pytest.fixture(scope="module")
def doubles():
    made = {"r": Double(scripted_router), "a": Double(tagged("a")), "b": Double(tagged("b")),
            "e503": Double(status(503, "first failure")), "e502": Double(status(502, "second failure"))}
    made["slow"] = Double(held([None]))
    made["slow"].behaviour = held([made["slow"]])
    yield made
    for d in made.values():
        d.close()


@pytest.fixture(scope="module")
def routed(runners, doubles):
    """r (ROUTER) over a, b; routing injection on."""
    graph = unit("r", "ROUTER", unit("a", "MODEL"), unit("b", "MODEL"))
    return runners(deployment(graph), {n: doubles[n].url for n in "rab"}, env=INJECT)


@pytest.fixture(autouse=True)
def _fresh(doubles):
    for d in doubles.values():
        d.clear()


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


def test_puid_is_generated_forwarded_and_returned(routed, doubles):
    r = routed.predict(MSG, {"x-route": "0"})
    puid = r.headers["Seldon-Puid"]
    assert uuid.UUID(puid).version == 4
    assert doubles["r"].calls[0][1]["seldon-puid"] == puid and doubles["a"].calls[0][1]["seldon-puid"] == puid
    r = routed.predict(MSG, {"x-route": "0", "Seldon-Puid": "my-own-puid"})
    assert r.headers["Seldon-Puid"] == "my-own-puid"
    assert doubles["a"].calls[-1][1]["seldon-puid"] == "my-own-puid"


def test_the_clients_headers_reach_every_unit(routed, doubles):
    routed.predict(MSG, {"x-route": "1", "x-user-id": "u-42"})
    for d in (doubles["r"], doubles["b"]):
        assert d.calls[0][1]["x-user-id"] == "u-42"
        assert d.calls[0][1]["content-type"] == "application/json"


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


def test_bad_bodies_are_a_400_naming_the_body(routed, doubles):
    import requests

    r = requests.post(routed.url + "/api/v1.0/predictions", data=b"not json", timeout=10)
    assert r.status_code == 400 and r.json()["status"]["info"].startswith("body: expected a SeldonMessage")
    r = routed.predict([1, 2])
    assert r.status_code == 400 and "JSON object" in r.json()["status"]["info"]
    assert doubles["r"].calls == []


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


# --- errors ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def failing(runners, doubles):
    """r over a, e503, e502, and a unit at a closed port."""
    graph = unit("r", "ROUTER", unit("a", "MODEL"), unit("e503", "MODEL"), unit("e502", "MODEL"),
                 unit("gone", "MODEL"))
    urls = {n: doubles[n].url for n in ("r", "a", "e503", "e502")}
    return runners(deployment(graph), {**urls, "gone": f"http://127.0.0.1:{free_port()}"})


def test_a_childs_error_passes_through_with_its_status_and_body(failing):
    r = failing.predict(MSG, {"x-route": "2"})
    assert r.status_code == 502 and r.json()["status"]["info"] == "second failure"


def test_with_all_children_the_lowest_index_error_wins(failing, doubles):
    r = failing.predict(MSG, {"x-route": "-1"})
    assert r.status_code == 503 and r.json()["status"]["info"] == "first failure"
    assert all(len(doubles[n].calls) == 1 for n in ("a", "e503", "e502"))  # every child was called


def test_a_transport_error_is_the_executors_500(failing):
    r = failing.predict(MSG, {"x-route": "3"})
    assert r.status_code == 500
    body = r.json()["status"]
    assert body["code"] == 500 and body["status"] == "FAILURE" and "calling gone" in body["info"]


def test_a_call_past_the_rest_timeout_is_a_500(runners, doubles):
    graph = unit("slow", "MODEL")
    slow = runners(deployment(graph, annotations={"seldon.io/rest-timeout": "300"}), {"slow": doubles["slow"].url})
    r = slow.predict(MSG)
    assert r.status_code == 500 and "rest-timeout of 300 ms" in r.json()["status"]["info"]
    assert len(doubles["slow"].calls) == 1  # one call, no retry


# --- the call order, COMBINER, transformers -----------------------------------------------------

@pytest.fixture(scope="module")
def combined(runners):
    """comb (COMBINER) over t (TRANSFORMER) -> m (MODEL), and o (OUTPUT_TRANSFORMER): the
    runner's own stub units, every one a process, with routing injection on."""
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
