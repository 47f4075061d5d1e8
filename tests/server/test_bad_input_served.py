"""Bad input that fuzzing served routers answered with a 5xx, or accepted and let change
state (issue 11, section 6), behind real servers in process (tests/servers.py serving: the
routers built from string parameters as `seldon-router serve` builds them). Each case is the
client's fault: a 400 / INVALID_ARGUMENT naming the field that changes nothing, or, where
the input is valid (a negative reward for a router whose rewards are any real number), a
success applied exactly once. Over REST and gRPC wherever the wire can carry the input."""

from __future__ import annotations

import contextlib
import json

import grpc
import pytest
import requests
from google.protobuf import json_format

from seldon_routers.proto import prediction_pb2 as pb
from servers import serving
from support import scrape

RULES = {"children": ["a", "b"], "fallback": "a",
         "rules": [{"name": "tier", "match": {"tags": {"tier": "gold"}}, "to": "b"},
                   {"name": "model", "match": {"json": {"model": {"prefix": "llama"}}}, "to": "b"}]}
# name -> (unit id, router, its parameters); classifier_models is tests/routers/classifier's
ROUTERS = {
    "lin-ucb": ("lin", "lin-ucb", ("n_branches=2", "seed=0")),
    "thompson": ("ts", "thompson-sampling", ("n_branches=2", "seed=0")),
    "canary": ("cn", "canary", ("min_reward=0.5", "interval=3600", "seed=0", "sticky_key=tag:user")),
    "ab-test": ("ab", "ab-test", ("weights=1:1", "seed=0")),
    "rules": ("rules", "rules", (f"config={json.dumps(RULES)}",)),
    "classifier": ("clf", "classifier_models.LinearClassifier", ()),
}
OK, BAD = "ok", "bad"


@pytest.fixture(scope="module")
def served():
    """Every router of ROUTERS, each served in process."""
    with contextlib.ExitStack() as stack:
        yield {name: stack.enter_context(serving(spec, *pairs, unit_id=unit))
               for name, (unit, spec, pairs) in ROUTERS.items()}


def unit(name: str) -> str:
    return ROUTERS[name][0]


def call(rp, transport: str, endpoint: str, body) -> tuple:
    """(OK or BAD, error info) of one call; anything else (a 5xx, INTERNAL) fails the test.
    body: a dict, or for REST only, raw JSON bytes."""
    if transport == "rest":
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        r = requests.post(rp.url + ("/route" if endpoint == "route" else "/send-feedback"), data=data,
                          headers={"Content-Type": "application/json"}, timeout=10)
        assert r.status_code in (200, 400), (r.status_code, r.text[:1000])
        return (OK, "") if r.status_code == 200 else (BAD, r.json()["status"]["info"])
    cls, method = (pb.SeldonMessage, "Route") if endpoint == "route" else (pb.Feedback, "SendFeedback")
    message = json_format.ParseDict(body, cls())
    with grpc.insecure_channel(rp.grpc_target) as channel:
        stub = channel.unary_unary(f"/seldon.protos.Router/{method}", request_serializer=cls.SerializeToString,
                                   response_deserializer=pb.SeldonMessage.FromString)
        try:
            stub(message, timeout=10)
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT, (exc.code(), exc.details()[:1000])
            return BAD, exc.details()
    return OK, ""


