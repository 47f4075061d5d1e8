"""The test pod's capacity option (tests/llm_pod.py `slots`): off by default; when set, at
most `slots` requests generate at once, the rest wait in a FIFO queue (reported as waiting),
and prefills are serialized. Lower bounds on time only (sleeps are never shorter)."""

import json
import threading
import time
import urllib.request

from llm_pod import LLMPod


def chat(pod: LLMPod, content: str, stream: bool, max_tokens: int, out: list) -> None:
    body = {"model": "llama", "messages": [{"role": "user", "content": content}], "max_tokens": max_tokens,
            "stream": stream}
    req = urllib.request.Request(pod.url + "/v1/chat/completions", json.dumps(body).encode(),
                                 {"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        r.read()
        out.append((content, r.status, time.monotonic()))


def gauges(pod: LLMPod) -> dict:
    with urllib.request.urlopen(pod.url + "/metrics", timeout=5) as r:
        text = r.read().decode()
    return {name: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            for name in ("vllm:num_requests_running", "vllm:num_requests_waiting") if line.startswith(name + "{")}


def start(pod: LLMPod, contents, stream=True, max_tokens=3, gap=0.0) -> tuple[list, list]:
    out, threads = [], []
    for c in contents:
        threads.append(threading.Thread(target=chat, args=(pod, c, stream, max_tokens, out)))
        threads[-1].start()
        time.sleep(gap)
    return threads, out


def test_without_slots_every_request_runs_at_once():
    with LLMPod() as pod:
        pod.token_time = 0.2
        threads, out = start(pod, ["a", "b", "c"])
        deadline = time.monotonic() + 5
        while gauges(pod)["vllm:num_requests_running"] < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert gauges(pod) == {"vllm:num_requests_running": 3.0, "vllm:num_requests_waiting": 0.0}
        for t in threads:
            t.join()
        assert [s for _, s, _ in out] == [200] * 3


def test_slots_queue_the_rest_first_come_first_served():
    with LLMPod() as pod:
        pod.slots, pod.token_time = 2, 0.2  # 3 tokens: each holds its slot >= 0.4 s
        threads, out = start(pod, ["a", "b", "c", "d"], gap=0.05)
        deadline = time.monotonic() + 5
        while gauges(pod)["vllm:num_requests_waiting"] < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert gauges(pod) == {"vllm:num_requests_running": 2.0, "vllm:num_requests_waiting": 2.0}
        for t in threads:
            t.join()
        assert sorted(s for _, s, _ in out) == [200] * 4
        done = {c: at for c, _, at in out}
        assert done["c"] < done["d"]  # c queued first, so it was admitted first
        assert min(done["c"], done["d"]) - max(done["a"], done["b"]) >= 0  # they waited for a, b
        assert gauges(pod) == {"vllm:num_requests_running": 0.0, "vllm:num_requests_waiting": 0.0}
        assert pod._admitted == 0 and pod.active == 0


def test_slots_serialize_prefills_and_a_cached_prefix_skips_it():
    with LLMPod() as pod:
        pod.slots, pod.prefill_per_token = 8, 0.001
        prompts = [c * 400 for c in "xyz"]  # 100 uncached tokens each: 0.1 s of prefill
        started = time.monotonic()
        threads, out = start(pod, prompts, stream=False, max_tokens=1)
        for t in threads:
            t.join()
        assert time.monotonic() - started >= 0.3  # one prefill at a time (unlimited: ~0.1 s)
        assert sorted(s for _, s, _ in out) == [200] * 3
        hits = pod.prefix_hits
        chat(pod, "x" * 400, False, 1, [])
        assert pod.prefix_hits - hits == 96  # its 6 full blocks were cached (the 7th is partial)
