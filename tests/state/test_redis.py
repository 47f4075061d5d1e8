"""`--state redis://...` through real `seldon-router serve` processes and a real
redis-server of each test's own (tests/state/conftest.py): replicas share one state,
exactly once per puid, Redis down at start-up or mid-run (routing goes on, feedback is
buffered and flushed once), a bounded buffer, SIGKILL, routers that cannot share.

Rewards are 0, 0.5 or 1, so every sum is exact and compared with ==. Waits poll with a
deadline; no test depends on how fast anything is."""

from __future__ import annotations

import signal
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest
import requests

from seldon_routers import LinUCB
from seldon_routers.proto import prediction_pb2 as pb
from state_cases import refused, route, send_feedback, serve, state
from support import scrape, wait_until

SYNC = ("--sync-interval", "0.05")
OUTAGE_SECONDS = 30.0  # Redis down mid-run this long, the case (with Redis keeping its data)
SHORT_OUTAGE_SECONDS = 3.0  # the other cases: nothing in the store is timed by the outage's length
TS = ("thompson-sampling", "--unit-id", "ts", "--param", "n_branches=3")


def redis_args(redis, namespace="test-ns") -> tuple:
    return ("--state", redis.url, "--state-namespace", namespace, *SYNC)


def replicas(n: int, *args: str) -> list:
    """n processes of one unit, started side by side."""
    with ThreadPoolExecutor(n) as pool:
        futures = [pool.submit(serve, *args) for _ in range(n)]
        started, errors = [], []
        for future in futures:
            try:
                started.append(future.result())
            except Exception as exc:  # noqa: BLE001  stop the others before failing
                errors.append(exc)
    if errors:
        for rp in started:
            rp.stop(signal.SIGKILL)
        raise errors[0]
    return started


@pytest.fixture
def stop_all():
    """Routers a test started: SIGTERMed at its end, whatever happened."""
    running = []
    yield running
    for rp in running:  # all at once: each takes a moment to drain and flush
        if rp.proc.poll() is None:
            rp.proc.send_signal(signal.SIGTERM)
    for rp in running:
        rp.stop()


def store(rp) -> dict:
    return state(rp)["store"]


def synced(rp) -> dict:
    """The state after a sync that began after this call: two completed syncs from now
    (the first may have read Redis before the call)."""
    start = time.time()
    first = wait_until(lambda: (store(rp).get("last_sync") or 0) > start and store(rp)["last_sync"],
                     what=f"a sync of {rp.url}")
    wait_until(lambda: store(rp)["last_sync"] > first, what=f"a second sync of {rp.url}")
    return state(rp)["state"]


def totals(feedbacks) -> tuple[list, list]:
    """Expected pulls and successes of three arms from (arm, reward) pairs."""
    pulls, successes = [0.0] * 3, [0.0] * 3
    for arm, reward in feedbacks:
        pulls[arm] += 1
        successes[arm] += reward
    return pulls, successes


def redis_sums(redis, namespace="test-ns") -> dict:
    raw = redis.client().hgetall(f"seldon-router:{{{namespace}}}:stats")
    return {k.decode(): float(v) for k, v in raw.items()}


def feed(rp, feedbacks, puid_prefix="") -> None:
    for i, (arm, reward) in enumerate(feedbacks):
        r = send_feedback(rp, "ts", arm, reward, puid=f"{puid_prefix}{i}" if puid_prefix else "")
        assert r.status_code == 200, r.text


def stream(seed: int, n: int) -> list:
    rng = np.random.default_rng(seed)
    return [(int(rng.integers(3)), float(rng.integers(0, 3)) / 2) for _ in range(n)]


