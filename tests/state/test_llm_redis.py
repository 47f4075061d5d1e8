"""The LLM routers' shared state (state/llm_redis.py) against a real redis-server of the
test's own: the in-flight ledger (exact, TTL-safe, never negative, a pod's counts leave
with it) and the rate limits (the same sliding log as the memory limiter, admission by
admission), each exact under 8 threads split over two clients (two replicas). Time is a
passed clock, so every TTL and window edge is exact; the served tests use Redis' TIME."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import time

import pytest
from llm_cases import Ask, Clock

from seldon_routers.errors import RateLimited, StoreUnavailable
from seldon_routers.routers.llm.inflight import InFlight
from seldon_routers.routers.llm.limits import WINDOW, Policy, RateLimits
from seldon_routers.state.llm_redis import RedisLedger, RedisLimits, llm_keys
from support import ClientThreads, wait_until

PODS = ["pod-a", "pod-b", "pod-c"]


def client_of(redis_server):
    import redis.asyncio as aioredis

    return aioredis.from_url(redis_server.url)


def run(redis_server, body, namespace="t"):
    """asyncio.run(body(client, keys)) with a client of its own (closed after)."""

    async def main():
        client = client_of(redis_server)
        try:
            return await body(client, llm_keys(namespace))
        finally:
            await client.aclose()

    return asyncio.run(main())


# --- in flight ---------------------------------------------------------------------------

def test_ledger_counts_releases_and_never_goes_negative(redis_server):
    clock = Clock()

    async def body(client, keys):
        ledger = RedisLedger(client, keys, PODS, ttl=600, clock=clock, local_clock=clock)
        assert await ledger.counts() == [0, 0, 0]
        await ledger.acquire("r1", 0, 30)
        await ledger.acquire("r2", 0)
        await ledger.acquire("r3", 2)
        assert await ledger.counts() == [2, 0, 1]
        clock.t += 5
        entry = await ledger.release("r1")
        assert (entry.pod, entry.started, entry.tokens) == (0, 1000.0, 30)  # its start, in the local clock
        assert await ledger.release("r1") is None  # a second completion changes nothing
        assert await ledger.release("never-routed") is None
        assert await ledger.counts() == [1, 0, 1]
        await ledger.acquire("r3", 1)  # a retried route moves the request
        assert await ledger.counts() == [1, 1, 0]
        assert (await ledger.release_oldest(0)).pod == 0  # a completion naming only its pod
        assert await ledger.release_oldest(0) is None
        assert await ledger.counts() == [0, 1, 0]

    run(redis_server, body)


def test_ledger_ttl_expires_lost_completions_exactly(redis_server):
    clock = Clock()

    async def body(client, keys):
        ledger = RedisLedger(client, keys, PODS, ttl=60, clock=clock, local_clock=clock)
        await ledger.acquire("lost", 1)
        clock.t += 30
        await ledger.acquire("later", 1)
        clock.t += 30 - 1e-3
        assert await ledger.counts() == [0, 2, 0]
        clock.t += 1e-3  # exactly the TTL after the first route
        assert await ledger.counts() == [0, 1, 0]
        assert await ledger.release("lost") is None  # its completion, late: nothing goes negative
        assert await ledger.counts() == [0, 1, 0] and await ledger.expired() == 1
        clock.t += 30
        assert await ledger.counts() == [0, 0, 0] and await ledger.expired() == 2
        assert await client.hlen(keys["entries"]) == 0  # nothing leaks in Redis either

    run(redis_server, body)


def test_a_pod_that_leaves_takes_its_counts(redis_server):
    async def body(client, keys):
        ledger = RedisLedger(client, keys, PODS, ttl=600)  # Redis' own clock
        for i in range(4):
            await ledger.acquire(f"r{i}", i % 2)
        assert await ledger.drop_pod(1) == 2
        assert await ledger.counts() == [2, 0, 0]
        assert await ledger.release("r1") is None

    run(redis_server, body)


def test_a_router_whose_pod_goes_down_drops_its_shared_counts(redis_server):
    from seldon_routers.registry import resolve
    from seldon_routers.request import Request

    async def body(client, keys):
        router = resolve("least-request")(pods=PODS)
        router.use_ledger(RedisLedger(client, keys, PODS, ttl=600))
        for _ in range(6):
            await router.decide(Request({"prompt": "hi"}, kind="jsonData"))
        assert await router.ledger.counts() == [2, 2, 2]
        await router.pod_down(1)  # what the pod watcher awaits
        assert await router.ledger.counts() == [2, 0, 2]
        assert (await router.decide(Request({"prompt": "hi"}, kind="jsonData"))).child != 1

    run(redis_server, body)


def test_replicas_with_another_pod_order_share_counts_by_name(redis_server):
    async def body(client, keys):
        a = RedisLedger(client, keys, PODS, ttl=600)
        b = RedisLedger(client, keys, list(reversed(PODS)), ttl=600)
        await a.acquire("x", 0)
        assert await b.counts() == [0, 0, 1]
        assert (await b.release("x")).pod == 2

    run(redis_server, body)


def threads(n, work):
    barrier, errors = threading.Barrier(n), []

    def one(i):
        try:
            barrier.wait()
            work(i)
        except Exception as exc:  # noqa: BLE001  reported below
            errors.append(exc)

    started = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in started:
        t.start()
    for t in started:
        t.join()
    assert not errors, errors


def test_ledger_exact_under_eight_threads_over_two_replicas(redis_server):
    """Each thread has its own client (a replica each); each routes 50 requests and
    completes the even ones: 25 per thread stay in flight, spread as they were routed."""
    expected = [0, 0, 0]
    lock = threading.Lock()

    def work(i):
        async def body(client, keys):
            ledger = RedisLedger(client, keys, PODS, ttl=600)
            mine = [0, 0, 0]
            for j in range(50):
                pod = (i + j) % 3
                await ledger.acquire(f"{i}-{j}", pod)
                if j % 2 == 0:
                    assert (await ledger.release(f"{i}-{j}")).pod == pod
                else:
                    mine[pod] += 1
            with lock:
                for p in range(3):
                    expected[p] += mine[p]

        run(redis_server, body)

    threads(8, work)

    async def final(client, keys):
        return await RedisLedger(client, keys, PODS, ttl=600).counts()

    assert run(redis_server, final) == expected and sum(expected) == 8 * 25


def test_memory_ledger_exact_under_eight_threads():
    ledger = InFlight(3, ttl=600)

    def work(i):
        for j in range(200):
            ledger.acquire(f"{i}-{j}", (i + j) % 3)
            if j % 2 == 0:
                assert ledger.release(f"{i}-{j}") is not None

    threads(8, work)
    assert sum(ledger.counts()) == 8 * 100 and min(ledger.counts()) >= 0


# --- rate limits -----------------------------------------------------------------------------

def test_redis_limits_admit_exactly_what_the_memory_limiter_admits(redis_server):
    """Same policy, same clock, same schedule (bursts across a minute's boundary, tokens,
    settlements): the same admissions, the same headers, the same refusals."""
    clock = Clock(0.0)
    policy = Policy.from_params(4, 300, {"models": {"llama": {"rpm": 2}}}, None)
    memory = RateLimits(policy, clock)
    schedule = [(59.0 + 0.2 * i, "gpt" if i % 3 else "llama", 40 + 7 * i) for i in range(15)]
    schedule += [(119.0 + 0.5 * i, "gpt", 25 + (i % 4) * 30) for i in range(80)]

    async def body(client, keys):
        shared = RedisLimits(client, keys, policy, clock)
        for n, (t, model, tokens) in enumerate(schedule):
            clock.t = t
            ask = Ask(model=model, tokens=tokens, key=f"r{n}")
            outcomes = []
            for limiter in (memory.admit_async, shared.admit_async):
                try:
                    outcomes.append(("ok", await limiter(ask)))
                except RateLimited as exc:
                    outcomes.append(("429", exc.message, exc.headers))
            assert outcomes[0] == outcomes[1], (t, outcomes)
            if n % 4 == 0:  # some usage arrives: the charge becomes the actual tokens
                assert await memory.settle_async(f"r{n}", 5) == await shared.settle_async(f"r{n}", 5)
        return n

    run(redis_server, body)
    assert memory.refused > 20  # the schedule does hit the limits


def test_redis_limits_exact_under_eight_threads_over_two_replicas(redis_server):
    policy = Policy.from_params(120, None, None, None)
    admitted = []

    def work(i):
        async def body(client, keys):
            limits = RedisLimits(client, keys, policy)  # Redis' own clock, as served
            for j in range(40):
                try:
                    await limits.admit_async(Ask(key=f"{i}-{j}"))
                    admitted.append(1)
                except RateLimited as exc:
                    assert exc.headers["x-ratelimit-remaining-requests"] == "0"

        run(redis_server, body)

    threads(8, work)
    assert len(admitted) == 120


def test_refusal_changes_nothing_and_idle_windows_leave_nothing(redis_server):
    clock = Clock()

    async def body(client, keys):
        limits = RedisLimits(client, keys, Policy.from_params(1, None, None, None), clock)
        await limits.admit_async(Ask(key="a"))
        before = {k: await client.dump(k) for k in await client.keys("*")}
        with pytest.raises(RateLimited) as caught:
            await limits.admit_async(Ask(key="b"))
        assert caught.value.headers["retry-after"] == "60"
        assert {k: await client.dump(k) for k in await client.keys("*")} == before
        clock.t += WINDOW
        await limits.admit_async(Ask(user="bob", key="c"))  # purges the index of alice's entry
        assert await client.hkeys(keys["index"]) == [b"c"]
        assert 0 < await client.pttl(keys["window"] + '["alice", null]') <= WINDOW * 1000 + 1000

    run(redis_server, body)


def test_a_window_of_requests_settled_at_zero_tokens_expires_cleanly(redis_server):
    """Entries holding 0 tokens leaving the window: nothing to take off the total (a "-0"
    passed to HINCRBY would fail every later admission in that window)."""
    clock = Clock()

    async def body(client, keys):
        limits = RedisLimits(client, keys, Policy.from_params(2, None, None, None), clock)
        await limits.admit_async(Ask(key="a"))
        assert await limits.settle_async("a", 0)
        clock.t += WINDOW + 1
        assert await limits.admit_async(Ask(key="b")) is not None
        assert await limits.admit_async(Ask(key="c")) is not None
        with pytest.raises(RateLimited):
            await limits.admit_async(Ask(key="d"))

    run(redis_server, body)


def test_an_unreachable_redis_is_a_503(redis_factory):
    server = redis_factory()
    port = server.port
    server.stop()

    async def body(client, keys):
        ledger = RedisLedger(client, keys, PODS, ttl=600)
        with pytest.raises(StoreUnavailable, match="state store unreachable"):
            await ledger.counts()
        assert not ledger.up

    import redis.asyncio as aioredis

    async def main():
        client = aioredis.from_url(f"redis://127.0.0.1:{port}/0", socket_connect_timeout=1)
        try:
            await body(client, llm_keys("t"))
        finally:
            await client.aclose()

    asyncio.run(main())


# --- through the router ------------------------------------------------------------------------

def test_two_routers_on_one_redis_share_counts_ttl_and_limits(redis_server):
    """Two LLMRouters (replicas) driven by one clock: a request routed by one completes on
    the other, a lost one expires after the TTL for both, a user's limit is one limit."""
    from seldon_routers.request import Feedback, Headers, Request
    from seldon_routers.routers.llm.router import LLMRouter

    clock = Clock()

    def chat(puid, user="alice"):
        return Request({"model": "m", "prompt": "hello"}, kind="jsonData", meta={"puid": puid},
                       headers=Headers([("user", user)]))

    def completion(puid, tokens):
        return Feedback(Request(meta={"puid": puid}), {}, 0.0, None,
                        response=Request({"usage": {"total_tokens": tokens}}, kind="jsonData"))

    async def body(client, keys):
        replicas = []
        for _ in range(2):
            r = LLMRouter(branch_names="a:b", rpm=3, in_flight_ttl="60s")
            r.clock = clock
            r.use_ledger(RedisLedger(client, keys, r.branch_names, 60, clock, r.now), RedisLimits(client, keys,
                                                                                                 r.limits.policy, clock))
            replicas.append(r)
        a, b = replicas
        d1 = await a.decide(chat("p1"))
        d2 = await b.decide(chat("p2"))
        assert {d1.child, d2.child} == {0, 1}  # b saw a's request in flight
        assert await a.ledger.counts() == await b.ledger.counts() == [1, 1]
        clock.t += 10
        await b.learn(completion("p1", 4))  # completed on the other replica
        assert await a.ledger.counts() == [1 - (d1.child == 0), 1 - (d1.child == 1)]
        await a.decide(chat("p3"))
        with pytest.raises(RateLimited):  # 3 per minute for alice, whichever replica she reaches
            await b.decide(chat("p4"))
        assert sum(await a.ledger.counts()) == 2  # the refused one is not in flight
        assert (await b.decide(chat("p5", user="bob"))).tags["ratelimit_remaining"][
            "x-ratelimit-remaining-requests"] == "2"
        clock.t += 50  # p2, p3, p5 never completed: 60 s after p2 it has expired
        assert sum(await b.ledger.counts()) == 2
        clock.t += 10
        assert await a.ledger.counts() == [0, 0]
        assert (await a.decide(chat("p6"))).tags["ratelimit_remaining"]["x-ratelimit-remaining-requests"] == "2"

    run(redis_server, body)


