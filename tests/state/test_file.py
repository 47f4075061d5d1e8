"""`--state file:PATH` through real `seldon-router serve` processes: restored exactly after
SIGTERM, at most one snapshot interval lost to SIGKILL, a bad snapshot refused (exit 2,
naming the file) or kept aside with --state-discard-bad, snapshots atomic; plus the store's
own robustness, in-process."""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time

import numpy as np
import pytest

from seldon_routers import ConfigError, ThompsonSampling, UCB1
from seldon_routers.state import StoreOptions
from seldon_routers.state.file import FileStore
from state_cases import refused, route, send_feedback, serve, state
from support import wait_until

INTERVAL = "0.5"  # --snapshot-interval of these tests
TS = ("thompson-sampling", "--unit-id", "ts", "--param", "n_branches=3", "--param", "seed=1")
EG = ("epsilon-greedy", "--unit-id", "ts", "--param", "n_branches=3", "--param", "seed=1",
      "--param", "epsilon_decay=0.99")  # epsilon moves with each route: restored too


def file_args(path) -> tuple:
    return ("--state", f"file:{path}", "--snapshot-interval", INTERVAL)


def feed(rp, rewards, puid_prefix="") -> None:
    """One route and one feedback per reward, to the arm routed."""
    for i, reward in enumerate(rewards):
        reply = route(rp)
        assert reply.status_code == 200, reply.text
        arm = reply.json()["meta"]["routing"]["ts"]
        r = send_feedback(rp, "ts", arm, reward, puid=f"{puid_prefix}{i}" if puid_prefix else "")
        assert r.status_code == 200, r.text


def read(path) -> dict:
    with open(path, "rb") as f:
        return json.loads(f.read())


@pytest.mark.parametrize("router", [TS, EG], ids=["thompson-sampling", "epsilon-greedy"])
def test_sigterm_then_restart_restores_the_state_exactly(tmp_path, router):
    path = tmp_path / "state.json"
    rp = serve(*router, *file_args(path))
    try:
        feed(rp, [1.0, 0.0, 0.5, 1.0, 1.0, 0.25, 0.0, 1.0], puid_prefix="p")
        send_feedback(rp, "ts", 0, 1.0, puid="p0")  # a duplicate: counted in `duplicates`, applied once
        before = state(rp)["state"]
    finally:
        assert rp.stop(signal.SIGTERM) == 0
    assert sum(before["pulls"]) == 8 and before["duplicates"] == 1
    assert read(path) == before  # the final snapshot is what GET /state showed
    rp = serve(*router, *file_args(path))
    try:
        after = state(rp)["state"]
    finally:
        rp.stop()
    if router is TS:  # a Monte Carlo estimate from the sampler's own draws: re-estimated, not restored
        before.pop("propensity"), after.pop("propensity")
    assert after == before


def test_sigkill_loses_at_most_one_snapshot_interval(tmp_path):
    path = tmp_path / "state.json"
    rp = serve(*TS, *file_args(path))
    try:
        feed(rp, [1.0] * 6)
        # within an interval (and some), the file has them
        on_disk = wait_until(lambda: sum(read(path)["pulls"]) == 6 and read(path), timeout=10,
                           what="the snapshot holding 6 feedbacks")
        feed(rp, [0.0] * 3)  # may or may not make the next snapshot: the interval at risk
    finally:
        rp.stop(signal.SIGKILL)
    on_disk = read(path)  # whatever was last written, complete
    assert sum(on_disk["pulls"]) in (6, 7, 8, 9)
    rp = serve(*TS, *file_args(path))
    try:
        restored = state(rp)["state"]
    finally:
        rp.stop()
    for key in ("pulls", "successes", "routes", "alpha", "beta"):
        assert restored[key] == on_disk[key], key
    assert restored["successes"] == on_disk["successes"] and sum(restored["successes"]) == 6


BAD = ["garbage", "truncated", "empty", "not-an-object", "another-router", "other-arms", "nan-pulls",
       "pulls-not-a-list"]


