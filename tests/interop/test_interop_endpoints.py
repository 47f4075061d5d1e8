"""Every endpoint and method of Seldon's python wrapper (seldon-core-microservice 1.18.2,
wrapper.py get_rest_microservice / get_grpc_server), called on the wrapper serving a router
class and on our server serving the same class, side by side: the same status, the same
error shape, the same kind of reply.

Where the wrapper's answer is an accident of its implementation, ours differs on purpose,
and the tables below say so:
  - REST: a method or path it does not serve is a 404/405 that its catch-all error handler
    turns into a 500 (info "405 Method Not Allowed: ..."); GET on a POST-only path is a 404
    from Flask's static-file route. Ours answers 404 (no such path) or 405 (with Allow).
  - gRPC: a call the class does not define (Aggregate, GraphMetadata) raises in the servicer,
    which grpc reports as UNKNOWN; ours answers UNIMPLEMENTED, naming the call. Bytes that
    are no message: INTERNAL there (the deserializer failed), INVALID_ARGUMENT here.
"""

import json
import subprocess
from pathlib import Path

import pytest
import requests
from seldon_peers import peer_env, seldon_microservice
from servers import running_router

pytestmark = pytest.mark.peers

HERE = Path(__file__).resolve().parent
UNIT = "router"
PARAMS = {"n_branches": 2, "seed": 1}

# What wrapper.py registers for any unit (its own path list, not ours).
WRAPPER_ROUTES = {
    "/seldon.json": {"GET"},
    "/predict": {"GET", "POST"}, "/api/v1.0/predictions": {"POST"}, "/api/v0.1/predictions": {"POST"},
    "/send-feedback": {"GET", "POST"}, "/api/v1.0/feedback": {"POST"}, "/api/v0.1/feedback": {"POST"},
    "/transform-input": {"GET", "POST"}, "/transform-output": {"GET", "POST"},
    "/route": {"GET", "POST"}, "/aggregate": {"GET", "POST"},
    "/health/ping": {"GET"}, "/health/status": {"GET"}, "/api/v1.0/health/status": {"GET"},
    "/metadata": {"GET"}, "/api/v1.0/metadata": {"GET"},
}
PATHS = [*WRAPPER_ROUTES, "/no-such-endpoint"]
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]

MESSAGE = {"data": {"names": ["a", "b"], "ndarray": [[1.0, 2.0]]}, "meta": {"puid": "p1", "tags": {"user": "u1"}}}
FEEDBACK = {"request": MESSAGE, "response": {"meta": {"routing": {UNIT: 1}}}, "reward": 1.0}
MESSAGES = {"seldonMessages": [MESSAGE, MESSAGE]}

def body_for(path: str) -> dict:
    return FEEDBACK if "feedback" in path else MESSAGES if path == "/aggregate" else MESSAGE


@pytest.fixture(scope="module")
def servers(seldon_venv):
    """The wrapper and our server, both serving seldon_routers.ABTest as unit `router`."""
    seldon_params = [{"name": k, "value": str(v), "type": "INT"} for k, v in PARAMS.items()]
    args = [a for k, v in PARAMS.items() for a in ("--param", f"{k}={v}")]
    with seldon_microservice(seldon_venv, "seldon_routers.ABTest", seldon_params, unit_id=UNIT) as wrapper, \
            running_router("seldon_routers.ABTest", *args, "--unit-id", UNIT) as ours:
        yield wrapper, ours


def call(base: str, method: str, path: str, form: str) -> requests.Response:
    kwargs = {}
    if form == "body" and method in ("POST", "PUT", "PATCH"):
        kwargs["json"] = body_for(path)
    elif form == "query":
        kwargs["params"] = {"json": json.dumps(body_for(path))}
    elif form == "form":
        kwargs["data"] = {"json": json.dumps(body_for(path))}
    return requests.request(method, base + path, timeout=10, **kwargs)


def wrapper_serves(r: requests.Response, get: requests.Response | None = None) -> bool:
    """False when the wrapper did not route the call to a view: its 404/405, turned into a
    500 by its catch-all handler. A HEAD reply has no body: its GET tells."""
    if r.request.method == "HEAD":
        return wrapper_serves(get)
    if r.status_code != 500:
        return True
    info = r.json()["status"]["info"]
    return not info.startswith(("404 Not Found", "405 Method Not Allowed"))


