"""schemathesis over the checked-in OpenAPI document (seldon_routers/server/openapi/seldon.json):
every documented operation, with requests generated from the document (valid and invalid),
against live servers of learning routers: a `seldon-router serve` process of epsilon-greedy
and of canary, and epsilon-greedy behind the Flask adapter.

What must hold for every generated call: no 5xx, the status, content type and body are the
ones the document gives for that operation, and a route or feedback that is refused (4xx)
leaves the learned state (GET /state) as it was. The stateful test follows the document's
links (route's reply -> the feedback on it) so that rewards reach the bandit too.

Reproducible: hypothesis derandomized, no example database."""

from __future__ import annotations

import json

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance, response_schema_conformance,
                                               status_code_conformance)

from seldon_routers import EpsilonGreedy
from seldon_routers.server.flask import create_app
from server_cases import REPO, ThreadedWerkzeug, serve, serve_learning

DOCUMENT = REPO / "seldon_routers" / "server" / "openapi" / "seldon.json"
UNIT = "u"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
# The calls a router learns from, or could wrongly learn from when it refuses them.
LEARNING_PATHS = {"/route", "/send-feedback", "/api/v1.0/feedback", "/api/v0.1/feedback"}
FUZZ = settings(max_examples=15, derandomize=True, database=None, deadline=None,
                suppress_health_check=list(HealthCheck))


def loaded(mode: str = "all", **phases):
    """The checked-in document, generating in the given phases only, valid requests
    (mode "positive"), invalid ones ("negative") or both ("all")."""
    config = {name: {"enabled": phases.get(name, False), "generation": {"mode": mode}}
              for name in ("examples", "coverage", "fuzzing", "stateful")}
    return schemathesis.openapi.from_path(
        DOCUMENT, config=schemathesis.Config.from_dict({"phases": config, "generation": {"mode": mode}}))


# Every operation, generated at random (valid and invalid requests), on every server; the
# coverage phase's boundary and mutated requests (~800 an operation) where a router learns,
# on one server; and scenarios of valid requests along the links (invalid routes have no
# reply for a feedback to follow).
schema = loaded(fuzzing=True)
coverage = loaded(coverage=True).include(operation_id=["route", "sendFeedback"])
stateful = loaded("positive", stateful=True)


@pytest.fixture(scope="module")
def epsilon_greedy():
    rp = serve_learning(UNIT)
    yield rp
    rp.stop()


@pytest.fixture(scope="module")
def canary():
    rp = serve("canary", "--unit-id", UNIT, "--param", "min_reward=0.5", "--param", "interval=3600",
               "--param", "seed=0")
    yield rp
    rp.stop()


@pytest.fixture(scope="module")
def flask_epsilon_greedy():
    server = ThreadedWerkzeug(create_app(EpsilonGreedy(n_branches=3, seed=0), unit_id=UNIT))
    yield server
    server.stop()


@pytest.fixture(scope="module", params=["epsilon_greedy", "canary", "flask_epsilon_greedy"])
def url(request) -> str:
    return request.getfixturevalue(request.param).url


@pytest.fixture(scope="module")
def session():
    with requests.Session() as s:
        yield s


def learned_state(session, url: str) -> str:
    r = session.get(url + "/state", timeout=10)
    assert r.status_code == 200, r.text
    return json.dumps(r.json()["state"], sort_keys=True)


def call_and_check(case, session, url: str):
    """One generated call, checked against the document; a refused learning call must leave
    /state as it was."""
    learns = case.operation.path in LEARNING_PATHS
    before = learned_state(session, url) if learns else None
    response = case.call(base_url=url, session=session, timeout=30)
    case.validate_response(response, checks=CHECKS)
    if learns and 400 <= response.status_code < 500:
        assert learned_state(session, url) == before, (case.operation.label, response.status_code, response.text[:300])
    return response


@schema.parametrize()
@FUZZ
def test_every_documented_operation(case, url, session):
    call_and_check(case, session, url)


@coverage.parametrize()
@FUZZ
def test_route_and_feedback_boundaries(case, epsilon_greedy, session):
    call_and_check(case, session, epsilon_greedy.url)


# --- stateful: route, then the feedback on it (the document's links) -----------------------

STATEFUL = settings(FUZZ, max_examples=15, stateful_step_count=6)


def machine_for(url: str, session, outcomes: list):
    """The document's state machine, calling `url` with the checks above; `outcomes` gets
    (operation, status) of each call."""

    class Machine(stateful.as_state_machine()):
        def before_call(self, case):
            self._before = learned_state(session, url) if case.operation.path in LEARNING_PATHS else None

        def get_call_kwargs(self, case):
            return {"base_url": url, "session": session, "timeout": 30}

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(response, checks=CHECKS)
            outcomes.append((case.operation.label, response.status_code))
            if self._before is not None and 400 <= response.status_code < 500:
                assert learned_state(session, url) == self._before, (case.operation.label, response.text[:300])

    return Machine


def pulls(session, url: str):
    """The rewards a bandit has counted (None for a router that keeps no pulls: canary)."""
    counted = json.loads(learned_state(session, url)).get("pulls")
    return None if counted is None else sum(counted)


def test_route_then_feedback_follows_the_links(url, session):
    outcomes = []
    before = pulls(session, url)
    machine_for(url, session, outcomes).run(settings=STATEFUL)
    accepted = {label for label, status in outcomes if status == 200}
    # The links carry route's reply into a feedback the router accepts and learns from.
    assert accepted & {"POST /send-feedback", "POST /api/v1.0/feedback", "POST /api/v0.1/feedback"}, outcomes
    if before is not None:
        assert pulls(session, url) > before


# --- what the document had wrong, found by the tests above -------------------------------

@pytest.mark.parametrize("method, path, kwargs", [
    ("GET", "/live", {}),  # {"status": "alive"}: not Seldon's Status
    ("GET", "/ready", {}),
    # transform-* echo the message as sent: a status the router does not read...
    ("GET", "/transform-input", {"query": {"json": '{"status": {"code": true}}'}}),
    # ...and null for a field not set (proto3 JSON)
    ("POST", "/transform-output", {"body": {"data": None, "meta": {"metrics": None}}, "media_type": "application/json"}),
])
def test_documented_replies_that_were_wrong(epsilon_greedy, session, method, path, kwargs):
    case = schema[path][method].Case(**kwargs)
    assert call_and_check(case, session, epsilon_greedy.url).status_code == 200