def bad_snapshot(kind: str) -> bytes:
    good = ThompsonSampling(n_branches=3).state()
    return {
        "garbage": b"{not json",
        "truncated": json.dumps(good).encode()[:40],
        "empty": b"",
        "not-an-object": b"[1, 2, 3]",
        "another-router": json.dumps(UCB1(n_branches=3).state()).encode(),
        "other-arms": json.dumps(ThompsonSampling(n_branches=2).state()).encode(),
        "nan-pulls": json.dumps({**good, "pulls": [float("nan"), 0.0, 0.0]}).encode(),  # Python's json reads NaN
        "pulls-not-a-list": json.dumps({**good, "pulls": 5}).encode(),
    }[kind]


@pytest.mark.parametrize("kind", BAD)
def test_a_bad_snapshot_stops_start_up_naming_the_file(tmp_path, kind):
    path = tmp_path / "state.json"
    data = bad_snapshot(kind)
    path.write_bytes(data)
    done = refused(*TS, *file_args(path))
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    assert str(path) in done.stderr and "--state-discard-bad" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert path.read_bytes() == data  # left as it was, for someone to look at


def test_discard_bad_keeps_the_file_aside_and_starts_fresh(tmp_path):
    path = tmp_path / "state.json"
    data = json.dumps(UCB1(n_branches=3).state()).encode()
    path.write_bytes(data)
    rp = serve(*TS, *file_args(path), "--state-discard-bad")
    try:
        fresh = state(rp)["state"]
        assert fresh["pulls"] == [0.0, 0.0, 0.0] and fresh["policy"] == "thompson-sampling"
        aside = list(tmp_path.glob("state.json.bad-*"))
        assert len(aside) == 1 and aside[0].read_bytes() == data
        assert read(path)["policy"] == "thompson-sampling"  # a fresh snapshot took its place
        feed(rp, [1.0])
    finally:
        assert rp.stop() == 0
    assert sum(read(path)["pulls"]) == 1


def test_the_snapshot_is_always_whole_while_feedback_streams(tmp_path):
    """Written to a temporary file and renamed: a reader (or a crash) never sees half a
    snapshot, and no temporary file is left behind."""
    path = tmp_path / "state.json"
    rp = serve(*TS, "--state", f"file:{path}", "--snapshot-interval", "0.02")
    stop = threading.Event()
    sent = []

    def stream():
        while not stop.is_set():
            r = send_feedback(rp, "ts", len(sent) % 3, 1.0)
            assert r.status_code == 200
            sent.append(1)

    feeder = threading.Thread(target=stream)
    feeder.start()
    reads, seen = 0, []
    try:
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline or len(set(seen)) < 3:
            with open(path, "rb") as f:
                data = f.read()
            snapshot = json.loads(data)  # never a partial file
            assert snapshot["policy"] == "thompson-sampling"
            seen.append(sum(snapshot["pulls"]))
            reads += 1
            assert time.monotonic() < deadline + 10, "snapshots did not move"
    finally:
        stop.set()
        feeder.join()
        assert rp.stop() == 0
    assert seen == sorted(seen) and len(set(seen)) >= 3  # it did write many times meanwhile
    assert sum(read(path)["pulls"]) == len(sent)
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]  # no state.json.tmp-* left


def test_a_router_without_load_state_is_refused(tmp_path):
    done = refused("ab-test", "--param", "n_branches=2", *file_args(tmp_path / "ab.json"))
    assert done.returncode == 2 and "load_state" in done.stderr and "memory" in done.stderr, done.stderr
    assert not (tmp_path / "ab.json").exists()


def test_a_missing_directory_is_refused(tmp_path):
    path = tmp_path / "no-such-dir" / "state.json"
    done = refused(*TS, *file_args(path))
    assert done.returncode == 2 and str(path.parent) in done.stderr, done.stderr


# --- the store in-process ------------------------------------------------------------------


def _store(path, **options) -> FileStore:
    return FileStore(str(path), StoreOptions(**{"snapshot_interval": 0.01, **options}))


def test_two_bad_snapshots_kept_aside_in_one_second_are_both_kept(tmp_path):
    path = tmp_path / "state.json"

    async def start_with(data: bytes) -> None:
        path.write_bytes(data)
        store = _store(path, discard_bad=True)
        await store.start(UCB1(n_branches=2))
        await store.stop()

    asyncio.run(start_with(b"first bad"))
    asyncio.run(start_with(b"second bad"))  # within the same second: its own name, not over the first
    aside = sorted(p.read_bytes() for p in tmp_path.glob("state.json.bad-*"))
    assert aside == [b"first bad", b"second bad"]