def assert_seldon_error(r: requests.Response, reason: str | None = None) -> dict:
    status = r.json()["status"]
    assert set(status) == {"status", "info", "code", "reason"} and status["status"] == 1 and status["code"] == -1
    assert status["info"], r.text
    if reason is not None:
        assert status["reason"] == reason, r.text
    return status


def assert_same(path: str, method: str, theirs: requests.Response, ours: requests.Response,
                theirs_get: requests.Response | None = None) -> None:
    where = (f"{method} {path}: wrapper {theirs.status_code} {theirs.text[:200]!r}, "
             f"ours {ours.status_code} {ours.text[:200]!r}")
    if method == "OPTIONS":
        if path in WRAPPER_ROUTES:  # both answer the methods (the wrapper also for unknown paths)
            assert theirs.status_code == ours.status_code == 200, where
            assert set(WRAPPER_ROUTES[path]) <= set(ours.headers["allow"].split(", ")), where
        return
    if not wrapper_serves(theirs, theirs_get):
        assert ours.status_code == (405 if path in WRAPPER_ROUTES else 404), where
        if method != "HEAD":
            assert_seldon_error(ours, "METHOD_NOT_ALLOWED" if path in WRAPPER_ROUTES else "NOT_FOUND")
        return
    assert ours.status_code == theirs.status_code, where
    if method == "HEAD":
        assert ours.content == b"" and theirs.content == b"", where
        return
    if theirs.status_code >= 400:
        assert_seldon_error(ours, assert_seldon_error(theirs)["reason"])
        return
    if path == "/health/ping":
        assert ours.text == theirs.text == "pong", where
        return
    mine, wrapper = ours.json(), theirs.json()
    if path == "/seldon.json":  # each its own API's document (the wrapper's is Seldon's external API)
        assert mine["openapi"].startswith("3.") and wrapper["openapi"].startswith("3."), where
        assert "paths" in mine and "paths" in wrapper, where
        return
    assert set(mine) == set(wrapper), where  # every 200 reply has the wrapper's shape
    if "data" in wrapper:
        assert set(mine["data"]) == set(wrapper["data"]), where
    assert mine.get("meta", {}).get("puid") == wrapper.get("meta", {}).get("puid"), where


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("path", PATHS)
def test_rest_endpoint_and_method_answer_as_the_wrapper(servers, path, method):
    wrapper, ours = servers
    theirs = call(wrapper.url, method, path, "body")
    theirs_get = call(wrapper.url, "GET", path, "body") if method == "HEAD" else None
    assert_same(path, method, theirs, call(ours.url, method, path, "body"), theirs_get)


@pytest.mark.parametrize("form", ["query", "form", "none"])
@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("path", [p for p, methods in WRAPPER_ROUTES.items() if "POST" in methods])
def test_rest_message_forms_answer_as_the_wrapper(servers, path, method, form):
    """The message as ?json= and as a form field json=, and no message at all (a 400)."""
    wrapper, ours = servers
    assert_same(path, method, call(wrapper.url, method, path, form), call(ours.url, method, path, form))


def test_aggregate_is_refused_as_by_the_wrapper(servers):
    wrapper, ours = servers
    theirs = requests.post(wrapper.url + "/aggregate", json=MESSAGES, timeout=10)
    mine = requests.post(ours.url + "/aggregate", json=MESSAGES, timeout=10)
    assert theirs.status_code == mine.status_code == 400
    assert assert_seldon_error(theirs)["info"] == "Aggregate not defined"
    assert "aggregate is not defined for a router" in assert_seldon_error(mine, "MICROSERVICE_BAD_DATA")["info"]


def test_transform_and_predict_replies_carry_the_message_as_the_wrapper(servers):
    wrapper, ours = servers
    for path in ("/transform-input", "/transform-output"):
        theirs = requests.post(wrapper.url + path, json=MESSAGE, timeout=10).json()
        mine = requests.post(ours.url + path, json=MESSAGE, timeout=10).json()
        # The wrapper renames the columns t:0, t:1 (its class_names); ours are the request's.
        assert mine["data"]["ndarray"] == theirs["data"]["ndarray"] == MESSAGE["data"]["ndarray"]
        assert mine["meta"]["tags"] == theirs["meta"]["tags"] == {"user": "u1"}
    for path in ("/predict", "/api/v1.0/predictions", "/api/v0.1/predictions"):
        theirs = requests.post(wrapper.url + path, json=MESSAGE, timeout=10).json()
        mine = requests.post(ours.url + path, json=MESSAGE, timeout=10).json()
        assert mine["data"] == theirs["data"] == {"names": [], "ndarray": []}
        assert mine["meta"]["tags"] == theirs["meta"]["tags"] == {"user": "u1"}


