"""REST transport, end to end on real sockets. Every test runs against both backends
(the `rest` fixture): the `seldon-router serve` process (uvicorn) and the Flask adapter
(`create_app`) on a werkzeug server, with the same code."""

from __future__ import annotations

import contextlib
import json

import pytest
import requests

from server_cases import (ECHO_UNIT, FEEDBACK_ERRORS, PAYLOAD_IDS, PAYLOADS, ROUTE_ERRORS, assert_seldon_error,
                          expected_view, fb, post_json, view_core)

BODY_FORMS = ["json-body", "form-field", "query-get", "query-post"]


def send_route(url: str, message, form: str, path: str = "/route", headers=None) -> requests.Response:
    """Sends a SeldonMessage the way each kind of client does."""
    text = json.dumps(message)
    if form == "json-body":
        return requests.post(url + path, data=text.encode(), timeout=10,
                             headers={"Content-Type": "application/json", **(headers or {})})
    if form == "form-field":  # Seldon's python SeldonClient
        return requests.post(url + path, data={"json": text}, headers=headers, timeout=10)
    if form == "query-get":
        return requests.get(url + path, params={"json": text}, headers=headers, timeout=10)
    if form == "query-post":
        return requests.post(url + path, params={"json": text}, headers=headers, timeout=10)
    raise ValueError(form)


def echo_view(r: requests.Response, unit: str = ECHO_UNIT) -> dict:
    assert r.status_code == 200, r.text
    return r.json()["meta"]["tags"][unit]["view"]


@contextlib.contextmanager
def state_unchanged(rest):
    """The router's learned state (routes decided, feedback applied) does not move."""
    before = rest.state()
    yield
    assert rest.state() == before


# --- payloads: what the router sees --------------------------------------------------------

@pytest.mark.parametrize("form", BODY_FORMS)
@pytest.mark.parametrize("payload", PAYLOADS, ids=PAYLOAD_IDS)
def test_route_payload_forms(rest, payload, form):
    r = send_route(rest.url, payload.message, form)
    view = echo_view(r)
    assert view_core(view) == expected_view(payload)
    assert view["path"] == "/route"
    if form.startswith("query"):
        assert json.loads(view["query"]["json"][0]) == payload.message
    else:
        assert view["query"] == {}


def test_route_reply(rest):
    r = post_json(rest.url + "/route", {"data": {"ndarray": [[1]]}, "meta": {"puid": "req-7"}})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert body["data"] == {"names": ["t:0"], "ndarray": [[0]]}
    assert type(body["data"]["ndarray"][0][0]) is int
    assert body["meta"]["puid"] == "req-7"
    assert body["meta"]["routing"] == {ECHO_UNIT: 0}
    assert set(body["meta"]["tags"]) == {ECHO_UNIT}
    assert "status" not in body


def test_route_sees_headers_path_and_query(rest):
    r = requests.post(rest.url + "/route?extra=1&extra=2&flag", json={"strData": "h"}, timeout=10,
                      headers={"X-Echo-Trace": "abc", "X-Other": "hidden"})
    view = echo_view(r)
    assert view["headers"] == {"x-echo-trace": "abc"}
    assert view["query"] == {"extra": ["1", "2"], "flag": [""]}
    assert view["path"] == "/route"


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "application/vnd.seldon+json",
                                          "text/plain", ""])
def test_route_json_content_types(rest, content_type):
    r = requests.post(rest.url + "/route", data=b'{"strData": "ct"}', headers={"Content-Type": content_type},
                      timeout=10)
    assert echo_view(r)["features"] == {"type": "str", "value": "ct"}


def test_route_form_field_wins_over_query(rest):
    r = requests.post(rest.url + "/route", params={"json": json.dumps({"strData": "query"})},
                      data={"json": json.dumps({"strData": "form"})}, timeout=10)
    assert echo_view(r)["features"]["value"] == "form"


def test_unknown_fields_are_ignored(rest):
    """As Seldon's wrapper does: unknown keys are not an error, and carry no data."""
    r = post_json(rest.url + "/route", {"strData": "x", "someday": {"new": "field"}, "meta": {"future": 1}})
    view = echo_view(r)
    assert view["kind"] == "strData" and view["meta"]["puid"] == ""
    r = post_json(rest.url + "/route", {"data": {"names": ["a"], "sparse": [1]}})
    assert echo_view(r)["kind"] == ""


