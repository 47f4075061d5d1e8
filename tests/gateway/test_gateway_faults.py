"""The gateway when pods misbehave in ways short of dying: a 5xx whose body breaks, a usage
that is not OpenAI's, a client leaving a non-streamed answer, every pod down with a
fallback pool. Each ends with every request released (the router's in-flight counts and the
in-flight gauge back to 0)."""

from __future__ import annotations

import time

import openai
import requests

from gateway_support import MESSAGES, client, gateway, in_flight, pods_config, released
from llm_pod import LLMPod, _Cut
from support import wait_until


class BrokenPod(LLMPod):
    """Answers chat with a 503 whose body is cut after a few bytes (a pod crashing as it fails)."""

    ROUTES = {**LLMPod.ROUTES, ("POST", "/v1/chat/completions"): "broken"}

    def broken(self, body, headers):
        def chunks():
            yield b'{"error": '
            raise _Cut()
        return 503, "application/json", chunks()


class OddUsagePod(LLMPod):
    """Answers chat with a `usage` in another API's names."""

    ROUTES = {**LLMPod.ROUTES, ("POST", "/v1/chat/completions"): "odd"}

    def odd(self, body, headers):
        reply = {"id": "x", "object": "chat.completion", "created": 0, "model": "llama", "usage": {"input_tokens": 3},
                 "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}]}
        return 200, "application/json", __import__("json").dumps(reply).encode()


def gauge(gw, name: str) -> float:
    text = requests.get(gw.url + "/metrics", timeout=5).text
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))


def test_a_5xx_whose_body_breaks_is_retried_then_answered_by_the_fallback_and_released():
    broken, spare = BrokenPod().start(), LLMPod().start()
    try:
        cfg = pods_config([broken], retries=1, fallback=[{"name": "spare", "url": spare.url}])
        with gateway(cfg) as gw:
            raw = client(gw).chat.completions.with_raw_response.create(model="llama", messages=MESSAGES, max_tokens=2)
            assert raw.headers["x-seldon-pod"] == "spare"
            assert broken.calls["/v1/chat/completions"] == 2  # the try and its retry
            released(gw, 1)
            assert gauge(gw, "seldon_gateway_in_flight") == 0
            assert gauge(gw, 'seldon_gateway_upstream_errors_total{pod="pod-0",reason="http_503"}') == 2
    finally:
        broken.stop()
        spare.stop()


def test_a_usage_in_other_names_is_answered_and_still_released():
    pod = OddUsagePod().start()
    try:
        with gateway(pods_config([pod])) as gw:
            chat = client(gw).chat.completions.create(model="llama", messages=MESSAGES, max_tokens=2)
            assert chat.choices[0].message.content == "hi"
            released(gw, 1)
    finally:
        pod.stop()


def test_pods_are_not_asked_to_compress(two_pods):
    with gateway(pods_config(two_pods)) as gw:
        oa = client(gw, default_headers={"accept-encoding": "gzip"})
        oa.chat.completions.create(model="llama", messages=MESSAGES, max_tokens=1)
        _, headers, _ = next(pod.seen[-1] for pod in two_pods if pod.seen)
        assert "accept-encoding" not in headers  # the gateway reads the answer: identity


def test_a_client_leaving_a_non_streamed_answer_releases_it_at_once(two_pods):
    for pod in two_pods:
        pod.ttft = 20.0
    with gateway(pods_config(two_pods)) as gw:
        try:
            requests.post(gw.url + "/v1/chat/completions", json={"model": "llama", "messages": MESSAGES}, timeout=1)
        except requests.exceptions.ReadTimeout:
            pass
        left = time.monotonic()
        released(gw, 2)
        assert time.monotonic() - left < 3  # not when the pod would have answered
        assert gauge(gw, "seldon_gateway_in_flight") == 0
    for pod in two_pods:
        pod.ttft = 0.0


def test_every_pod_down_goes_to_the_fallback_pool(two_pods):
    spare = LLMPod().start()
    try:
        with gateway(pods_config(two_pods, fallback=[{"name": "spare", "url": spare.url}])) as gw:
            for pod in two_pods:
                pod.stop()
            wait_until(lambda: not any(p["healthy"] for p in
                                       requests.get(gw.url + "/state", timeout=5).json()["state"]["signals"]["pods"]),
                       10, 0.1, "both pods down")
            raw = client(gw).chat.completions.with_raw_response.create(model="llama", messages=MESSAGES, max_tokens=1)
            assert raw.headers["x-seldon-pod"] == "spare"
            assert in_flight(gw) == [0, 0]
    finally:
        spare.stop()


def test_refused_requests_are_counted_and_wrong_methods_name_the_right_one(two_pods):
    with gateway(pods_config(two_pods)) as gw:
        try:
            client(gw).chat.completions.create(model="gpt-5", messages=MESSAGES)
        except openai.NotFoundError:
            pass
        assert gauge(gw, 'seldon_gateway_requests_total{model="gpt-5",pod="",status="404"}') == 1
        reply = requests.options(gw.url + "/v1/chat/completions", timeout=5)
        assert reply.status_code == 405 and reply.headers["allow"] == "POST"


def test_a_retry_goes_to_another_pod(two_pods):
    failing, good = two_pods
    failing.fail_next = 10 ** 6  # every generation a 500
    with gateway(pods_config(two_pods, retries=1, strategy="least-request")) as gw:
        oa = client(gw)
        for _ in range(10):  # the failing pod, once idle again, looks as good as the other: not tried again
            raw = oa.chat.completions.with_raw_response.create(model="llama", messages=MESSAGES, max_tokens=1)
            assert raw.headers["x-seldon-pod"] == "pod-1"
        assert len(good.seen) == 10 and len(failing.seen) <= 10
        released(gw, 2)
