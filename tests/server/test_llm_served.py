"""The LLM router served: real `seldon-router serve llm` processes (two replicas on one
real redis-server, or one with the memory store), over REST and a real gRPC channel.
In-flight counts equal on both replicas (and in Redis), a completion on either replica
ends a request routed by the other, a user's limit is one limit across replicas (429 /
RESOURCE_EXHAUSTED with OpenAI's error body, Retry-After and x-ratelimit-* headers),
tokens settled from the usage a feedback reports; an unknown model (404) and an unknown
strategy (400) answer in both transports; the Flask mount sends the same headers.

The windows run on Redis' clock: every test ends well within one minute, so no window
edge is crossed (the edges are tested with an injected clock: tests/state/test_llm_redis.py)."""

from __future__ import annotations

import json
import signal

import grpc
import pytest
import requests
from google.protobuf import json_format

import servers
from redis_server import RedisServer, need_redis
from seldon_routers.proto import prediction_pb2 as pb
from seldon_routers.routers.llm.prompt import estimate_tokens, prompt_text
from state_cases import serve, state

UNIT = "llm"
PODS = json.dumps([{"name": "a", "models": ["llama"]}, {"name": "b", "models": ["llama"]}])
LIMITS = json.dumps({"users": {"carol": {"rpm": None, "tpm": 100}}})