def test_two_replicas_share_one_state_with_exact_totals(redis_server, stop_all):
    a, b = replicas(2, *TS, *redis_args(redis_server))
    stop_all += [a, b]
    to_a, to_b = stream(1, 30), stream(2, 20)
    routed = Counter()
    for rp, feedbacks in ((a, to_a), (b, to_b)):
        for _ in range(7):
            reply = route(rp)
            assert reply.status_code == 200
            routed[reply.json()["meta"]["routing"]["ts"]] += 1
        feed(rp, feedbacks)
    pulls, successes = totals(to_a + to_b)
    shared = [synced(rp) for rp in (a, b)]
    for one in shared:
        assert (one["pulls"], one["successes"]) == (pulls, successes)
        assert one["routes"] == [routed[i] for i in range(3)]  # routes are shared too
        assert one["alpha"] == [1.0 + s for s in successes]  # and the posteriors are rebuilt from them
        assert one["beta"] == [1.0 + n - s for n, s in zip(pulls, successes)]
    sums = redis_sums(redis_server)
    assert [sums.get(f"pulls.{i}", 0.0) for i in range(3)] == pulls


def test_one_puid_sent_to_both_replicas_counts_once(redis_server, stop_all):
    a, b = replicas(2, *TS, *redis_args(redis_server))
    stop_all += [a, b]
    feedbacks = stream(3, 12)
    feed(a, feedbacks, puid_prefix="dup-")
    feed(b, feedbacks, puid_prefix="dup-")  # the executor retried each one on the other replica
    feed(a, feedbacks[:3], puid_prefix="dup-")  # and a few on the first again
    pulls, successes = totals(feedbacks)
    for rp in (a, b):
        shared = synced(rp)
        assert (shared["pulls"], shared["successes"]) == (pulls, successes), rp.url
    assert store(b)["duplicates"] >= 12  # the replica that came second was told by Redis


def test_redis_down_at_start_up(redis_factory, stop_all):
    redis = redis_factory(start=False)  # its port, nothing listening yet
    default = serve(*TS, *redis_args(redis))
    stop_all.append(default)
    required = serve(*TS, *redis_args(redis), "--state-required", ready="/live")
    stop_all.append(required)
    assert requests.get(default.url + "/ready", timeout=5).status_code == 200
    assert requests.get(required.url + "/ready", timeout=5).status_code == 503
    for rp in (default, required):
        assert route(rp).status_code == 200
    feedbacks = stream(4, 8)
    feed(default, feedbacks[:5])  # buffered while Redis is down
    feed(required, feedbacks[5:])
    assert store(default)["up"] is False and store(default)["buffered"] >= 5

    done = refused(*TS, *redis_args(redis), "--state-fail-fast")
    assert done.returncode == 2 and "unreachable" in done.stderr and redis.url in done.stderr, done.stderr

    redis.start()
    wait_until(lambda: requests.get(required.url + "/ready", timeout=5).status_code == 200, what="/ready 200")
    wait_until(lambda: store(default)["up"] and store(default)["buffered"] == 0, what="the buffer flushed")
    pulls, successes = totals(feedbacks)
    for rp in (default, required):
        shared = synced(rp)
        assert (shared["pulls"], shared["successes"]) == (pulls, successes), rp.url
    sums = redis_sums(redis)
    assert [sums.get(f"pulls.{i}", 0.0) for i in range(3)] == pulls  # flushed once, not once per retry


def test_a_password_in_the_redis_url_is_never_printed(redis_factory, stop_all):
    """Logs and errors name the store as redis://:***@host, whatever they report."""
    redis = redis_factory(start=False)
    url = redis.url.replace("redis://", "redis://:hunter2-s3cret@")
    done = refused(*TS, "--state", url, "--state-fail-fast")
    assert done.returncode == 2 and "unreachable" in done.stderr and ":***@127.0.0.1" in done.stderr, done.stderr
    rp = serve(*TS, "--state", url, *SYNC)  # down: it serves, and logs that the store is unreachable
    stop_all.append(rp)
    assert route(rp).status_code == 200
    wait_until(lambda: "unreachable" in rp.output(), what="the outage logged")
    assert "hunter2-s3cret" not in rp.output() + done.stderr + requests.get(rp.url + "/state", timeout=5).text


