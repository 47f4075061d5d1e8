"""Hostile shapes against a real `seldon-router gateway` in front of a simulated pod: deeply
nested and huge-number JSON bodies, long strings, huge and many headers, a client sending a
byte at a time (--read-timeout), a flood of connections. Each is a 4xx with OpenAI's error
object (or a closed connection), never a 5xx from the gateway itself, and a probe client is
answered meanwhile and afterwards."""

from __future__ import annotations

import asyncio
import json
import threading
import time

import pytest
import requests

from gateway_support import MESSAGES, gateway, pods_config, released
from llm_pod import LLMPod
from support import wait_until
from test_hostile_input import BIG, READ_TIMEOUT, SLACK, exchange, read_reply, request_bytes, trickling

CHAT = "/v1/chat/completions"


@pytest.fixture(scope="module")
def pod():
    pod = LLMPod(models=["llama"]).start()
    # http.server listens with a backlog of 5: the flood's 200 connections on to the pod had
    # their SYNs dropped and retried for a minute (a real pod, uvicorn, listens with 2048)
    pod._server.socket.listen(2048)
    yield pod
    pod.stop()


@pytest.fixture(scope="module")
def gw(pod):
    with gateway(pods_config([pod]), "--read-timeout", str(READ_TIMEOUT)) as gw:
        yield gw


def chat(gw, body, **kw) -> requests.Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return requests.post(gw.url + CHAT, data=data, headers={"Content-Type": "application/json"}, timeout=30, **kw)


def probe(gw) -> None:
    r = chat(gw, {"model": "llama", "messages": MESSAGES, "max_tokens": 1})
    assert r.status_code == 200, (r.status_code, r.text[:300])


def assert_openai_error(status: int, body: bytes, expected: int, *words: str) -> None:
    assert status == expected, (status, body[:300])
    error = json.loads(body)["error"]
    assert isinstance(error["message"], str) and error["type"] == "invalid_request_error", error
    for word in words:
        assert word in error["message"], (word, error["message"][:300])


# --- bodies --------------------------------------------------------------------------------

DEEP = b"[" * 10**5
CHAT_HEAD = b'{"model": "llama", "messages": [{"role": "user", "content": "hi"}], '
BODIES = {
    "nested-body": DEEP,
    "nested-messages": b'{"model": "llama", "messages": ' + DEEP,
    "nested-content": b'{"model": "llama", "messages": [{"role": "user", "content": ' + DEEP,
    "max_tokens-1e400": CHAT_HEAD + b'"max_tokens": 1e400}',
    "max_tokens-100000-digits": CHAT_HEAD + b'"max_tokens": ' + b"9" * 100_000 + b"}",
    "temperature--1e400": CHAT_HEAD + b'"temperature": -1e400}',
}


@pytest.mark.parametrize("body", list(BODIES.values()), ids=list(BODIES))
def test_nested_or_huge_number_bodies_are_400_and_reach_no_pod(gw, pod, body):
    seen = len(pod.seen)
    r = chat(gw, body)
    assert_openai_error(r.status_code, r.content, 400, "body")
    assert len(pod.seen) == seen
    probe(gw)


@pytest.mark.parametrize("field", ["content", "user", "role", "name"])
def test_a_megabyte_string_in_a_field_is_forwarded_and_answered(gw, field):
    message = {"role": "user", "content": "hi"}
    body = {"model": "llama", "messages": [message], "max_tokens": 1}
    if field == "user":
        body["user"] = BIG
    else:
        message[field] = BIG
    r = chat(gw, body)
    assert r.status_code == 200, (r.status_code, r.text[:300])
    probe(gw)
    assert "x" * 1000 not in gw.output()  # the request log's line quotes the user, cut short


