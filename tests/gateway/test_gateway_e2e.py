"""The gateway end to end: a `seldon-router gateway` process in front of vLLM-like test pods
(tests/llm_pod.py), called with the `openai` client, as a user would."""

from __future__ import annotations

import time

import httpx
import openai
import pytest
import requests

from gateway_support import MESSAGES, client, gateway, in_flight, pods_config, released
from llm_pod import LLMPod, spawn_pods
from support import wait_until


def test_plain_chat_completions_and_embeddings(two_pods):
    with gateway(pods_config(two_pods, strategy="least-request")) as gw:
        oa = client(gw)
        chat = oa.chat.completions.create(model="llama", messages=MESSAGES, max_tokens=4)
        assert chat.choices[0].message.content and chat.usage.completion_tokens == 4
        text = oa.completions.create(model="llama", prompt="Say this is a test!", max_tokens=3)
        assert text.usage.completion_tokens == 3
        emb = oa.embeddings.create(model="llama", input=["a", "b"])
        assert len(emb.data) == 2 and len(emb.data[0].embedding) == 8
        raw = oa.chat.completions.with_raw_response.create(model="llama", messages=MESSAGES, max_tokens=1)
        assert raw.headers["x-seldon-pod"] in ("pod-0", "pod-1")
        models = oa.models.list()
        assert [m.id for m in models.data] == ["llama"]
        released(gw, 2)
        # the body reached the pod as the client sent it
        path, headers, body = two_pods[0].seen[-1] if two_pods[0].seen else two_pods[1].seen[-1]
        assert body["model"] == "llama" and "stream_options" not in body


def test_streams_chunk_by_chunk_with_usage_charged_exactly(two_pods):
    for pod in two_pods:
        pod.token_time = 0.02
    with gateway(pods_config(two_pods)) as gw:
        oa = client(gw)
        arrivals, text = [], []
        for chunk in oa.chat.completions.create(model="llama", messages=MESSAGES, max_tokens=10, stream=True):
            arrivals.append(time.perf_counter())
            text += [c.delta.content or "" for c in chunk.choices]
            assert chunk.usage is None  # not asked for: the usage chunk the gateway asked for is not shown
        assert len(arrivals) >= 10 and arrivals[-1] - arrivals[1] > 0.1  # spread out: nothing buffered
        sent = [body for pod in two_pods for _, _, body in pod.seen]
        assert sent[-1]["stream_options"] == {"include_usage": True}
        asked = list(oa.chat.completions.create(model="llama", messages=MESSAGES, max_tokens=5, stream=True,
                                                stream_options={"include_usage": True}))
        assert asked[-1].usage.completion_tokens == 5
        released(gw, 2)
        metrics = requests.get(gw.url + "/metrics", timeout=5).text
        completion = sum(float(line.split()[-1]) for line in metrics.splitlines()
                         if line.startswith("seldon_gateway_tokens_total") and 'kind="completion"' in line)
        assert completion == 15


def test_a_pod_killed_mid_stream_is_an_error_and_its_count_is_released():
    pods = spawn_pods(2, token_time=0.05)
    try:
        with gateway(pods_config(pods)) as gw:
            oa = client(gw)
            stream = oa.chat.completions.create(model="llama", messages=MESSAGES, max_tokens=200, stream=True)
            first = next(iter(stream))
            pod = requests.get(gw.url + "/state", timeout=5).json()["state"]["in_flight"].index(1)
            pods[pod].kill()
            with pytest.raises((openai.APIError, httpx.HTTPError)):
                for _ in stream:
                    pass
            assert first is not None
            released(gw, 2)
            # the other pod still answers
            assert oa.chat.completions.create(model="llama", messages=MESSAGES, max_tokens=2).usage
    finally:
        for pod in pods:
            pod.stop()


def test_retries_before_the_first_byte_only(two_pods):
    pod = two_pods[0]
    with gateway(pods_config([pod], retries=2)) as gw:
        oa = client(gw)
        pod.fail_next = 2  # two 500s, then an answer: the third try
        assert oa.chat.completions.create(model="llama", messages=MESSAGES, max_tokens=2).usage.total_tokens > 0
        assert len(pod.seen) == 3
        released(gw, 1)
        # once streaming began, a failure is the client's, never retried
        pod.die_after_tokens = 2
        with pytest.raises((openai.APIError, httpx.HTTPError)):
            list(oa.chat.completions.create(model="llama", messages=MESSAGES, max_tokens=20, stream=True))
        assert len(pod.seen) == 4
        released(gw, 1)


def test_no_retries_left_is_the_pods_error_unless_the_fallback_pool_answers(two_pods):
    spare = LLMPod(models=["llama"]).start()
    try:
        with gateway(pods_config(two_pods, retries=1, fallback=[{"name": "spare", "url": spare.url}],
                                 models={"llama": {"fallback": []}})) as gw:
            for pod in two_pods:
                pod.fail_next = 10
            with pytest.raises(openai.APIStatusError) as err:  # the pod's last answer, as Envoy passes it on
                client(gw).chat.completions.create(model="llama", messages=MESSAGES, max_tokens=2)
            assert err.value.status_code == 500
            assert sum(len(p.seen) for p in two_pods) == 2  # the first try and one retry
            released(gw, 2)
        with gateway(pods_config(two_pods, retries=1, fallback=[{"name": "spare", "url": spare.url}])) as gw:
            raw = client(gw).chat.completions.with_raw_response.create(model="llama", messages=MESSAGES, max_tokens=2)
            assert raw.headers["x-seldon-pod"] == "spare"
            released(gw, 2)
    finally:
        spare.stop()