def test_snapshots_from_several_threads_never_collide(tmp_path):
    """The periodic snapshot runs in a thread; shutdown's may start while it is still
    writing. They must not share a temporary file (one would rename the other's away)."""
    path = tmp_path / "state.json"
    router = UCB1(n_branches=3)
    store = _store(path)
    store.router = router
    errors = []

    def write(n):
        rng = np.random.default_rng(n)
        for _ in range(60):
            router.send_feedback(np.zeros((1, 1)), [], 1.0, None, routing=int(rng.integers(3)))
            try:
                store.snapshot()
            except ConfigError as exc:
                errors.append(exc.message)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    store.snapshot()
    assert read(path)["pulls"] == router.pulls and [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_a_failed_periodic_snapshot_does_not_stop_the_next_ones(tmp_path):
    """A snapshot that fails (a full disk, a state that is not JSON) is logged and tried
    again at the next interval: the periodic task must not die with it."""
    path = tmp_path / "state.json"

    class Flaky(UCB1):
        fail = 0

        def state(self):
            if Flaky.fail:
                Flaky.fail -= 1
                if Flaky.fail % 2:
                    raise RuntimeError("a router's own bug")
                return {"not json": object()}
            return super().state()

    router = Flaky(n_branches=2)

    async def run() -> int:
        store = _store(path)
        await store.start(router)
        written = store.snapshots
        Flaky.fail = 3
        router.send_feedback(np.zeros((1, 1)), [], 1.0, None, routing=1)
        for _ in range(300):  # until it wrote again (never, were the task dead)
            await asyncio.sleep(0.01)
            if store.snapshots > written:
                break
        await store.stop()
        return store.snapshots - written

    assert asyncio.run(run()) >= 1 and Flaky.fail == 0
    assert read(path)["pulls"] == [0.0, 1.0]


def test_a_temp_file_left_by_a_killed_write_is_removed_at_start_up(tmp_path):
    path = tmp_path / "state.json"
    (tmp_path / "state.json.tmp-12345").write_bytes(b'{"version": 1, "poli')  # SIGKILL mid-write

    async def run() -> None:
        store = _store(path)
        await store.start(UCB1(n_branches=2))
        await store.stop()

    asyncio.run(run())
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_persistence_health_follows_the_snapshots(tmp_path):
    """While snapshots fail, describe() (GET /state's "store") and the gauge say so, with why
    and how many in a row; the next good write clears both. (A full or read-only disk, for
    real: test_file_faults.py.)"""
    from seldon_routers.server.metrics import Metrics
    from support import scrape

    class Unsaveable(UCB1):
        broken = False

        def state(self):
            return {"not json": object()} if self.broken else super().state()

    router, metrics = Unsaveable(n_branches=2), Metrics()
    store = _store(tmp_path / "state.json", snapshot_interval=3600)  # snapshots by hand only

    def gauge() -> float:
        from prometheus_client import generate_latest

        return scrape(generate_latest(metrics.registry).decode()).value("seldon_router_state_persistence_healthy")

    async def run() -> None:
        await store.start(router, metrics)
        assert store.describe()["healthy"] is True and gauge() == 1
        router.broken = True
        for n in (1, 2):
            with pytest.raises(ConfigError):
                store.snapshot()
            health = store.describe()
            assert (health["healthy"], health["failures"]) == (False, n)
            assert "not JSON" in health["last_error"] and str(store.path) in health["last_error"]
            assert gauge() == 0
        router.broken = False
        router.send_feedback(np.zeros((1, 1)), [], 1.0, None, routing=1)
        assert store.snapshot() is True
        assert {k: store.describe()[k] for k in ("healthy", "failures", "last_error")} == {
            "healthy": True, "failures": 0, "last_error": None}
        assert gauge() == 1
        await store.stop()

    asyncio.run(run())
    assert read(tmp_path / "state.json")["pulls"] == [0.0, 1.0]
