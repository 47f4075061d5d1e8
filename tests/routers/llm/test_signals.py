"""Pod signals and the strategies that read them (throughput, least-kv-cache, least-latency),
driven through the router's public entry points with an injected clock: metrics given as
the pod watcher gives them (observe_pod), completions as feedback with usage."""


import pytest
from llm_cases import Clock, in_threads

from seldon_routers.errors import ConfigError, NoCapacity
from seldon_routers.request import Feedback, Request, empty_meta
from seldon_routers.routers.llm import pod_signals as sig
from seldon_routers.routers.llm.prompt import estimate_tokens
from seldon_routers.routers.llm.router import LLMRouter


def router(strategy: str, n: int = 3, **kwargs) -> tuple[LLMRouter, Clock]:
    r = LLMRouter(strategy, n_branches=n, seed=1, **kwargs)
    clock = Clock()
    r.clock = clock
    return r, clock


def ask(r, puid: str, text: str = "hello", max_tokens: int = 16, model=None):
    body = {"messages": [{"role": "user", "content": text}], "max_tokens": max_tokens}
    if model:
        body["model"] = model
    meta = {**empty_meta(), "puid": puid}
    return r.decide(Request(body, kind="jsonData", meta=meta))


def done(r, puid: str, prompt_tokens: int, completion_tokens: int):
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
             "total_tokens": prompt_tokens + completion_tokens}
    response = Request({"choices": [], "usage": usage}, kind="jsonData")
    r.learn(Feedback(Request(None, meta={**empty_meta(), "puid": puid}), empty_meta(), 0.0, None, response=response))


def metrics(running=0, waiting=0, kv=None, prompt=None, generated=None, legacy=False) -> dict:
    out = {sig.RUNNING: running, sig.WAITING: waiting}
    if kv is not None:
        out[sig.GPU_CACHE if legacy else sig.KV_CACHE] = kv
    if prompt is not None:
        out[sig.PROMPT_TOKENS], out[sig.GENERATION_TOKENS] = prompt, generated
    return out


# --- least-kv-cache --------------------------------------------------------------------------

def test_least_kv_cache_routes_to_the_lowest_usage_when_metrics_are_fresh():
    r, clock = router("least-kv-cache")
    for pod, kv in enumerate([0.7, 0.2, 0.9]):
        r.observe_pod(pod, metrics(kv=kv), clock())
    d = ask(r, "a")
    assert (d.child, d.tags["signals"]) == (1, "metrics")
    assert r.state()["signals"]["pods"][1]["source"] == "metrics"


def test_least_kv_cache_reads_the_name_before_vllm_v1():
    r, clock = router("least-kv-cache")
    for pod, kv in enumerate([0.5, 0.6, 0.1]):
        r.observe_pod(pod, metrics(kv=kv, legacy=True), clock())
    d = ask(r, "a")
    assert (d.child, d.tags["signals"]) == (2, "metrics")


def test_stale_metrics_fall_back_to_tokens_in_flight_and_say_so():
    r, clock = router("least-kv-cache", metrics_stale=2.0)
    for pod, kv in enumerate([0.1, 0.5, 0.9]):
        r.observe_pod(pod, metrics(kv=kv), clock())
    clock.t += 2.5  # every sample now older than metrics_stale
    first = ask(r, "a", "x" * 4000, max_tokens=100)  # ~1,100 tokens on one pod
    assert first.tags["signals"] == "local"
    second = ask(r, "b", "short", max_tokens=10)
    assert second.tags["signals"] == "local" and second.child != first.child
    state = r.state()["signals"]["pods"]
    assert [p["source"] for p in state] == ["local"] * 3
    assert state[first.child]["in_flight_tokens"] == estimate_tokens("user: " + "x" * 4000) + 100  # its estimate
    assert state[0]["sample_age"] == 2.5


def test_one_stale_candidate_makes_every_candidate_local():
    r, clock = router("least-kv-cache")
    r.observe_pod(0, metrics(kv=0.9), clock())
    clock.t += 5
    r.observe_pod(1, metrics(kv=0.1), clock())
    r.observe_pod(2, metrics(kv=0.1), clock())
    assert ask(r, "a").tags["signals"] == "local"  # pod 0's 0.9 is not compared with fresh values


def test_a_completion_frees_its_tokens():
    r, clock = router("least-kv-cache", n=2)
    d = ask(r, "a", "x" * 400)
    assert r.state()["signals"]["pods"][d.child]["in_flight_tokens"] > 0
    done(r, "a", 100, 5)
    assert [p["in_flight_tokens"] for p in r.state()["signals"]["pods"]] == [0, 0]