def test_rate_limited_is_a_429_with_retry_after(two_pods):
    with gateway(pods_config(two_pods, parameters={"rpm": 2})) as gw:
        oa = client(gw, default_headers={"user": "alice"})
        for _ in range(2):
            oa.chat.completions.create(model="llama", messages=MESSAGES, max_tokens=1)
        with pytest.raises(openai.RateLimitError) as err:
            oa.chat.completions.create(model="llama", messages=MESSAGES, max_tokens=1)
        assert int(err.value.response.headers["retry-after"]) >= 1
        # another user has a minute of their own
        client(gw, default_headers={"user": "bob"}).chat.completions.create(model="llama", messages=MESSAGES,
                                                                             max_tokens=1)
        released(gw, 2)


def test_unknown_model_is_a_404_and_bad_json_a_400(two_pods):
    with gateway(pods_config(two_pods)) as gw:
        with pytest.raises(openai.NotFoundError) as err:
            client(gw).chat.completions.create(model="gpt-5", messages=MESSAGES)
        assert "gpt-5" in err.value.message
        reply = requests.post(gw.url + "/v1/chat/completions", data=b"{not json", timeout=5)
        assert reply.status_code == 400 and "body" in reply.json()["error"]["message"]
        assert requests.get(gw.url + "/v1/chat/completions", timeout=5).status_code == 405
        missing = requests.get(gw.url + "/v2/models", timeout=5)
        assert missing.status_code == 404 and "/v2/models" in missing.json()["error"]["message"]
        released(gw, 2)
        assert sum(len(p.seen) for p in two_pods) == 0


def test_a_client_gone_mid_stream_cancels_the_pods_answer(two_pods):
    for pod in two_pods:
        pod.token_time = 0.05
    with gateway(pods_config(two_pods)) as gw:
        body = {"model": "llama", "messages": MESSAGES, "max_tokens": 400, "stream": True}
        with httpx.Client(timeout=10) as http:
            with http.stream("POST", gw.url + "/v1/chat/completions", json=body) as reply:
                chunks = reply.iter_raw()  # (held: a dropped iterator closes the response)
                next(chunks)
                assert sum(in_flight(gw)) == 1 and sum(p.active for p in two_pods) == 1
        started = time.monotonic()
        released(gw, 2)
        assert time.monotonic() - started < 2  # not the 20 s the answer would have taken
        wait_until(lambda: sum(p.active for p in two_pods) == 0, 5, 0.05, "the pod stopped generating")


def test_mirrored_requests_reach_the_mirror(two_pods):
    mirror = LLMPod(models=["llama"]).start()
    try:
        with gateway(pods_config(two_pods, mirror={"url": mirror.url, "fraction": 1.0})) as gw:
            client(gw).chat.completions.create(model="llama", messages=MESSAGES, max_tokens=1)
            wait_until(lambda: len(mirror.seen) == 1, 5, 0.05, "the mirror got its copy")
            assert mirror.seen[0][2]["messages"] == MESSAGES
    finally:
        mirror.stop()


def test_a_pod_down_is_taken_out_and_put_back(two_pods):
    with gateway(pods_config(two_pods)) as gw:
        two_pods[0].stop()
        oa = client(gw)
        for _ in range(4):  # a refused connection is retried on the other pod
            assert oa.chat.completions.with_raw_response.create(
                model="llama", messages=MESSAGES, max_tokens=1).headers["x-seldon-pod"] == "pod-1"
        two_pods[0].start()
        wait_until(lambda: all(p["healthy"] for p in
                               requests.get(gw.url + "/state", timeout=5).json()["state"]["signals"]["pods"]),
                   10, 0.1, "pod-0 back")


def test_two_replicas_share_limits_through_one_redis(two_pods, tmp_path):
    from redis_server import RedisServer, need_redis
    from servers import free_port

    need_redis()
    redis = RedisServer(free_port(), tmp_path).start()
    try:
        cfg = pods_config(two_pods, parameters={"rpm": 3}, state=redis.url)
        with gateway(cfg) as a, gateway(cfg) as b:
            served = 0
            for gw in (a, b, a, b, a):
                try:
                    client(gw, default_headers={"user": "carol"}).chat.completions.create(
                        model="llama", messages=MESSAGES, max_tokens=1)
                    served += 1
                except openai.RateLimitError:
                    pass
            assert served == 3
    finally:
        redis.stop()


def test_a_bad_config_exits_2_naming_the_field(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "gateway.yaml"
    path.write_text("pods: [{name: a, url: ftp://x}]\n")
    done = subprocess.run([sys.executable, "-m", "seldon_routers.cli", "gateway", "--config", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "pods[0].url" in done.stderr and "Traceback" not in done.stderr