def test_made_up_model_names_are_404_and_add_no_series_of_their_own(gw):
    """A 1 MB model name was a label kept for good: three made /metrics 50 MB."""
    for i in range(3):
        r = chat(gw, {"model": f"{i}{BIG}", "messages": MESSAGES})
        assert r.status_code == 404 and json.loads(r.content)["error"]["code"] == "model_not_found", r.text[:300]
        assert len(r.content) < 2000  # the error quotes the name, cut short
    assert "x" * 1000 not in gw.output()
    metrics = requests.get(gw.url + "/metrics", timeout=10).text
    assert "x" * 200 not in metrics
    assert 'model="other",pod="",status="404"' in metrics
    probe(gw)


# --- heads ---------------------------------------------------------------------------------

HEADS = {
    "1MB-header-value": request_bytes(CHAT, headers=[f"x-big: {BIG}"]),
    "10000-headers": request_bytes(CHAT, headers=[f"x-hostile-{i}: v" for i in range(10_000)]),
    "100KB-path": request_bytes(CHAT + "/p" * 50_000),
}


@pytest.mark.parametrize("data", list(HEADS.values()), ids=list(HEADS))
def test_an_oversized_request_head_is_431_with_openais_error_or_closed(gw, pod, data):
    seen = len(pod.seen)
    status, body = exchange(gw, data)
    if status is not None:
        assert_openai_error(status, body, 431, "headers")
    assert len(pod.seen) == seen
    probe(gw)


# --- slow clients --------------------------------------------------------------------------

@pytest.fixture()
def slow_client(gw):
    with trickling(gw.http_port) as start:
        yield start


def test_a_body_sent_a_byte_at_a_time_is_408_with_openais_error(gw, pod, slow_client):
    seen = len(pod.seen)
    head = CHAT_HEAD + b'"max_tokens": 1'
    sock = slow_client(b" " * 10_000 + b"}", first=request_bytes(CHAT, head, length=len(head) + 10_001))
    probe(gw)  # answered while the slow client holds its connection
    status, body = read_reply(sock, time.monotonic() + READ_TIMEOUT + SLACK)
    assert_openai_error(status, body, 408, "read timeout")
    assert read_reply(sock, time.monotonic() + SLACK) == (None, b"")  # and the connection closes
    assert len(pod.seen) == seen + 1  # the probe's only


@pytest.mark.parametrize("data", [b"", request_bytes(CHAT)[:60]], ids=["nothing", "headers-a-byte-at-a-time"])
def test_a_connection_without_its_headers_in_time_is_closed(gw, slow_client, data):
    sock = slow_client(data)
    probe(gw)
    assert read_reply(sock, time.monotonic() + READ_TIMEOUT + SLACK) == (None, b"")


# --- a flood ------------------------------------------------------------------------------

FLOOD = 200


async def _flood(url: str) -> list:
    import aiohttp

    body = {"model": "llama", "messages": MESSAGES, "max_tokens": 1}

    async def one(session):
        try:
            async with session.post(url + CHAT, json=body) as r:
                await r.read()
                return r.status
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            return type(exc).__name__

    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as session:
        return await asyncio.gather(*(one(session) for _ in range(FLOOD)))


def test_a_flood_of_held_requests_gets_no_5xx_and_others_are_answered(gw, pod):
    """Every generation held at the pod while 200 connections wait: the gateway still answers
    /v1/models and /health, and once the pod lets go, every request is answered."""
    pod.hold = threading.Event()
    result, seen = {}, len(pod.seen)
    flood = threading.Thread(target=lambda: result.update(statuses=asyncio.run(_flood(gw.url))), daemon=True)
    try:
        flood.start()
        wait_until(lambda: len(pod.seen) - seen >= FLOOD // 2, 30, 0.05, "the flood held at the pod")
        for path in ("/v1/models", "/health"):
            assert requests.get(gw.url + path, timeout=10).status_code == 200
    finally:
        pod.hold.set()
        flood.join(60)
        pod.hold = None
    statuses = result["statuses"]
    assert set(statuses) <= {200, 429}, sorted(set(map(str, statuses)))
    assert statuses.count(200) >= FLOOD // 2, statuses
    released(gw, 1)
    probe(gw)