@pytest.mark.parametrize("persist", [True, False], ids=["redis-keeps-its-data", "redis-restarts-empty"])
def test_redis_down_mid_run_loses_nothing_and_counts_nothing_twice(redis_factory, stop_all, persist):
    """Redis stops for OUTAGE_SECONDS and comes back on the same port. With persistence
    (append-only file, as a production Redis should run) it comes back with its sums and
    the ids of what it applied. Without (the test's default redis keeps nothing on disk) it
    comes back empty: the first replica to see that seeds it again with the sums it last
    read. Either way the totals are exactly what was fed back, before and during."""
    redis = redis_factory(persist=persist)
    a, b = replicas(2, *TS, *redis_args(redis))
    stop_all += [a, b]
    before = stream(5, 10)
    feed(a, before[:6])
    feed(b, before[6:])
    for rp in (a, b):
        synced(rp)  # both have read every sum (what a Redis that restarts empty is seeded with)
    redis.stop()
    down_at = time.monotonic()
    outage = OUTAGE_SECONDS if persist else SHORT_OUTAGE_SECONDS
    during = []
    for i, (arm, reward) in enumerate(stream(6, 1000)):  # traffic all through the outage
        if i >= 10 and time.monotonic() - down_at > outage - 1:
            break
        rp = (a, b)[i % 2]
        assert route(rp).status_code == 200  # routing goes on from the local copy
        r = send_feedback(rp, "ts", arm, reward)
        assert r.status_code == 200, r.text  # accepted: applied here, buffered
        during.append((arm, reward))
        time.sleep(0.25)
    for rp in (a, b):
        assert wait_until(lambda: not store(rp)["up"], what="the store seen down")
    assert all(store(rp)["buffered"] >= 5 for rp in (a, b))
    time.sleep(max(0.0, outage - (time.monotonic() - down_at)))
    redis.start()
    for rp in (a, b):
        wait_until(lambda: store(rp)["up"] and store(rp)["buffered"] == 0, what="the buffer flushed")
    pulls, successes = totals(before + during)
    for rp in (a, b):
        shared = synced(rp)
        assert (shared["pulls"], shared["successes"]) == (pulls, successes), rp.url
    sums = redis_sums(redis)
    assert [sums.get(f"pulls.{i}", 0.0) for i in range(3)] == pulls
    assert [sums.get(f"successes.{i}", 0.0) for i in range(3)] == successes


def test_a_full_buffer_refuses_feedback_with_503_and_changes_nothing(redis_server, stop_all):
    rp = serve(*TS, *redis_args(redis_server), "--state-buffer", "5")
    stop_all.append(rp)
    assert route(rp).status_code == 200
    feed(rp, [(0, 1.0)])
    synced(rp)  # the route and the feedback are in Redis: nothing of before is buffered
    redis_server.stop()
    feed(rp, [(1, 1.0)] * 5)  # the buffer's 5
    wait_until(lambda: not store(rp)["up"], what="the store seen down")
    before = state(rp)
    r = send_feedback(rp, "ts", 2, 1.0)
    assert r.status_code == 503, r.text
    assert "retry" in r.json()["status"]["info"]
    after = state(rp)
    assert after["state"] == before["state"] and after["store"]["buffered"] == 5
    assert after["store"]["refused"] == 1
    assert scrape(rp).value("seldon_router_state_refused_total") == 1.0
    redis_server.start()  # back: the five are flushed, the refused one never was
    wait_until(lambda: store(rp)["up"] and store(rp)["buffered"] == 0, what="the buffer flushed")
    shared = synced(rp)
    assert shared["pulls"] == [1.0, 5.0, 0.0]
    assert send_feedback(rp, "ts", 2, 1.0).status_code == 200  # and feedback is taken again


def test_sigkill_loses_no_acknowledged_feedback(redis_server, stop_all):
    rp = serve(*TS, *redis_args(redis_server))
    feedbacks = stream(7, 25)
    try:
        feed(rp, feedbacks[:-1])  # each acknowledged once Redis has it
        # The last while Redis is slow (busy for half a second, under the store's 1 s socket
        # timeout, so not "down"): acknowledged only once Redis has it, then killed at once.
        stalled = redis_server.stall(0.5)
        feed(rp, feedbacks[-1:])
    finally:
        rp.stop(signal.SIGKILL)
    stalled.join()
    restarted = serve(*TS, *redis_args(redis_server))
    stop_all.append(restarted)
    shared = synced(restarted)
    assert (shared["pulls"], shared["successes"]) == totals(feedbacks)