# --- Redis killed and restarted under load, through a served router ----------------------------

LOAD_USERS = 6  # one client thread each
RPM = 25


def _chat(puid: str, user: str) -> tuple:
    body = {"jsonData": {"model": "llama", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5},
            "meta": {"puid": puid}}
    return body, {"user": user}


def _complete(rp, puid: str):
    import requests

    return requests.post(rp.url + "/send-feedback", json={"request": {"meta": {"puid": puid}}, "response": {}},
                         timeout=10)


class _LLMLoad(ClientThreads):
    """LOAD_USERS threads, each a user routing chats and completing them, KEEP_OPEN behind
    (so requests are in flight whenever Redis dies), until told to stop. Records every
    route's and completion's status code."""

    KEEP_OPEN = 2

    def __init__(self, rp):
        super().__init__()
        self.rp = rp
        self.routes = {f"u{i}": [] for i in range(LOAD_USERS)}  # (puid, status)
        self.completions: dict = {}  # puid -> [status, ...]
        self.threads = [threading.Thread(target=self._client, args=(user,), daemon=True) for user in self.routes]
        self.go, self.busy = threading.Event(), {user: threading.Lock() for user in self.routes}
        self.go.set()

    @contextlib.contextmanager
    def paused(self):
        """Every client between two calls for the block."""
        self.go.clear()
        for lock in self.busy.values():
            lock.acquire()
        try:
            yield
        finally:
            for lock in self.busy.values():
                lock.release()
            self.go.set()

    def _client(self, user: str) -> None:
        n, open_ = 0, []
        while not self.stop.is_set():
            self.go.wait()
            with self.busy[user]:
                n = self._one(user, n, open_)
            time.sleep(0.002)

    def _one(self, user: str, n: int, open_: list) -> int:
        """A route, and the completion of the oldest open request beyond KEEP_OPEN."""
        import requests

        puid, n = f"{user}-{n}", n + 1
        body, headers = _chat(puid, user)
        try:
            status = requests.post(self.rp.url + "/route", json=body, headers=headers, timeout=10).status_code
        except requests.RequestException as exc:  # the router itself must not fail: recorded as such
            status = type(exc).__name__
        self.routes[user].append((puid, status))
        if status == 200:
            open_.append(puid)
        if len(open_) > self.KEEP_OPEN:
            done = _complete(self.rp, open_[0]).status_code
            self.completions.setdefault(open_[0], []).append(done)
            if done == 200:
                open_.pop(0)
        return n

    def open(self) -> list:
        """The requests routed whose completion was not acknowledged (yet)."""
        return [p for calls in self.routes.values() for p, s in calls
                if s == 200 and self.completions.get(p, [None])[-1] != 200]

    def seen(self, status) -> int:
        return sum(s == status for calls in self.routes.values() for _, s in list(calls))



