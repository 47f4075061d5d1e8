"""In-flight accounting through the LLM router (memory ledger): a route adds one to its
pod, a completion (feedback naming the puid, or naming only the pod) removes it, a lost
completion expires after the TTL (router.clock drives it exactly), a count never goes
negative, a pod that goes down takes its counts; exact under 8 threads of concurrent
routes and completions."""

from __future__ import annotations

import random
import threading
from collections import Counter

from llm_cases import Clock, in_threads

from seldon_routers.request import Feedback, Request
from seldon_routers.routers.llm.inflight import InFlight
from seldon_routers.routers.llm.router import LLMRouter


def chat(puid="", model="llama"):
    return Request({"model": model, "messages": [{"role": "user", "content": "hi"}]}, kind="jsonData",
                   meta={"puid": puid} if puid else None)


def completion(puid="", routing=None, total_tokens=None):
    response = Request({"usage": {"total_tokens": total_tokens}}, kind="jsonData") if total_tokens else None
    return Feedback(Request(meta={"puid": puid} if puid else None), {}, 0.0, None, routing=routing, response=response)


def router(n=3, **kw) -> tuple[LLMRouter, Clock]:
    r = LLMRouter(n_branches=n, **kw)
    clock = Clock()
    r.clock = clock
    return r, clock


def test_a_route_counts_and_its_completion_uncounts():
    r, _ = router()
    pods = [r.decide(chat(f"p{i}")).child for i in range(6)]
    assert sorted(Counter(pods).values()) == [2, 2, 2]  # least-request spreads them
    assert r.ledger.counts() == [2, 2, 2]
    r.learn(completion("p0"))
    expected = [2, 2, 2]
    expected[pods[0]] -= 1
    assert r.ledger.counts() == expected
    r.learn(completion("p0"))  # the same completion again: nothing
    r.learn(completion("unknown"))  # never routed: nothing
    assert r.ledger.counts() == expected


def test_a_route_without_puid_gets_one_for_its_completion():
    r, _ = router(n=1)
    request = chat()
    d = r.decide(request)
    puid = request.meta["puid"]  # the reply carries it; the completion names it
    assert puid and d.tags["in_flight"] == 1
    r.learn(completion(puid))
    assert r.ledger.counts() == [0]


def test_a_completion_that_names_only_its_pod_ends_the_oldest_there():
    r, clock = router(n=2)
    first = r.decide(chat("a")).child
    clock.t += 1
    r.decide(chat("b"))
    r.learn(completion(routing=first))  # Seldon's wrapper: no meta, the routing only
    assert r.ledger.counts()[first] == 0
    assert r.ledger.release("a") is None and r.ledger.release("b") is not None


def test_lost_completions_expire_after_the_ttl_exactly():
    r, clock = router(n=2, in_flight_ttl="10m")
    for i in range(4):
        r.decide(chat(f"lost{i}"))
    clock.t += 600 - 1e-6
    assert sum(r.ledger.counts()) == 4
    clock.t += 1e-6
    assert r.ledger.counts() == [0, 0]
    r.learn(completion("lost0"))  # its completion, too late: no negative count
    assert r.ledger.counts() == [0, 0]
    assert r.state()["expired"] == 4 and r.state()["in_flight"] == [0, 0]


def test_a_pod_that_goes_down_takes_its_counts():
    r, _ = router(n=2)
    for i in range(4):
        r.decide(chat(f"p{i}"))
    r.pod_down(0)
    assert r.ledger.counts() == [0, 2]
    r.learn(completion("p0"))
    r.learn(completion("p1"))
    assert r.ledger.counts()[0] == 0 and min(r.ledger.counts()) >= 0


def test_exact_under_eight_threads_of_routes_and_completions():
    r, _ = router(n=4)
    routed, lock, barrier = Counter(), threading.Lock(), threading.Barrier(8)
    completed = Counter()

    def work(i):
        barrier.wait()
        for j in range(150):
            key = f"{i}-{j}"
            pod = r.decide(chat(key)).child
            with lock:
                routed[pod] += 1
            if j % 3:  # two in three complete, some while others route
                r.learn(completion(key, total_tokens=12))
                with lock:
                    completed[pod] += 1

    in_threads(work)
    assert r.ledger.counts() == [routed[p] - completed[p] for p in range(4)]
    assert sum(r.ledger.counts()) == 8 * 50


def test_ledger_moves_a_retried_route():
    ledger = InFlight(2, ttl=60, clock=Clock())
    ledger.acquire("x", 0)
    ledger.acquire("x", 1)
    assert ledger.counts() == [0, 1]


def test_the_load_statistics_follow_every_change_of_a_count():
    clock = Clock()
    ledger = InFlight(5, ttl=60, clock=clock)
    rng = random.Random(3)
    live = []
    for step in range(2000):
        action = rng.random()
        if action < 0.5 or not live:
            key = f"k{step}"
            ledger.acquire(rng.choice([key, *live[-1:]]), rng.randrange(5))  # sometimes a retried route
            live.append(key)
        elif action < 0.8:
            ledger.release(live.pop(rng.randrange(len(live))))
        elif action < 0.9:
            ledger.release_oldest(rng.randrange(5))
        elif action < 0.95:
            ledger.drop_pod(rng.randrange(5))
        else:
            clock.t += rng.choice([1, 30, 61])  # some expire
        counts = ledger.counts()
        assert counts.stats == (min(counts), max(counts), sum(counts), sum(c * c for c in counts)), step