# --- feedback -------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/send-feedback", "/api/v1.0/feedback", "/api/v0.1/feedback"])
def test_feedback_endpoints_apply(rest, path):
    before = rest.state()
    message = fb(routing=1, reward=0.9,
                 request={"data": {"names": ["f"], "ndarray": [[1, 2]]}, "meta": {"puid": "fb-1"}},
                 truth={"data": {"ndarray": [[7]]}})
    r = post_json(rest.url + path, message)
    assert r.status_code == 200, r.text
    assert r.json() == {"meta": {"puid": "fb-1"}, "data": {"ndarray": []}}  # as Seldon's wrapper answers
    after = rest.state()
    assert after["applied"] == before["applied"] + 1
    assert after["routed"] == before["routed"]
    last = after["last_feedback"]
    assert last["routing"] == 1
    assert last["reward"] == 0.9  # a float32 on the wire, still 0.9 to the router
    assert last["request"]["kind"] == "ndarray" and last["request"]["names"] == ["f"]
    assert last["request"]["meta"]["puid"] == "fb-1"
    assert last["request"]["path"] == path
    assert last["truth"] == {"type": "array", "dtype": "float64", "shape": [1, 1], "values": [[7.0]]}
    assert last["response_meta"]["routing"] == {ECHO_UNIT: 1}


@pytest.mark.parametrize("form", ["form-field", "query-post"])
def test_feedback_body_forms(rest, form):
    before = rest.state()["applied"]
    r = send_route(rest.url, fb(routing=0, reward=0), form, path="/send-feedback")
    assert r.status_code == 200, r.text
    assert rest.state()["applied"] == before + 1


# --- the other endpoints --------------------------------------------------------------------

def test_ping(rest):
    r = requests.get(rest.url + "/health/ping", timeout=5)
    assert r.status_code == 200 and r.text == "pong"


@pytest.mark.parametrize("path", ["/health/status", "/api/v1.0/health/status"])
def test_health_status(rest, path):
    r = requests.get(rest.url + path, timeout=5)
    assert r.status_code == 200
    assert r.json() == {"strData": "healthy", "meta": {}}  # as Seldon's wrapper answers


@pytest.mark.parametrize("path", ["/metadata", "/api/v1.0/metadata"])
def test_metadata(rest, path):
    r = requests.get(rest.url + path, timeout=5)
    assert r.status_code == 200
    body = r.json()
    assert body["name"] == "echo"  # EchoRouter.name: shown in metadata whichever way it is served
    assert body["custom"] == {"type": "ROUTER", "unit": ECHO_UNIT, "n_children": "2"}  # strings, as Seldon's schema


def test_live_ready_state(rest):
    assert requests.get(rest.url + "/live", timeout=5).json() == {"status": "alive"}
    r = requests.get(rest.url + "/ready", timeout=5)
    assert r.status_code == 200 and r.json() == {"status": "ready"}
    body = requests.get(rest.url + "/state", timeout=5).json()
    assert body["router"] == "echo" and body["unit"] == ECHO_UNIT
    assert set(body["state"]) == {"routed", "applied", "last_feedback"}


def test_head_on_get_endpoints(rest):
    assert requests.head(rest.url + "/health/ping", timeout=5).status_code == 200


def test_trailing_slash(rest):
    r = requests.get(rest.url + "/health/ping/", timeout=5)
    assert r.status_code == 200 and r.text == "pong"


# --- errors ---------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", ROUTE_ERRORS, ids=[b.id for b in ROUTE_ERRORS])
def test_route_rejects(rest, bad):
    with state_unchanged(rest):
        st = assert_seldon_error(post_json(rest.url + "/route", bad.body), 400, *bad.names)
    assert st["reason"] == "MICROSERVICE_BAD_DATA"


@pytest.mark.parametrize("bad", FEEDBACK_ERRORS, ids=[b.id for b in FEEDBACK_ERRORS])
def test_feedback_rejects(rest, bad):
    with state_unchanged(rest):
        assert_seldon_error(post_json(rest.url + "/send-feedback", bad.body), 400, *bad.names)


@pytest.mark.parametrize("form", ["form-field", "query-get", "query-post"])
def test_rejects_in_every_body_form(rest, form):
    with state_unchanged(rest):
        assert_seldon_error(send_route(rest.url, {"strData": 5}, form), 400, "strData")
        if form != "query-get":
            assert_seldon_error(send_route(rest.url, fb(routing=None), form, path="/send-feedback"),
                                400, "routing")
    with state_unchanged(rest):
        r = requests.post(rest.url + "/route", params={"json": "{not json"}, timeout=10)
        assert_seldon_error(r, 400, "invalid JSON")