# --- gRPC -----------------------------------------------------------------------------------

# The wrapper's code -> ours, where the wrapper's is an accident (see the module docstring).
GRPC_CODES = {"UNKNOWN": "UNIMPLEMENTED", "INTERNAL": "INVALID_ARGUMENT"}


def grpc_calls(seldon_python: Path, target: str) -> dict:
    proc = subprocess.run([str(seldon_python), str(HERE / "seldon_grpc_calls.py"), target, UNIT],
                          capture_output=True, text=True, timeout=120, env=peer_env(), cwd="/")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def grpc_answers(servers, seldon_python):
    wrapper, ours = servers
    return grpc_calls(seldon_python, wrapper.grpc_target), grpc_calls(seldon_python, ours.grpc_target)


def test_grpc_every_method_answers_as_the_wrapper(grpc_answers):
    theirs, mine = grpc_answers
    assert set(theirs) == set(mine)
    # Every service the wrapper registers for a unit, each method answered (not UNIMPLEMENTED).
    assert {name.split("/")[0] for name in theirs if ":" not in name} == {
        "Generic", "Model", "Router", "Transformer", "OutputTransformer", "Combiner", "Seldon"}
    for name, wrapper in theirs.items():
        answer = mine[name]
        expected = GRPC_CODES.get(wrapper["code"], wrapper["code"])
        assert answer["code"] == expected, f"{name}: wrapper {wrapper}, ours {answer}"
        if expected != "OK":
            assert answer["details"], f"{name}: an error must say why"
        elif name.endswith(("Route", "Predict", "TransformInput", "TransformOutput")):
            assert set(answer["reply"]) == set(wrapper["reply"]), f"{name}: wrapper {wrapper}, ours {answer}"
            assert answer["reply"]["meta"]["puid"] == wrapper["reply"]["meta"]["puid"] == "p1"


def test_grpc_calls_a_router_does_not_define(grpc_answers):
    theirs, mine = grpc_answers
    for name in ("Generic/Aggregate", "Combiner/Aggregate"):
        assert theirs[name]["code"] == "UNKNOWN"
        assert mine[name]["code"] == "UNIMPLEMENTED" and "only a COMBINER aggregates" in mine[name]["details"]
    assert mine["Seldon/GraphMetadata"]["code"] == "UNIMPLEMENTED"
    assert theirs["missing:Router/Predict"]["code"] == mine["missing:Router/Predict"]["code"] == "UNIMPLEMENTED"


def test_grpc_metadata_decodes_as_seldons_message(grpc_answers):
    """SeldonModelMetadata.custom is map<string, string> in Seldon's proto: our reply must
    decode with it (the non-string n_children is sent as its JSON text)."""
    _, mine = grpc_answers
    for name in ("Model/Metadata", "Seldon/ModelMetadata"):
        reply = mine[name]["reply"]
        assert reply["custom"] == {"type": "ROUTER", "unit": UNIT, "n_children": "2"}, reply
        assert reply["name"] == "ab-test"  # the built-in name, as on /metadata


def test_grpc_transform_echoes_and_predict_is_empty(grpc_answers):
    theirs, mine = grpc_answers
    for name in ("Generic/TransformInput", "Transformer/TransformInput", "OutputTransformer/TransformOutput"):
        assert mine[name]["reply"]["data"]["ndarray"] == theirs[name]["reply"]["data"]["ndarray"] == [[1.0, 2.0]]
    for name in ("Model/Predict", "Seldon/Predict"):
        assert mine[name]["reply"]["data"] == theirs[name]["reply"]["data"] == {"ndarray": []}


def test_the_openapi_document_is_package_data(seldon_venv):
    """seldon_env.sh pip-installs this project into the Seldon venv: the document must be
    in the installed package, which only setup.cfg's package_data puts there."""
    [installed] = seldon_venv.glob("lib/python*/site-packages/seldon_routers/server/openapi/seldon.json")
    checked_in = HERE.parents[1] / "seldon_routers" / "server" / "openapi" / "seldon.json"
    assert installed.read_bytes() == checked_in.read_bytes()
