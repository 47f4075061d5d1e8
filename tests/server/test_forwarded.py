"""--path-header (server/forwarded.py): the path, and query, a router matches come from the
client's original URL when a gateway forwards it in a header, since behind Seldon's
executor the router's own path is always /route. The `rules` router with a path glob, served
over REST (uvicorn and the Flask adapter) and gRPC; and the pure parsing, table-tested."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys

import grpc
import pytest
import requests

from seldon_routers import RuleRouter
from seldon_routers.errors import BadRequest, ConfigError
from seldon_routers.proto import prediction_pb2 as pb
from seldon_routers.server import forwarded
from seldon_routers.server.flask import create_app
from server_cases import REPO, ThreadedWerkzeug, serve
from support import scrape

CONFIG = {"children": ["chat", "beta", "general"], "fallback": "general", "rules": [
    {"name": "chat", "match": {"path": {"glob": "/v1/chat/**"}}, "to": "chat"},
    {"name": "beta", "match": {"query": {"beta": "1"}}, "to": "beta"},
]}
CHAT, BETA, GENERAL = 0, 1, 2
HEADER = "x-envoy-original-path"
MESSAGE = {"strData": "hello"}


# --- parsing: pure functions ------------------------------------------------------------

@pytest.mark.parametrize("values, path, query", [
    ((), "/route", {"own": ["1"]}),  # absent: the call's own
    ((b"",), "/route", {"own": ["1"]}),  # empty: says nothing
    ((b"/v1/chat/completions",), "/v1/chat/completions", {"own": ["1"]}),  # no query string: the call's stays
    ((b"/v1/models?beta=1&x=",), "/v1/models", {"beta": ["1"], "x": [""]}),  # one: it replaces the call's
    (("/v1/models?",), "/v1/models", {}),  # an empty one replaces it too
    ((b"/v1/chat/%63ompletions%20x?q=a%26b",), "/v1/chat/completions x", {"q": ["a&b"]}),  # decoded
    ((b"/v1/a%3Fb",), "/v1/a?b", {"own": ["1"]}),  # an encoded ? is part of the path
])
def test_resolve(values, path, query):
    assert forwarded.resolve(values, HEADER, "/route", {"own": ["1"]}) == (path, query)


@pytest.mark.parametrize("values, message", [
    ((b"v1/chat",), "starting with '/'"),
    ((b"http://host/v1/chat",), "starting with '/'"),
    ((b"/a", b"/b"), "given 2 times"),
])
def test_resolve_rejects_naming_the_header(values, message):
    with pytest.raises(BadRequest) as exc:
        forwarded.resolve(values, HEADER, "/route", {})
    assert HEADER in exc.value.message and message in exc.value.message


@pytest.mark.parametrize("value, name", [
    ("x-envoy-original-path", "x-envoy-original-path"), ("X-Original-URI", "x-original-uri"),
    (" x-forwarded-path ", "x-forwarded-path"), ("", ""),
])
def test_header_name(value, name):
    assert forwarded.header_name(value) == name


@pytest.mark.parametrize("value", ["x original", "x:path", "path-bin", "é"])
def test_header_name_rejects(value):
    with pytest.raises(ConfigError) as exc:
        forwarded.header_name(value)
    assert "--path-header" in exc.value.message


# --- served ------------------------------------------------------------------------------

def _serve_rules(*args: str, env: dict | None = None):
    config = ["--param", f"config={json.dumps(CONFIG)}", "--unit-id", "rules"]
    if env is None:
        return serve("rules", *config, *args)
    os.environ.update(env)  # serve() passes its own environment on to the process
    try:
        return serve("rules", *config, *args)
    finally:
        for name in env:
            del os.environ[name]


@pytest.fixture(scope="module")
def default():
    rp = _serve_rules()
    yield rp
    rp.stop()


@pytest.fixture(scope="module")
def flask_default():
    server = ThreadedWerkzeug(create_app(RuleRouter(config=json.dumps(CONFIG)), unit_id="rules"))
    yield server
    server.stop()


@pytest.fixture(scope="module", params=["uvicorn", "flask"])
def url(request) -> str:
    return request.getfixturevalue("default" if request.param == "uvicorn" else "flask_default").url


def route(url: str, headers=None, params=None) -> int:
    r = requests.post(url + "/route", json=MESSAGE, headers=headers, params=params, timeout=5)
    assert r.status_code == 200, r.text
    return r.json()["data"]["ndarray"][0][0]


def test_rest_a_path_rule_matches_the_forwarded_path(url):
    assert route(url, {HEADER: "/v1/chat/completions"}) == CHAT
    assert route(url, {HEADER: "/v1/chat/%63ompletions"}) == CHAT  # percent-decoded, as a request path is
    assert route(url, {HEADER: "/v1/models"}) == GENERAL
    assert route(url) == GENERAL  # absent: the router's own path, /route


def test_rest_the_forwarded_query_replaces_the_calls_own(url):
    assert route(url, {HEADER: "/v1/models?beta=1"}) == BETA
    assert route(url, {HEADER: "/v1/models"}, {"beta": "1"}) == BETA  # no query string in it: the call's stands
    assert route(url, {HEADER: "/v1/models?beta=0"}, {"beta": "1"}) == GENERAL


def _post(url: str, path: str, body: dict, headers: list) -> tuple[int, dict]:
    """POST with `headers` sent as given: requests would join a repeated header into one."""
    host, port = url.rsplit("//", 1)[1].split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    data = json.dumps(body).encode()
    conn.putrequest("POST", path)
    for name, value in [*headers, ("content-type", "application/json"), ("content-length", str(len(data)))]:
        conn.putheader(name, value)
    conn.endheaders(data)
    reply = conn.getresponse()
    try:
        return reply.status, json.loads(reply.read())
    finally:
        conn.close()


FEEDBACK = {"request": MESSAGE, "reward": 1}
CALLS = [("/route", MESSAGE), ("/send-feedback", FEEDBACK)]


def assert_names_the_header(status: int, reply: dict, why: str) -> None:
    assert status == 400, reply
    assert reply["status"]["reason"] == "MICROSERVICE_BAD_DATA"
    assert HEADER in reply["status"]["info"] and why in reply["status"]["info"], reply


@pytest.mark.parametrize("path, body", CALLS)
def test_rest_a_bad_forwarded_path_is_a_400_naming_the_header(url, path, body):
    assert_names_the_header(*_post(url, path, body, [(HEADER, "v1/chat")]), "starting with '/'")


@pytest.mark.parametrize("path, body", CALLS)
def test_rest_a_repeated_forwarded_path_is_a_400(default, path, body):
    """Under uvicorn only: a WSGI server (the Flask adapter's) joins a repeated header into
    one value with ",", which is then read as one path."""
    assert_names_the_header(*_post(default.url, path, body, [(HEADER, "/v1/chat/a"), (HEADER, "/v1/b")]),
                            "given 2 times")


def _routes_total(rp) -> float:
    return scrape(rp).total("seldon_router_routes_total")


def test_a_bad_forwarded_path_routes_nothing(default):
    before = _routes_total(default)
    assert _post(default.url, "/route", MESSAGE, [(HEADER, "v1/chat")])[0] == 400
    assert _routes_total(default) == before
    route(default.url, {HEADER: "/v1/chat/x"})
    assert _routes_total(default) == before + 1  # what the count would have shown


def _grpc_route(rp, metadata=()) -> int:
    with grpc.insecure_channel(rp.grpc_target) as channel:
        call = channel.unary_unary("/seldon.protos.Router/Route", request_serializer=pb.SeldonMessage.SerializeToString,
                                   response_deserializer=pb.SeldonMessage.FromString)
        reply = call(pb.SeldonMessage(strData="hello"), metadata=list(metadata), timeout=10)
    return int(reply.data.ndarray.values[0].list_value.values[0].number_value)


def test_grpc_a_path_rule_matches_the_forwarded_path(default):
    assert _grpc_route(default, [(HEADER, "/v1/chat/completions")]) == CHAT
    assert _grpc_route(default, [(HEADER, "/v1/models?beta=1")]) == BETA
    assert _grpc_route(default) == GENERAL  # absent: the method path, /seldon.protos.Router/Route


def test_grpc_a_bad_forwarded_path_is_invalid_argument(default):
    with pytest.raises(grpc.RpcError) as exc:
        _grpc_route(default, [(HEADER, "v1/chat")])
    assert exc.value.code() == grpc.StatusCode.INVALID_ARGUMENT and HEADER in exc.value.details()


def test_disabled_the_header_is_ignored():
    rp = _serve_rules("--path-header", "")
    try:
        assert route(rp.url, {HEADER: "/v1/chat/completions"}) == GENERAL
        assert route(rp.url, {HEADER: "not a path"}) == GENERAL  # not read at all
        assert _grpc_route(rp, [(HEADER, "/v1/chat/completions")]) == GENERAL
    finally:
        rp.stop()
    server = ThreadedWerkzeug(create_app(RuleRouter(config=json.dumps(CONFIG)), path_header=""))
    try:
        assert route(server.url, {HEADER: "/v1/chat/completions"}) == GENERAL
    finally:
        server.stop()


def test_the_header_name_from_the_environment():
    rp = _serve_rules(env={forwarded.ENV: "X-Original-URI"})
    try:
        assert route(rp.url, {"x-original-uri": "/v1/chat/completions"}) == CHAT
        assert route(rp.url, {HEADER: "/v1/chat/completions"}) == GENERAL  # the default is replaced
        assert _grpc_route(rp, [("x-original-uri", "/v1/chat/completions")]) == CHAT
    finally:
        rp.stop()


@pytest.mark.parametrize("args, env, named", [
    (["--path-header", "x original"], {}, "--path-header"),
    ([], {forwarded.ENV: "x:path"}, f"${forwarded.ENV}"),
])
def test_a_bad_header_name_stops_startup_naming_it(args, env, named):
    out = subprocess.run([sys.executable, "-m", "seldon_routers.cli", "serve", "ab-test", *args],
                         capture_output=True, text=True, env={**os.environ, **env}, cwd=str(REPO), timeout=60)
    assert out.returncode == 2, out.stderr
    assert named in out.stderr and "Traceback" not in out.stderr