@pytest.mark.parametrize("content_type", ["application/xml", "multipart/form-data; boundary=x",
                                          "application/octet-stream"])
def test_unsupported_content_type(rest, content_type):
    with state_unchanged(rest):
        r = requests.post(rest.url + "/route", data=b'{"strData": "x"}', headers={"Content-Type": content_type},
                          timeout=10)
        assert_seldon_error(r, 400, "Content-Type")


def test_form_without_json_field(rest):
    with state_unchanged(rest):
        r = requests.post(rest.url + "/route", data={"payload": '{"strData": "x"}'}, timeout=10)
        assert_seldon_error(r, 400)


@pytest.mark.parametrize("path", ["/nope", "/api/v2/route", "/", "/route/extra", "/seldon.protos.Router/Route"])
def test_unknown_path(rest, path):
    with state_unchanged(rest):
        assert_seldon_error(requests.post(rest.url + path, json={"strData": "x"}, timeout=5), 404)
        assert_seldon_error(requests.get(rest.url + path, timeout=5), 404)


@pytest.mark.parametrize("method,path", [
    ("GET", "/api/v0.1/feedback"), ("GET", "/api/v1.0/feedback"), ("PUT", "/route"), ("DELETE", "/route"),
    ("POST", "/health/ping"), ("POST", "/metadata"), ("POST", "/state"), ("PATCH", "/ready"),
])
def test_wrong_method(rest, method, path):
    with state_unchanged(rest):
        r = requests.request(method, rest.url + path, json=fb(), timeout=5)
        assert_seldon_error(r, 405, method)


def test_oversized_body(rest):
    big = {"strData": "x" * 1000}
    small_state = requests.get(rest.small_url + "/state", timeout=5).json()
    st = assert_seldon_error(post_json(rest.small_url + "/route", big), 413, "body", "1000")
    assert st["reason"] == "PAYLOAD_TOO_LARGE"
    assert_seldon_error(post_json(rest.small_url + "/send-feedback", fb(request=big)), 413, "body", "1000")
    # no Content-Length (chunked): the limit still holds while reading
    r = requests.post(rest.small_url + "/route", data=iter([b'{"strData": "', b"x" * 1200, b'"}']),
                      headers={"Content-Type": "application/json"}, timeout=10)
    assert_seldon_error(r, 413, "body", "1000")
    assert requests.get(rest.small_url + "/state", timeout=5).json() == small_state
    # under the limit: fine, even though the echo reply is larger than the limit
    r = post_json(rest.small_url + "/route", {"strData": "y" * 900})
    assert echo_view(r)["features"]["value"] == "y" * 900


def test_oversized_body_chunked_under_limit(rest):
    r = requests.post(rest.small_url + "/route", data=iter([b'{"strData": ', b'"chunked"}']),
                      headers={"Content-Type": "application/json"}, timeout=10)
    assert echo_view(r)["features"]["value"] == "chunked"


# --- decisions the server must refuse or normalise --------------------------------------------

@pytest.mark.parametrize("case", ["str", "99", "2", "-3", "float", "bool", "none", "decision-str", "raise"])
def test_bad_decision_is_a_router_failure(rest, case):
    r = post_json(rest.scripted_url + "/route", {"jsonData": {"return": case}})
    st = assert_seldon_error(r, 500, "ScriptedRouter")
    assert st["reason"] == "MICROSERVICE_INTERNAL_ERROR"
    if case == "raise":
        assert "scripted failure" in st["info"]


@pytest.mark.parametrize("case,child,tags", [
    ("np.int64", 1, {"route": 1}), ("np.int32-decision", 1, {"why": "numpy"}),
    ("-1", -1, {"route": -1}), ("-2", -2, {"route": -2}),
])
def test_valid_decisions(rest, case, child, tags):
    r = post_json(rest.scripted_url + "/route", {"jsonData": {"return": case}})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["data"] == {"names": ["t:0"], "ndarray": [[child]]}
    assert type(body["data"]["ndarray"][0][0]) is int
    assert body["meta"]["routing"] == {"scripted": child}
    assert body["meta"]["tags"] == {"scripted": tags}
    assert b"." not in r.content.split(b'"ndarray":')[1][:8]  # [[1]], never [[1.0]]