@pytest.mark.parametrize("limits", [(), ("--param", f"rpm={RPM}")], ids=["least-request", "least-request-rpm"])
def test_redis_killed_and_restarted_under_load_loses_and_doubles_nothing(redis_factory, limits):
    """SIGKILL of Redis (append-only file, fsync always: what it acknowledged survives) while
    users route and complete, then Redis again on the same port. During the outage a call is a
    503 naming the store, never a 500; after it every request completed leaves the ledger
    (in flight back to exactly 0, never negative) and no user was served beyond the rpm limit."""
    import json

    import requests

    from state_cases import serve, state

    redis = redis_factory(persist=True)
    pods = json.dumps([{"name": "a", "models": ["llama"]}, {"name": "b", "models": ["llama"]}])
    rp = serve("least-request", "--unit-id", "llm", "--param", f"pods={pods}", *limits,
               "--state", redis.url, "--state-namespace", "kill-ns")
    try:
        with _LLMLoad(rp) as load:
            wait_until(lambda: load.seen(200) >= 60, timeout=30, what="60 routes answered")
            redis.stop(signal.SIGKILL)
            wait_until(lambda: load.seen(503) >= 10, timeout=30, what="routes refused 503 while Redis is down")
            assert state(rp)["store"]["up"] is False
            refused = _complete(rp, load.open()[0])  # a completion too is refused, and changes nothing
            assert refused.status_code == 503 and refused.json()["status"]["reason"] == "STATE_STORE_UNAVAILABLE"
            with load.paused():
                redis.start()  # the same port, the same append-only file
                # In flight: each request served and not yet completed, none lost (Redis had
                # acknowledged it). Redis applies a call, then replies once its append-only file
                # has it: killed in between, the call was applied but the caller got a 503. So
                # one less per completion refused, one more per route refused.
                open_, store = load.open(), state(rp)["store"]
                assert len(open_) >= LOAD_USERS * _LLMLoad.KEEP_OPEN
                maybe_done = sum(load.completions[p][-1] == 503 for p in open_ if p in load.completions)
                assert len(open_) - maybe_done <= sum(store["in_flight"].values()) <= len(open_) + load.seen(503), (
                    len(open_), maybe_done, store)
            served_before = load.seen(200)
            if limits:  # every user to its limit: a Redis that forgot the admissions before would serve more
                wait_until(lambda: all(any(s == 429 for _, s in list(calls)) for calls in load.routes.values()),
                           timeout=30, what="every user refused 429 once Redis is back")
            else:
                wait_until(lambda: load.seen(200) >= served_before + 30, timeout=30,
                           what="routing again once Redis is back")
        statuses = {s for calls in load.routes.values() for _, s in calls}
        assert statuses <= {200, 429, 503}, statuses  # never a 500, never a reset
        assert {s for done in load.completions.values() for s in done} <= {200, 503}
        # And once the load is over, the same (this time with the completions of after the restart)
        open_, store = load.open(), state(rp)["store"]
        maybe_done = sum(load.completions[p][-1] == 503 for p in open_ if p in load.completions)
        assert len(open_) - maybe_done <= sum(store["in_flight"].values()) <= len(open_) + load.seen(503), (
            len(open_), maybe_done, store)
        down = requests.post(rp.url + "/route", json=_chat("probe", "probe")[0], timeout=10)
        assert down.status_code == 200, down.text
        # The completions refused during the outage, and one for each route refused (a route
        # Redis counted just before it died, whose reply was lost): a completion for a request
        # never counted changes nothing, so the ledger must come back to exactly 0.
        unacknowledged = open_ + [p for calls in load.routes.values() for p, s in calls if s == 503] + ["probe"]
        for puid in unacknowledged:
            assert _complete(rp, puid).status_code == 200
        store = state(rp)["store"]
        assert store["up"] is True and store["in_flight"] == {"a": 0, "b": 0}, store
        with redis.client() as client:
            assert client.hlen("seldon-router:{kill-ns}:inflight") == 0
            assert all(client.zcard(f"seldon-router:{{kill-ns}}:inflight:pod:{p}") == 0 for p in "ab")
        if limits:
            for user, calls in load.routes.items():
                served = sum(s == 200 for _, s in calls)
                refused_by_store = sum(s == 503 for _, s in calls)
                assert served <= RPM, (user, served)  # the admissions before the kill were kept
                if any(s == 429 for _, s in calls):  # reached the limit: every admission is one served,
                    assert served >= RPM - refused_by_store, (user, served, refused_by_store)  # or lost to a 503
    finally:
        rp.stop()