def state(rp) -> dict:
    r = requests.get(rp.url + "/state", timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["state"]


def feedback(name: str, routing=0, reward=1.0, request=None, puid: str = "", tags=None) -> dict:
    meta = {"routing": {unit(name): routing}}
    if puid:
        meta["puid"] = puid
    if tags is not None:
        meta["tags"] = tags
    return {"request": {"data": {"ndarray": [[1.0, 0.0, 0.0, 0.0]]}} if request is None else request,
            "response": {"meta": meta}, "reward": reward}


TRANSPORTS = pytest.mark.parametrize("transport", ["rest", "grpc"])


# --- negative rewards: applied once, counted, never a 500 ---------------------------------

@TRANSPORTS
def test_a_negative_reward_on_lin_ucb_is_applied_once_and_answered(served, transport):
    """lin-ucb takes any real reward. The reward counter refused a negative increment after
    the update, so the call was a 500 and a client's retry counted it twice."""
    rp = served["lin-ucb"]
    before = state(rp)["pulls"][0]
    body = feedback("lin-ucb", reward=-1.0, request={"data": {"ndarray": [[1.0, 2.0]]}}, puid=f"neg-{transport}")
    assert call(rp, transport, "feedback", body) == (OK, "")
    assert call(rp, transport, "feedback", body) == (OK, "")  # the retry: a duplicate, applied once
    assert state(rp)["pulls"][0] == before + 1


@TRANSPORTS
def test_a_negative_reward_moves_the_reward_metric_down(served, transport):
    """A router that does not learn takes any reward; its metric is a summary (sum and count)
    of the rewards, which may be negative."""
    rp = served["ab-test"]
    key = frozenset({"child": "1"}.items())
    before = scrape(rp)
    assert call(rp, transport, "feedback", feedback("ab-test", routing=1, reward=-0.5)) == (OK, "")
    after = scrape(rp)
    assert after[("seldon_router_reward_sum", key)] == before.get(("seldon_router_reward_sum", key), 0) - 0.5
    assert after[("seldon_router_reward_count", key)] == before.get(("seldon_router_reward_count", key), 0) + 1
    assert after[("seldon_router_feedback_total", key)] == before.get(("seldon_router_feedback_total", key), 0) + 1


# --- canary: rewards bounded as the bandits bound them ---------------------------------

@TRANSPORTS
@pytest.mark.parametrize("reward", [-1.0, 3.4e38, 1.5])
def test_canary_refuses_a_reward_outside_its_range_and_changes_nothing(served, transport, reward):
    """min_reward set, no reward_range: rewards are success fractions in [0, 1]. A negative
    one was applied and then a 500; 3.4e38 was accepted and dominated the candidate's mean."""
    rp = served["canary"]
    before = state(rp)["totals"]
    outcome, info = call(rp, transport, "feedback", feedback("canary", routing=1, reward=reward))
    assert outcome == BAD and info.startswith("reward: must be within [0, 1]"), info
    assert state(rp)["totals"] == before


# --- a feedback's request data is decoded, whatever the router ----------------------------

@TRANSPORTS
@pytest.mark.parametrize("name", list(ROUTERS))
def test_feedback_whose_request_tensor_is_malformed_is_400_on_every_router(served, transport, name):
    """The canary never read the request, so it accepted a tensor every other router refused."""
    rp = served[name]
    before = state(rp)
    body = feedback(name, request={"data": {"tensor": {"shape": [3], "values": [1.0]}}})
    outcome, info = call(rp, transport, "feedback", body)
    assert outcome == BAD and info.startswith("request.data.tensor"), info
    assert state(rp) == before


# --- rows come from data present ---------------------------------------------------------

@TRANSPORTS
@pytest.mark.parametrize("request_data", [
    {"tensor": {"shape": [2147483647, 0], "values": []}},  # 2**31 - 1 rows of nothing
    {"tensor": {"shape": [3, 0], "values": []}},
    {"ndarray": [[]]},
    {"tensor": {"shape": [10_001, 1], "values": [0.5] * 10_001}},  # over request.MAX_ROWS
], ids=["int32-max-rows-of-nothing", "three-empty-rows", "one-empty-row", "over-the-bound"])
def test_a_bandit_counts_rows_of_data_present_within_a_bound(served, transport, request_data):
    """A 100-byte feedback added 2,147,483,647 pulls to an arm."""
    rp = served["thompson"]
    before = state(rp)
    outcome, info = call(rp, transport, "feedback", feedback("thompson", request={"data": request_data}))
    assert outcome == BAD and info.startswith("request"), info
    if "values" in request_data.get("tensor", {}) and request_data["tensor"]["values"]:
        assert info.startswith("request.data.tensor: 10001 rows in one request"), info
    assert state(rp) == before


# --- feedback routing of routers that do not learn ---------------------------------------

@TRANSPORTS
@pytest.mark.parametrize("name", ["ab-test", "rules", "classifier"])
def test_feedback_routing_outside_the_children_is_400_and_adds_no_series(served, transport, name):
    """The feedback counter is labelled by the routing: unchecked, 2,000 feedbacks made
    2,001 Prometheus series."""
    rp = served[name]
    outcome, info = call(rp, transport, "feedback", feedback(name, routing=1000))
    assert outcome == BAD and info.startswith(f"response.meta.routing.{unit(name)}: 1000"), info
    assert call(rp, transport, "feedback", feedback(name, routing=-3))[0] == BAD
    for routing in (-2, -1, 0, 1):  # none, all, and each child: what the executor records
        assert call(rp, transport, "feedback", feedback(name, routing=routing)) == (OK, "")
    labels = {dict(labels).get("child") for (sample, labels) in scrape(rp) if sample.startswith("seldon_router_")}
    assert labels <= {None, "-2", "-1", "0", "1"}, labels


# --- deeply nested values in error messages and rules ----------------------------------

DEEP = b"[" * 900 + b"1" + b"]" * 900  # JSON nests up to 1024 levels here; Python's repr gives up near 1000


DEEP_OBJECT = b'{"a": ' * 900 + b"1" + b"}" * 900


def _with(prefix: str, suffix: str, deep: bytes = DEEP) -> bytes:
    return prefix.encode() + deep + suffix.encode()


@pytest.mark.parametrize("name, endpoint, body, field", [
    ("thompson", "route", _with('{"strData": "x", "meta": {"routing": {"other": ', '}}}'), "meta.routing.other"),
    ("canary", "feedback",
     _with('{"response": {"meta": {"routing": {"cn": 1}, "tags": {"error": ', '}}}, "reward": 1}'),
     "response.meta.tags.error"),
    ("canary", "route", _with('{"strData": "x", "meta": {"tags": {"user": ', '}}}'), "meta.tags.user"),
    ("rules", "route", _with('{"strData": "x", "meta": {"tags": {"tier": ', '}}}'), "meta.tags.tier"),
    ("rules", "route", _with('{"jsonData": {"model": ', '}}'), "jsonData.model"),
    # protobuf's json_format recursed into these, and its ParseError quoted them
    ("ab-test", "route", _with('{"customData": {"@type": "type.googleapis.com/google.protobuf.ListValue", '
                               '"value": ', '}}', DEEP_OBJECT), "customData"),
    ("thompson", "feedback", _with('{"request": {"data": {"tftensor": {"dtype": "DT_FLOAT", "floatVal": ',
                                   '}}}, "response": {"meta": {"routing": {"ts": 0}}}, "reward": 1}', DEEP_OBJECT),
     "request.data.tftensor"),
], ids=["int32-routing", "canary-error-tag", "sticky-tag", "rules-tag", "rules-json-field", "custom-data",
        "tftensor"])
def test_a_deeply_nested_value_is_400_naming_the_field(served, name, endpoint, body, field):
    """Quoting (repr) or reading (json.dumps, str) a value nested 900 deep was a RecursionError,
    a 500. REST only: protobuf's recursion limit (100 messages) refuses such a gRPC message
    before any of our code sees it."""
    rp = served[name]
    before = state(rp)
    outcome, info = call(rp, "rest", endpoint, body)
    assert outcome == BAD and info.startswith(field), info
    assert len(info) < 1000, info  # what an error quotes is cut short
    if endpoint == "feedback":
        assert state(rp) == before


# --- the classifier's jsonData -----------------------------------------------------------

DEEP_JSON = json.loads(DEEP)


@pytest.mark.parametrize("transport, json_data", [
    ("rest", [[1, 0, 0, 0], [1, 0]]), ("grpc", [[1, 0, 0, 0], [1, 0]]),  # ragged
    ("rest", [[1, 0, 0, 0], 7]), ("grpc", [[1, 0, 0, 0], 7]),
    # deeper than numpy's 64 dimensions; gRPC cannot carry it (protobuf nests 100 messages: 49 lists)
    ("rest", DEEP_JSON),
], ids=["ragged-rest", "ragged-grpc", "row-and-number-rest", "row-and-number-grpc", "deep-rest"])
def test_classifier_ragged_or_deep_json_data_is_400(served, transport, json_data):
    """np.asarray raised on these: a 500, where the same value as an ndarray was a 400."""
    body = {"jsonData": json_data}
    outcome, info = call(served["classifier"], transport, "route", DEEP_BODY if json_data is DEEP_JSON else body)
    assert outcome == BAD and info.startswith("features"), info
    body = {"data": {"ndarray": json_data}}
    outcome, info = call(served["classifier"], transport, "route",
                         _with('{"data": {"ndarray": ', "}}") if json_data is DEEP_JSON else body)
    assert outcome == BAD, info


DEEP_BODY = _with('{"jsonData": ', "}")  # raw bytes: Python's json module cannot write it
