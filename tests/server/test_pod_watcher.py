"""The pod watcher against real vLLM-like pods (tests/llm_pod.py, HTTP servers on 127.0.0.1):
fresh metrics used, a pod whose /metrics fails goes stale and the strategy local, a pod that
stops is down (out of the candidates, its counts dropped) until it answers again, models and
LoRA adapters read from /v1/models; and `seldon-router serve` starting it (one process and
--workers), with /state saying which source each pod's signals come from."""

import asyncio
import contextlib
import json
import sys
import threading

import pytest
import requests
from llm_pod import LLMPod
from servers import start_router
from support import wait_until

from seldon_routers.errors import ConfigError
from seldon_routers.request import Request, empty_meta
from seldon_routers.routers.llm.router import LLMRouter
from seldon_routers.server.pod_watcher import PodWatcher, parse_metrics, parse_models, start_for


@contextlib.contextmanager
def pods(n: int, **kwargs):
    started = [LLMPod(**kwargs).start() for _ in range(n)]
    try:
        yield started
    finally:
        for pod in started:
            pod.stop()


@contextlib.contextmanager
def watching(router, **kwargs):
    """The watcher on an event loop of its own (a thread), as `serve` runs it beside the router."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    watcher = PodWatcher(router, **kwargs)
    try:
        asyncio.run_coroutine_threadsafe(watcher.start(), loop).result(10)
        yield watcher
    finally:
        asyncio.run_coroutine_threadsafe(watcher.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


def llm(strategy: str, started, **kwargs) -> LLMRouter:
    spec = [{"name": f"pod-{i}", "url": pod.url} for i, pod in enumerate(started)]
    return LLMRouter(strategy, pods=spec, seed=0, **kwargs)


def ask(r, puid: str, model=None):
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
    if model:
        body["model"] = model
    return r.decide(Request(body, kind="jsonData", meta={**empty_meta(), "puid": puid}))


def pod_state(r, i: int) -> dict:
    return r.state()["signals"]["pods"][i]


# --- parsing -----------------------------------------------------------------------------------

def test_parse_metrics_reads_vllms_names_from_a_real_exposition():
    with pods(1) as (pod,):
        pod.running, pod.waiting, pod.kv_cache = 3, 2, 0.25
        pod.prompt_tokens, pod.generation_tokens = 1200, 340
        pod.lora_running, pod.lora_waiting = ["sql-lora", "chat-lora"], ["x-lora"]
        sample = parse_metrics(requests.get(pod.url + "/metrics", timeout=5).text)
        pod.legacy_kv = True
        legacy = parse_metrics(requests.get(pod.url + "/metrics", timeout=5).text)
    assert sample == {"vllm:num_requests_running": 3.0, "vllm:num_requests_waiting": 2.0,
                      "vllm:kv_cache_usage_perc": 0.25, "vllm:prompt_tokens_total": 1200.0,
                      "vllm:generation_tokens_total": 340.0,
                      "vllm:lora_requests_info": {"running": ["sql-lora", "chat-lora"], "waiting": ["x-lora"]}}
    assert legacy["vllm:gpu_cache_usage_perc"] == 0.25 and "vllm:kv_cache_usage_perc" not in legacy


def test_parse_metrics_sums_engines_and_refuses_a_malformed_exposition():
    text = ('vllm:num_requests_running{engine="0"} 2\nvllm:num_requests_running{engine="1"} 3\n'
            'vllm:kv_cache_usage_perc{engine="0"} 0.5\nvllm:kv_cache_usage_perc{engine="1"} 0.7\n')
    assert parse_metrics(text) == {"vllm:num_requests_running": 5.0, "vllm:kv_cache_usage_perc": 0.7}
    with pytest.raises(ValueError):
        parse_metrics("vllm:num_requests_running{engine= 2\n")


def test_parse_metrics_reads_only_its_names_whatever_the_labels_hold():
    text = ('# HELP vllm:num_requests_running Number of requests running.\n'
            '# TYPE vllm:num_requests_running gauge\n'
            'vllm:num_requests_running{model_name="a} 9",engine="0"} 4 1700000000000\n'  # a `}` and a space in a label
            'vllm:num_requests_running_extra 100\n'  # a longer name, not ours
            'vllm:num_requests_waiting 1\n'
            'vllm:time_to_first_token_seconds_bucket{le="0.1",model_name="a"} 3\n'
            'vllm:prompt_tokens_total{model_name="a"} 1.5e3\n'
            'process_cpu_seconds_total 12\n'
            'vllm:lora_requests_info{running_lora_adapters="x,y",waiting_lora_adapters=""} 1.0\n'
            'vllm:lora_requests_info{running_lora_adapters="z",waiting_lora_adapters="x"} 2.0\n')
    assert parse_metrics(text) == {"vllm:num_requests_running": 4.0, "vllm:num_requests_waiting": 1.0,
                                   "vllm:prompt_tokens_total": 1500.0,
                                   "vllm:lora_requests_info": {"running": ["z"], "waiting": ["x"]}}
    for bad in ("vllm:num_requests_waiting\n", "vllm:num_requests_waiting two\n"):
        with pytest.raises(ValueError):
            parse_metrics(bad)


def test_parse_models_tells_adapters_by_their_parent():
    body = {"data": [{"id": "llama", "parent": None}, {"id": "sql-lora", "parent": "llama"}]}
    assert parse_models(body) == (["llama"], ["sql-lora"])
    with pytest.raises(ValueError):
        parse_models({"object": "list"})


# --- watching ----------------------------------------------------------------------------------

def test_fresh_metrics_are_used_and_models_read_from_the_pods():
    with pods(3) as started:
        for pod, kv, model in zip(started, (0.9, 0.1, 0.5), ("llama", "llama", "qwen")):
            pod.kv_cache, pod.models = kv, [model]
        r = llm("least-kv-cache", started)
        with watching(r):  # its first round is done when it has started
            assert r.state()["models"] == ["llama", "qwen"]
            d = ask(r, "a", "llama")
            assert (d.child, d.tags["signals"]) == (1, "metrics")
            assert ask(r, "b", "qwen").child == 2
            assert pod_state(r, 0)["source"] == "metrics" and pod_state(r, 0)["metrics"]["vllm:kv_cache_usage_perc"] == 0.9
            started[1].kv_cache = 0.95  # the next scrapes see it
            wait_until(lambda: ask(r, "c", "llama").child == 0, 10, what="routing on the new kv usage")


def test_lora_adapters_listed_by_a_pod_route_to_it():
    with pods(2) as started:
        started[0].adapters = {"sql-lora": "llama"}
        started[0].lora_running = ["sql-lora"]
        r = llm("random", started)
        with watching(r):
            assert r.catalog.is_adapter("sql-lora")
            assert {ask(r, f"s{i}", "sql-lora").child for i in range(12)} == {0}
            assert {ask(r, f"l{i}", "llama").child for i in range(12)} == {0, 1}
            assert pod_state(r, 0)["lora"] == {"running": ["sql-lora"], "waiting": []}
            with pytest.raises(Exception) as err:
                ask(r, "u", "no-such-model")
            assert err.value.http_status == 404


def test_a_pod_whose_metrics_fail_goes_stale_and_the_strategy_local():
    with pods(2) as started:
        started[0].kv_cache, started[1].kv_cache = 0.1, 0.8
        r = llm("least-kv-cache", started, metrics_interval=0.05, metrics_stale=1.0)
        with watching(r, failures=2):
            assert ask(r, "a").tags["signals"] == "metrics"
            started[0].metrics_status = 500  # /health still answers
            wait_until(lambda: pod_state(r, 0)["source"] == "local", 10, what="pod-0 stale")
            assert pod_state(r, 0)["healthy"] is True and pod_state(r, 0)["sample_age"] >= 1.0
            assert ask(r, "b").tags["signals"] == "local"
            started[0].metrics_status = 200
            wait_until(lambda: pod_state(r, 0)["source"] == "metrics", 10, what="pod-0 fresh again")
            assert ask(r, "c").tags["signals"] == "metrics"


def test_a_pod_whose_metrics_hang_goes_stale_within_the_bound_and_routing_goes_on():
    """A slow pod (its /metrics hangs far beyond the watcher's timeout, /health answers): each
    scrape is cut at the timeout and the next one starts, the pod stays a candidate, its sample
    goes stale once older than metrics_stale, and routing goes on by local accounting."""
    with pods(2) as started:
        started[0].kv_cache, started[1].kv_cache = 0.1, 0.8
        r = llm("least-kv-cache", started, metrics_interval=0.05, metrics_stale=1.0)
        with watching(r, failures=2, timeout=0.2):
            assert ask(r, "a").tags["signals"] == "metrics"
            started[0].metrics_delay = 60  # a hang: only the timeout ends each scrape
            hung = started[0].calls["/metrics"]
            state = wait_until(lambda: (lambda p: p["source"] == "local" and p)(pod_state(r, 0)), 10,
                               what="pod-0 stale")
            assert state["healthy"] is True and state["sample_age"] >= r.signals.stale
            # scrapes were cut and retried, not stuck on the first hung one
            wait_until(lambda: started[0].calls["/metrics"] >= hung + 3, 10, what="hung scrapes retried")
            assert pod_state(r, 1)["source"] == "metrics"  # the other pod's samples never waited on it
            routed = [ask(r, f"b{i}") for i in range(4)]
            assert all(d.tags["signals"] == "local" for d in routed)
            # by the requests in flight here, both pods (on kv usage, pod-1's 0.8 would get none)
            assert {d.child for d in routed} == {0, 1}
            started[0].metrics_delay = 0
            wait_until(lambda: pod_state(r, 0)["source"] == "metrics", 10, what="pod-0 fresh again")


def test_a_stopped_pod_is_down_with_its_counts_dropped_until_it_answers_again():
    with pods(2) as started:
        r = llm("least-request", started)
        with watching(r, failures=2, models_interval=60):
            for i in range(4):
                ask(r, f"r{i}")
            assert r.ledger.counts() == [2, 2]
            started[0].stop()
            wait_until(lambda: not pod_state(r, 0)["healthy"], 10, what="pod-0 down")
            assert r.ledger.counts() == [0, 2]
            assert {ask(r, f"d{i}").child for i in range(4)} == {1}
            started[0].models = ["llama", "qwen"]  # it comes back serving one more model
            started[0].start()
            wait_until(lambda: pod_state(r, 0)["healthy"], 10, what="pod-0 back")
            assert ask(r, "back").child == 0  # empty, so least-request takes it
            wait_until(lambda: "qwen" in r.state()["models"], 10, what="its models read again")
            assert ask(r, "q", "qwen").child == 0


def test_a_pod_with_models_in_config_is_not_asked_for_them():
    with pods(1) as (pod,):
        r = LLMRouter("random", pods=[{"name": "a", "url": pod.url, "models": ["mine"]}])
        with watching(r):
            assert r.state()["models"] == ["mine"] and "/v1/models" not in pod.calls
            assert pod.calls.get("/metrics", 0) >= 1


def test_only_a_router_with_pod_urls_gets_a_watcher():
    assert start_for(LLMRouter("random", n_branches=2)) is None
    assert start_for(object()) is None
    assert isinstance(start_for(LLMRouter("random", pods=[{"name": "a", "url": "http://127.0.0.1:9"}])), PodWatcher)


def test_a_pod_url_without_aiohttp_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "aiohttp", None)  # what `import aiohttp` meets where it is not installed
    with pytest.raises(ConfigError, match=r"pods\[\]\.url.*seldon-routers\[llm\]"):
        PodWatcher(LLMRouter("random", pods=[{"name": "a", "url": "http://127.0.0.1:9"}]))


# --- served ------------------------------------------------------------------------------------

def route(url: str, body: dict) -> requests.Response:
    return requests.post(url + "/route", json=body, timeout=10)


BODY = {"model": "llama", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}


# A worker (`--worker-index`, as the supervisor of --workers N starts each) loads before it
# listens; one process listens first: the watcher starts before either is ready.
@pytest.mark.parametrize("mode", [(), ("--worker-index", "0")], ids=["one-process", "worker"])
def test_serve_scrapes_the_pods_and_state_says_which_source(mode):
    with pods(2) as started:
        started[0].kv_cache, started[1].kv_cache = 0.6, 0.2
        spec = json.dumps([{"name": f"pod-{i}", "url": p.url} for i, p in enumerate(started)])
        served = start_router("least-kv-cache", "--param", f"pods={spec}", "--param", "metrics_stale=1", *mode)
        try:
            reply = route(served.url, BODY).json()
            assert reply["meta"]["routing"] == {"0": 1}
            assert reply["meta"]["tags"]["0"]["signals"] == "metrics"
            state = requests.get(served.url + "/state", timeout=5).json()["state"]
            assert state["models"] == ["llama"]
            assert [p["source"] for p in state["signals"]["pods"]] == ["metrics", "metrics"]
            started[1].metrics_status = 503

            def pod_1_local():
                pods_now = requests.get(served.url + "/state", timeout=5).json()["state"]["signals"]["pods"]
                return pods_now[1]["source"] == "local" and pods_now

            assert wait_until(pod_1_local, 20, what="pod-1 stale in /state")[1]["sample_age"] >= 1.0
            assert route(served.url, BODY).json()["meta"]["tags"]["0"]["signals"] == "local"
            unknown = route(served.url, {**BODY, "model": "gpt-4"})
            assert unknown.status_code == 404 and "gpt-4" in unknown.text
            assert served.stop() == 0  # SIGTERM: the watcher stops with the server
        finally:
            served.stop()


def test_serve_starts_and_routes_while_a_pods_metrics_hang():
    """A pod process whose /metrics hangs from the start (--metrics-delay): `serve` still gets
    ready (the first round is cut at the scrape timeout), routes, and /state says the pod's
    signals are local while the other pod's are its metrics."""
    from llm_pod import PodProcess, spawn_pods

    fine, slow = spawn_pods(1)[0], None
    try:
        slow = spawn_pods(1, metrics_delay=120)[0]  # longer than start_router waits for /ready
        spec = json.dumps([{"name": "fine", "url": fine.url}, {"name": "slow", "url": slow.url}])
        served = start_router("least-kv-cache", "--param", f"pods={spec}", "--param", "metrics_stale=1")
        try:
            for _ in range(4):
                reply = route(served.url, BODY)
                assert reply.status_code == 200, reply.text
            pods_now = requests.get(served.url + "/state", timeout=5).json()["state"]["signals"]["pods"]
            assert [p["source"] for p in pods_now] == ["metrics", "local"]
            assert pods_now[1]["healthy"] is True
        finally:
            assert served.stop() == 0
    finally:
        for pod in (fine, slow):
            if isinstance(pod, PodProcess):
                pod.stop()