@pytest.fixture
def redis_url(tmp_path):
    need_redis()
    server = RedisServer(servers.free_port(), tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
def stop_all():
    running = []
    yield running
    for rp in running:
        rp.stop(signal.SIGTERM)


def llm(*more: str) -> tuple:
    return ("llm", "--unit-id", UNIT, "--param", f"pods={PODS}", "--param", "rpm=3", "--param", f"limits={LIMITS}",
            *more)


def chat(puid: str = "", model: str = "llama", max_tokens: int = 10) -> dict:
    body = {"jsonData": {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": max_tokens}}
    if puid:
        body["meta"] = {"puid": puid}
    return body


def route(rp, body: dict, **headers) -> requests.Response:
    return requests.post(rp.url + "/route", json=body, headers=headers, timeout=10)


def complete(rp, puid: str, total_tokens: int | None = None, bare: bool = False) -> None:
    """A completion: the feedback naming the puid, with the response's usage (as jsonData,
    or bare: the OpenAI response as the gateway got it)."""
    openai = {"usage": {"total_tokens": total_tokens}, "choices": []}
    response = (openai if bare else {"jsonData": openai}) if total_tokens else {}
    r = requests.post(rp.url + "/send-feedback", json={"request": {"meta": {"puid": puid}}, "response": response},
                      timeout=10)
    assert r.status_code == 200, r.text


def grpc_complete(rp, puid: str, total_tokens: int) -> None:
    feedback = {"request": {"meta": {"puid": puid}}, "response": {"jsonData": {"usage": {"total_tokens": total_tokens}}}}
    with grpc.insecure_channel(rp.grpc_target) as channel:
        stub = channel.unary_unary("/seldon.protos.Router/SendFeedback", request_serializer=pb.Feedback.SerializeToString,
                                   response_deserializer=pb.SeldonMessage.FromString)
        stub(json_format.ParseDict(feedback, pb.Feedback()), timeout=10)


def grpc_route(rp, body: dict, metadata=()):
    with grpc.insecure_channel(rp.grpc_target) as channel:
        stub = channel.unary_unary("/seldon.protos.Router/Route", request_serializer=pb.SeldonMessage.SerializeToString,
                                   response_deserializer=pb.SeldonMessage.FromString)
        return stub(json_format.ParseDict(body, pb.SeldonMessage()), metadata=metadata, timeout=10)


def grpc_error(rp, body: dict, metadata=()) -> grpc.RpcError:
    try:
        grpc_route(rp, body, metadata)
    except grpc.RpcError as exc:
        return exc
    raise AssertionError("Route answered OK")


def in_flight(rp) -> dict:
    return state(rp)["store"]["in_flight"]


def replicas(redis, stop_all, *more):
    started = [serve(*llm("--state", redis.url, "--state-namespace", "llm-ns", *more)) for _ in range(2)]
    stop_all += started
    return started


def test_two_replicas_share_exact_in_flight_counts(redis_url, stop_all):
    a, b = replicas(redis_url, stop_all)
    routed = {}
    for i in range(10):
        rp = (a, b)[i % 2]
        r = route(rp, chat(f"p{i}"))
        assert r.status_code == 200, r.text
        routed[f"p{i}"] = r.json()["meta"]["routing"][UNIT]
    assert sorted(routed.values()).count(0) == 5  # least-request over the shared counts: 5 and 5
    assert in_flight(a) == in_flight(b) == {"a": 5, "b": 5}
    for puid in ("p0", "p2"):  # routed by a, completed on b
        complete(b, puid)
    grpc_complete(b, "p4", total_tokens=12)  # and over gRPC (its usage numbers arrive as floats)
    complete(a, "p0")  # again, on the other replica: nothing more
    expected = {"a": 5 - sum(routed[p] == 0 for p in ("p0", "p2", "p4")),
                "b": 5 - sum(routed[p] == 1 for p in ("p0", "p2", "p4"))}
    assert in_flight(a) == in_flight(b) == expected
    client = redis_url.client()
    assert {p: client.zcard(f"seldon-router:{{llm-ns}}:inflight:pod:{p}") for p in "ab"} == expected
    assert state(a)["state"]["in_flight"] == "shared (see the store)"


def test_one_rate_limit_across_replicas_and_transports(redis_url, stop_all):
    a, b = replicas(redis_url, stop_all)
    assert route(a, chat("r1"), user="alice").status_code == 200
    reply = route(b, chat("r2"), user="alice")
    assert reply.json()["meta"]["tags"][UNIT]["ratelimit_remaining"]["x-ratelimit-remaining-requests"] == "1"
    grpc_route(a, chat("r3"), metadata=(("user", "alice"),))
    refused = route(b, chat("r4"), user="alice")
    assert refused.status_code == 429
    body = refused.json()
    assert body["error"]["type"] == "rate_limit_error" and body["error"]["code"] == "rate_limit_exceeded"
    assert body["error"]["param"] is None and "requests per minute (RPM): limit 3, used 3" in body["error"]["message"]
    assert body["status"]["reason"] == "RATE_LIMITED" and body["status"]["info"] == body["error"]["message"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert (refused.headers["x-ratelimit-limit-requests"], refused.headers["x-ratelimit-remaining-requests"]) == ("3", "0")
    assert refused.headers["x-ratelimit-reset-requests"].endswith("s")
    exc = grpc_error(a, chat("r5"), metadata=(("user", "alice"),))
    assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and "limit 3" in exc.details()
    trailers = dict(exc.trailing_metadata())
    assert trailers["x-ratelimit-remaining-requests"] == "0" and 1 <= int(trailers["retry-after"]) <= 60
    assert in_flight(a) == in_flight(b) and sum(in_flight(a).values()) == 3  # the refused are not in flight
    assert route(a, chat("r6"), user="bob").status_code == 200  # another user: another limit
    assert route(b, chat("r7")).status_code == 200  # no user: no limit


def test_tokens_settled_from_the_usage_on_another_replica(redis_url, stop_all):
    a, b = replicas(redis_url, stop_all)
    assert route(a, chat("t1", max_tokens=60), user="carol").status_code == 200  # charged 62 of 100
    refused = route(b, chat("t2", max_tokens=60), user="carol")
    assert refused.status_code == 429 and "tokens per minute (TPM): limit 100" in refused.json()["error"]["message"]
    assert "x-ratelimit-remaining-requests" not in refused.headers  # carol has no rpm (null lifts the default)
    complete(b, "t1", total_tokens=12, bare=True)  # the response's usage: 12, not the estimate
    ok = route(b, chat("t2", max_tokens=60), user="carol")
    assert ok.status_code == 200, ok.text
    cost = estimate_tokens(prompt_text(chat()["jsonData"])) + 60  # the estimate: prompt + max_tokens
    assert int(ok.json()["meta"]["tags"][UNIT]["ratelimit_remaining"]["x-ratelimit-remaining-tokens"]) == 100 - 12 - cost


@pytest.fixture(scope="module")
def memory_router():
    rp = serve(*llm())
    yield rp
    rp.stop()


@pytest.mark.parametrize("case", ["model", "strategy"])
def test_unknown_model_and_strategy_over_rest_and_grpc(memory_router, case):
    body, headers = (chat(model="gpt-9"), {}) if case == "model" else (chat(), {"routing-strategy": "fastest:2"})
    r = route(memory_router, body, **headers)
    exc = grpc_error(memory_router, body, metadata=tuple(headers.items()))
    if case == "model":
        assert r.status_code == 404
        assert r.json()["error"]["type"] == "invalid_request_error" and r.json()["error"]["code"] == "model_not_found"
        assert "gpt-9" in r.json()["error"]["message"] and r.json()["status"]["reason"] == "MODEL_NOT_FOUND"
        assert exc.code() == grpc.StatusCode.NOT_FOUND and "gpt-9" in exc.details()
    else:
        assert r.status_code == 400 and "error" not in r.json()  # a Seldon error: no OpenAI body
        for name in ("fastest", "least-request", "prefix-cache", "random"):
            assert name in r.json()["status"]["info"]
        assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT and "least-request" in exc.details()


def test_memory_limits_in_one_process(memory_router):
    codes = [route(memory_router, chat(f"m{i}"), user="dave").status_code for i in range(4)]
    assert codes == [200, 200, 200, 429]
    assert state(memory_router)["state"]["limits"]["refused"] >= 1


def test_memory_limits_refuse_several_workers():
    from state_cases import refused

    done = refused(*llm("--workers", "2"))
    assert done.returncode != 0 and "--workers 2: with --state memory" in done.stderr + done.stdout


def test_flask_mount_sends_the_headers():
    from server_cases import ThreadedWerkzeug
    from seldon_routers.routers.llm.router import LLMRouter
    from seldon_routers.server.flask import create_app

    server = ThreadedWerkzeug(create_app(LLMRouter(pods=PODS, rpm=1), unit_id=UNIT))
    try:
        assert route(server, chat("f1"), user="erin").status_code == 200
        refused = route(server, chat("f2"), user="erin")
        assert refused.status_code == 429 and refused.headers["x-ratelimit-limit-requests"] == "1"
        assert refused.json()["error"]["code"] == "rate_limit_exceeded" and "Retry-After" in refused.headers
    finally:
        server.stop()


def test_workers_share_one_limit_through_redis(redis_url, stop_all):
    rp = serve(*llm("--state", redis_url.url, "--state-namespace", "workers-ns", "--workers", "2"))
    stop_all.append(rp)
    assert len(servers.workers_of(rp, 2)) == 2  # both workers answer before the count starts
    codes = [route(rp, chat(f"w{i}"), user="frank").status_code for i in range(6)]
    assert codes == [200, 200, 200, 429, 429, 429]  # fresh connections, spread over both: one limit
    assert sum(in_flight(rp).values()) == 3


def test_redis_down_is_a_503_until_it_is_back(redis_url, stop_all):
    rp = serve(*llm("--state", redis_url.url, "--state-namespace", "down-ns"))
    stop_all.append(rp)
    assert route(rp, chat("d1")).status_code == 200
    redis_url.stop()
    down = route(rp, chat("d2"))
    assert down.status_code == 503 and down.json()["status"]["reason"] == "STATE_STORE_UNAVAILABLE"
    assert state(rp)["store"]["up"] is False
    redis_url.start()  # empty (no persistence): the counts start again from nothing
    assert route(rp, chat("d3")).status_code == 200
    assert in_flight(rp) == {"a": 1, "b": 0} or in_flight(rp) == {"a": 0, "b": 1}