def test_a_request_never_reported_complete_stops_counting():
    r, clock = router("least-kv-cache", n=2)
    ask(r, "lost", "x" * 400)
    clock.t += 600 + 1  # the default in_flight_ttl
    assert [p["in_flight_tokens"] for p in r.state()["signals"]["pods"]] == [0, 0]


def test_its_tokens_stop_counting_with_the_ledgers_ttl():
    r, clock = router("least-kv-cache", n=2, in_flight_ttl="30s")
    ask(r, "lost", "x" * 400)
    clock.t += 31
    assert r.ledger.counts() == [0, 0]
    assert [p["in_flight_tokens"] for p in r.state()["signals"]["pods"]] == [0, 0]


# --- throughput ------------------------------------------------------------------------------

def test_throughput_from_counters_weighs_prompt_tokens_twice():
    r, clock = router("throughput", n=2)
    r.observe_pod(0, metrics(prompt=0, generated=0), clock())
    r.observe_pod(1, metrics(prompt=0, generated=0), clock())
    clock.t += 10
    r.observe_pod(0, metrics(prompt=1000, generated=0), clock())  # 2 x 100/s = 200
    r.observe_pod(1, metrics(prompt=0, generated=1500), clock())  # 150/s
    d = ask(r, "a")
    assert (d.child, d.tags["signals"]) == (1, "metrics")
    assert r.state()["signals"]["pods"][0]["token_rate"] == 200.0


def test_throughput_counts_what_it_routed_since_the_last_sample():
    r, clock = router("throughput", n=2)
    for t in (0, 10):
        clock.t = 1000 + t
        r.observe_pod(0, metrics(prompt=0, generated=0), clock())
        r.observe_pod(1, metrics(prompt=0, generated=0), clock())
    picks = {ask(r, f"r{i}", "y" * 400).child for i in range(2)}
    assert picks == {0, 1}  # a burst between two scrapes does not herd onto one pod


def test_a_counter_that_goes_back_starts_its_rate_again():
    r, clock = router("throughput", n=2)
    r.observe_pod(0, metrics(prompt=5000, generated=5000), clock())
    clock.t += 1
    r.observe_pod(0, metrics(prompt=10, generated=10), clock())  # the pod restarted
    assert r.signals.token_rate(0) is None


def test_throughput_locally_uses_the_usage_once_it_arrives():
    r, clock = router("throughput", n=2)
    a = ask(r, "a", "x" * 40, max_tokens=10)
    b = ask(r, "b", "x" * 40, max_tokens=10)
    assert {a.child, b.child} == {0, 1} and a.tags["signals"] == "local"
    done(r, "a", 5000, 2000)  # a's pod worked far more than estimated
    assert ask(r, "c").child == b.child
    assert r.state()["signals"]["pods"][a.child]["local_token_rate"] == (2 * 5000 + 2000) / sig.WINDOW


def test_throughput_forgets_load_older_than_its_window():
    r, clock = router("throughput", n=2)
    first = ask(r, "a", "x" * 4000)
    clock.t += sig.WINDOW + 1
    state = r.state()["signals"]["pods"]
    assert state[first.child]["local_token_rate"] == 0.0
    done(r, "a", 9000, 9000)  # a usage arriving after its window changes nothing
    assert r.state()["signals"]["pods"][first.child]["local_token_rate"] == 0.0


@pytest.mark.parametrize("strategy", ["prefix-cache", "least-request", "throughput"])
def test_the_token_window_keeps_only_its_last_minute_whatever_the_strategy(strategy):
    """A strategy that never reads the token rate kept every request's record: the gateway's
    soak grew 90 MB in 10 minutes (bench/soak.py gateway)."""
    r, clock = router(strategy, n=2)
    for i in range(3000):
        ask(r, f"p{i}")
        done(r, f"p{i}", 4, 4)
        clock.t += 0.1  # 300 s in all: five windows
    kept = sum(len(p.window) for p in r.signals._pods)
    assert kept <= 2 * (sig.WINDOW / 0.1 + 1), kept  # each pod: at most its last minute


# --- least-latency ---------------------------------------------------------------------------

def test_least_latency_predicts_queue_times_service_plus_prefill_and_decode():
    r, clock = router("least-latency", n=2)
    r.observe_pod(0, metrics(running=4, waiting=2), clock())
    r.observe_pod(1, metrics(running=1, waiting=0), clock())
    d = ask(r, "a", "z" * 400, max_tokens=50)
    assert (d.child, d.tags["signals"]) == (1, "metrics")
    prompt = (len("user: ") + 400 + 3) // 4
    expected = 1 * sig.DEFAULT_SERVICE + prompt * sig.DEFAULT_PREFILL + 50 * sig.DEFAULT_TPOT
    assert d.tags["predicted_s"] == round(expected, 4)


