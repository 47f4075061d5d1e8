"""The fleet simulator's semantics (bench/llm_fleet): the KV block cache, prefill by
uncached tokens, decode by output tokens, the slot limit, the workload's shared prefixes,
and the event loop driving a real router through decide/learn. Simulated time only: no
wall-clock thresholds."""

import pytest
from llm_fleet.calibrate import profile
from llm_fleet.pods import BASE, FAST, GPU, SLOW, BlockCache, Job, Pod, block_keys
from llm_fleet.report import summarise
from llm_fleet.sim import simulate
from llm_fleet.strategies import Oracle, Replicas, RoundRobin, package_router
from llm_fleet.workload import Arrivals, Turn, Workload, words

from seldon_routers.routers.llm.prompt import prompt_text

SMALL = Workload(tenants=4, system_tokens=200, users_per_tenant=5, turns=(2, 3), user_tokens=(8, 16),
                 output_tokens=(4, 8))


def job(text: str, out: int = 10, arrival: float = 0.0) -> Job:
    turn = Turn("k", {}, 0, "u", "s", out, arrival)
    return Job(turn, block_keys(text), -(-len(text) // 4))


def test_words_are_fixed_width_tokens_so_router_blocks_and_kv_blocks_align():
    import numpy as np
    text = words(np.random.default_rng(0), 32)
    assert len(text) == 32 * 4 and text.count(" ") == 32
    keys = block_keys(text)  # 16 tokens of 4 characters: the router's 64-character block
    assert len(keys) == 2
    assert block_keys(text[:64]) == keys[:1]
    assert block_keys("x" * 64 + text[64:])[1] != keys[1]  # chained: a block's key depends on its prefix


def test_block_cache_is_lru_with_a_capacity_and_matches_leading_blocks_only():
    cache = BlockCache(3)
    cache.add([1, 2, 3])
    assert cache.cached_prefix([1, 2, 3, 4]) == 3
    assert cache.cached_prefix([2, 3]) == 2 and cache.cached_prefix([9, 1]) == 0
    cache.add([1])  # touched: 2 is now the least recently used
    cache.add([4])
    assert cache.cached_prefix([1]) == 1 and cache.cached_prefix([2]) == 0 and len(cache.blocks) == 3


def test_prefill_is_charged_by_uncached_tokens_and_decode_by_output_tokens():
    gpu = GPU("t", prefill_per_token=1e-3, decode_per_token=1e-2, cost_per_hour=1.0, slots=4, cache_blocks=100,
              prefill_overhead=0.0, batch_slowdown=0.0)
    pod, text = Pod(0, gpu), "abcd" * 64  # 64 tokens, 4 blocks
    first = job(text, out=5)
    [(t, kind, _, _)] = pod.arrive(0.0, first)
    assert kind == "prefilled" and t == pytest.approx(64e-3) and first.cached_tokens == 0
    [(done, kind, _, _)] = pod.prefilled(t, first)
    assert kind == "decoded" and done == pytest.approx(t + 5 * 1e-2) and first.ttft == pytest.approx(64e-3)
    pod.decoded(done, first)
    second = job(text, out=5, arrival=1.0)
    [(t2, _, _, _)] = pod.arrive(1.0, second)
    assert second.cached_tokens == 63  # every block cached, the last token computed
    assert t2 - 1.0 == pytest.approx(1e-3)
    assert pod.in_flight == 1 and pod.busy_time(1.0) == pytest.approx(done)


def test_a_full_pod_queues_for_a_slot_and_prefills_one_prompt_at_a_time():
    gpu = GPU("t", 1e-3, 1e-2, 1.0, slots=1, cache_blocks=0, prefill_overhead=0.0, batch_slowdown=0.0)
    pod = Pod(0, gpu)
    a, b = job("a" * 40, out=2), job("b" * 40, out=2)
    events = pod.arrive(0.0, a)
    assert pod.arrive(0.0, b) == [] and pod.in_flight == 2 and list(pod.waiting) == [b]
    [(t, *_)] = events
    [(done, *_)] = pod.prefilled(t, a)
    [(t_b, kind, _, _)] = pod.decoded(done, a)  # the slot frees: b is admitted and prefills
    assert kind == "prefilled" and t_b == pytest.approx(done + 10e-3)


def test_decode_slows_with_the_batch():
    gpu = GPU("t", 1e-3, 1e-2, 1.0, slots=4, cache_blocks=0, prefill_overhead=0.0, batch_slowdown=0.5)
    pod = Pod(0, gpu)
    a, b = job("a" * 40), job("b" * 40)
    pod.arrive(0.0, a)
    pod.arrive(0.0, b)
    pod.prefilled(0.01, a)
    assert a.tpot == pytest.approx(1e-2 * 1.5)  # one other request running


def test_the_workload_is_deterministic_and_later_turns_extend_the_prompt():
    one, two = Arrivals(SMALL, 5.0, 3), Arrivals(SMALL, 5.0, 3)
    turns = [one.next() for _ in range(40)]
    assert [t.body for t in turns] == [two.next().body for _ in range(40)]
    assert all(b.arrival > a.arrival for a, b in zip(turns, turns[1:]))
    by_session: dict = {}
    for t in turns:
        by_session.setdefault(t.session, []).append(prompt_text(t.body))
    follow_ups = [texts for texts in by_session.values() if len(texts) > 1]
    assert follow_ups and all(later.startswith(earlier) for texts in follow_ups for earlier, later in zip(texts, texts[1:]))
    # The same tenant's conversations share its system prompt whatever the rate.
    assert Arrivals(SMALL, 50.0, 3).systems == one.systems


def test_the_loop_drives_a_router_through_decide_and_learn_and_leaks_nothing():
    routers = []

    def make(pods, clock, seed):
        routers.append(package_router("least-request", pods, clock, seed))
        return routers[-1]

    run = simulate(make, [BASE, BASE], SMALL, rate=20.0, requests=200, seed=1)
    router = routers[0]
    assert len(run.jobs) == 200 and all(j.done is not None and j.ttft > 0 for j in run.jobs)
    assert router.ledger.counts() == [0, 0]  # every completion came back by its puid
    assert router.clock() == run.end  # the router ran on the simulated clock
    assert {j.tags["pod"] for j in run.jobs} == {"pod-0-base", "pod-1-base"}
    s = summarise("least-request", 20.0, run)
    assert 0 < s.hit_ratio < 1 and s.ttft_p50 <= s.ttft_p90 <= s.ttft_p99 and s.imbalance >= 1


def test_round_robin_balances_exactly_and_the_oracle_finds_cached_prefixes():
    rr = simulate(RoundRobin, [BASE] * 4, SMALL, 20.0, 400, seed=2)
    assert summarise("rr", 20.0, rr, warmup=0).imbalance == 1.0
    rnd = simulate(lambda p, c, s: package_router("random", p, c, s), [BASE] * 4, SMALL, 20.0, 400, seed=2)
    oracle = simulate(Oracle, [BASE] * 4, SMALL, 20.0, 400, seed=2)
    assert summarise("o", 20.0, oracle).hit_ratio > summarise("r", 20.0, rnd).hit_ratio


def test_replicas_share_one_ledger_and_each_completion_reaches_its_router():
    made = []

    def make(pods, clock, seed):
        made.extend(package_router("least-request", pods, clock, seed + i) for i in range(2))
        return Replicas(made)

    run = simulate(make, [BASE] * 3, SMALL, 20.0, 100, seed=4)
    assert made[0].ledger is made[1].ledger and made[0].ledger.counts() == [0, 0, 0]
    assert len(run.jobs) == 100


def test_calibrated_profiles_are_what_the_slo_strategy_reads():
    fast, slow = (profile(g, SMALL, requests=30, levels=(1, 4)) for g in (FAST, SLOW))
    assert fast["load"] == [0, 3] and all(f < s for f, s in zip(fast["ttft"], slow["ttft"]))
    assert fast["ttft"][0] <= fast["ttft"][1]
    run = simulate(lambda p, c, s: package_router("slo", p, c, s, slo_ttft=10.0), [FAST, SLOW], SMALL, 5.0, 50,
                   seed=5, profiles={"fast": fast, "slow": slow})
    assert {j.tags["slo"] for j in run.jobs} == {"met"}
    # A generous objective: the cheap, slow pod takes the requests while it is predicted to meet it.
    assert sum(j.pod == 1 for j in run.jobs) > sum(j.pod == 0 for j in run.jobs)
    s = summarise("slo", 5.0, run, slo=(10.0, None))
    assert s.slo_met == 1.0 and s.cost_per_1k > 0


def test_the_benchmark_runs_end_to_end_and_writes_its_summary_and_plot(tmp_path, capsys):
    import json

    import llm_routing
    code = llm_routing.main(["--quick", "--requests", "120", "--rates", "10,30", "--only", "routing",
                             "--out", str(tmp_path), "--quiet"])
    out = capsys.readouterr().out
    assert code == 0 and "### 30 req/s offered" in out and "| oracle |" in out and "| round-robin |" in out
    [summary] = tmp_path.glob("llm-routing-*.json")
    data = json.loads(summary.read_text())
    assert set(data["routing"]["least-request"]) == {"10.0", "30.0"}
    assert any(c["check"].startswith("30 req/s prefix-cache") for c in data["checks"])
    assert list(tmp_path.glob("llm-routing-*.png"))


def test_refused_requests_are_counted_and_hold_nothing():
    made = []
    tight = {"fast": {"load": [0, 1], "ttft": [0.1, 10.0]}}  # meets 0.2 s only when idle

    def make(pods, clock, seed):
        made.append(package_router("slo", pods, clock, seed, slo_ttft=0.2, slo_miss="503"))
        return made[-1]

    run = simulate(make, [FAST, FAST], SMALL, 200.0, 200, seed=6, profiles=tight)
    assert run.rejected > 0 and len(run.jobs) + run.rejected == 200
    assert all(j.in_flight_at_arrival == 0 for j in run.jobs)  # only idle pods were predicted to meet it
    assert made[0].ledger.counts() == [0, 0]
    s = summarise("slo", 200.0, run, slo=(0.2, None))
    assert s.rejected == run.rejected and s.slo_met < 1.0