@pytest.mark.parametrize("param, name", [("discount=0.9", "discount"), ("window=50", "window")])
def test_a_router_that_is_not_additive_is_refused(redis_server, param, name):
    done = refused(*TS, "--param", param, *redis_args(redis_server))
    assert done.returncode == 2 and name in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert redis_server.client().keys("*") == []  # and it claimed nothing


@pytest.mark.parametrize("other", [
    ("ucb1", "--unit-id", "ts", "--param", "n_branches=3"),
    ("thompson-sampling", "--unit-id", "ts", "--param", "n_branches=4"),
    ("thompson-sampling", "--unit-id", "ts", "--param", "n_branches=3", "--param", "reward_model=gaussian"),
], ids=["another-policy", "other-arms", "other-statistics"])
def test_another_router_on_the_same_namespace_is_refused(redis_server, stop_all, other):
    first = serve(*TS, *redis_args(redis_server))
    stop_all.append(first)
    feed(first, [(0, 1.0)])
    done = refused(*other, *redis_args(redis_server))
    assert done.returncode == 2 and "another router" in done.stderr and "--state-namespace" in done.stderr, \
        done.stderr
    assert synced(first)["pulls"] == [1.0, 0.0, 0.0]  # its state untouched


def test_grpc_feedback_is_shared_too(redis_server, stop_all):
    a, b = replicas(2, *TS, *redis_args(redis_server))
    stop_all += [a, b]
    over_grpc = stream(8, 10)
    with grpc.insecure_channel(a.grpc_target) as channel:
        send = channel.unary_unary("/seldon.protos.Router/SendFeedback",
                                   request_serializer=pb.Feedback.SerializeToString,
                                   response_deserializer=pb.SeldonMessage.FromString)
        for i, (arm, reward) in enumerate(over_grpc):
            msg = pb.Feedback(reward=reward)
            msg.request.data.ndarray.values.add().list_value.values.add().number_value = 1.0
            msg.response.meta.routing["ts"] = arm
            msg.response.meta.puid = f"g-{i}"
            send(msg, timeout=10)
    feed(b, over_grpc[:4], puid_prefix="g-")  # the same predictions again, over REST elsewhere: once
    feed(b, [(2, 1.0)])
    pulls, successes = totals(over_grpc + [(2, 1.0)])
    for rp in (a, b):
        shared = synced(rp)
        assert (shared["pulls"], shared["successes"]) == (pulls, successes), rp.url


def test_lin_ucb_replicas_converge_to_one_model(redis_server, stop_all):
    args = ("lin-ucb", "--unit-id", "ts", "--param", "n_branches=3", "--param", "n_features=3",
            *redis_args(redis_server))
    a, b = replicas(2, *args)
    stop_all += [a, b]
    reference = LinUCB(n_branches=3, n_features=3)  # one process that saw every feedback
    rng = np.random.default_rng(9)
    for i in range(24):
        rows = (rng.integers(-4, 5, size=(int(rng.integers(1, 3)), 3)) / 4).tolist()
        arm, reward = int(rng.integers(3)), float(rng.integers(0, 3)) / 2
        r = send_feedback((a, b)[i % 2], "ts", arm, reward, rows=rows)
        assert r.status_code == 200, r.text
        reference.send_feedback(np.array(rows), [], reward, None, routing=arm)
    models = [synced(rp) for rp in (a, b)]
    assert models[0]["xx"] == models[1]["xx"] == reference.xx.ravel().tolist()
    assert models[0]["xr"] == models[1]["xr"] == reference.b.ravel().tolist()
    for model in models:
        assert np.allclose(model["theta"], reference.theta, rtol=1e-9, atol=1e-12)
    assert models[0]["theta"] == models[1]["theta"]  # the same sums, inverted alike
    x = {"data": {"ndarray": [[0.5, -0.25, 1.0]]}}
    assert route(a, x).json()["meta"]["routing"]["ts"] == route(b, x).json()["meta"]["routing"]["ts"]