def test_least_latency_learns_each_pods_speed_from_its_completions():
    r, clock = router("least-latency", n=2)
    slow, fast = ask(r, "a"), ask(r, "b")
    assert slow.child != fast.child
    clock.t += 10.0
    done(r, "a", 10, 10)  # 1 s per output token, end to end
    done(r, "b", 10, 1000)  # 0.01 s
    assert r.signals.service(slow.child) == (10.0, 1.0)
    assert r.signals.service(fast.child) == (10.0, 0.01)
    assert ask(r, "c", max_tokens=200).child == fast.child  # both idle: the faster one


def test_least_latency_counts_local_requests_in_flight_without_metrics():
    r, clock = router("least-latency", n=2)
    first = ask(r, "a")
    second = ask(r, "b")
    assert first.tags["signals"] == "local" and first.child != second.child


def test_least_latency_reads_ttft_and_tpot_by_load_from_a_pods_profile():
    # The slo strategy's profile format: measured at loads 0 and 4, extrapolated past 4.
    slow = {"load": [0, 4], "ttft": [0.1, 0.5], "tpot": [0.05, 0.05]}
    fast = {"load": [0, 4], "ttft": [0.05, 0.45], "tpot": [0.01, 0.03]}
    r = LLMRouter("least-latency", pods=[{"name": "slow", "profile": slow}, {"name": "fast", "profile": fast}],
                  seed=1)
    clock = Clock()
    r.clock = clock
    r.observe_pod(0, metrics(running=0), clock())
    r.observe_pod(1, metrics(running=8), clock())  # ttft 0.85, tpot 0.05 (extrapolated) at load 8
    d = ask(r, "a", max_tokens=10)
    assert (d.child, d.tags["predicted_s"]) == (0, round(0.1 + 10 * 0.05, 4))
    r.observe_pod(1, metrics(running=2), clock())  # ttft 0.25, tpot 0.02
    d = ask(r, "b", max_tokens=10)
    assert (d.child, d.tags["predicted_s"]) == (1, round(0.25 + 10 * 0.02, 4))


@pytest.mark.parametrize("profile, field", [({"load": [0, 0], "ttft": [1, 2]}, r"pods\[0\]\.profile\.load"),
                                            ({"load": [0, 4], "tpot": [0.1]}, r"pods\[0\]\.profile\.tpot")])
def test_a_bad_profile_names_its_field(profile, field):
    with pytest.raises(ConfigError, match=field):
        LLMRouter("least-latency", pods=[{"name": "a", "profile": profile}])


def test_signals_stay_exact_under_threads_routing_and_completing():
    r, clock = router("least-kv-cache", n=4)

    def work(t: int):
        for i in range(200):
            ask(r, f"{t}-{i}", "w" * (i % 50))
            if i % 2:
                done(r, f"{t}-{i}", 10, 5)

    in_threads(work)
    left = [f"{t}-{i}" for t in range(8) for i in range(0, 200, 2)]
    assert sum(p["in_flight_tokens"] for p in r.state()["signals"]["pods"]) > 0
    for key in left:
        done(r, key, 10, 5)
    assert [p["in_flight_tokens"] for p in r.state()["signals"]["pods"]] == [0, 0, 0, 0]
    assert sum(r.ledger.counts()) == 0


# --- health ----------------------------------------------------------------------------------

def test_a_pod_down_leaves_the_candidates_with_its_counts_and_comes_back():
    r, clock = router("least-request", n=2)
    ask(r, "a"), ask(r, "b"), ask(r, "c")
    assert sum(r.ledger.counts()) == 3
    r.pod_down(0)
    assert r.ledger.counts()[0] == 0 and r.state()["signals"]["pods"][0]["healthy"] is False
    assert all(ask(r, f"d{i}").child == 1 for i in range(3))
    r.pod_up(1)
    r.pod_up(0)
    assert ask(r, "e").child == 0  # back, and empty


def test_every_pod_down_is_no_capacity():
    r, clock = router("least-kv-cache", n=2)
    r.pod_down(0)
    r.pod_down(1)
    with pytest.raises(NoCapacity) as err:
        ask(r, "a")
    assert err.value.http_status == 503


@pytest.mark.parametrize("field, kwargs", [("metrics_stale", {"metrics_stale": 0}),
                                           ("metrics_interval", {"metrics_interval": -1}),
                                           ("metrics_stale", {"metrics_interval": 3.0, "metrics_stale": 2.0})])
def test_bad_intervals_name_the_field(field, kwargs):
    with pytest.raises(ConfigError, match=field):
        LLMRouter("least-kv-cache", n_branches=2, **kwargs)
