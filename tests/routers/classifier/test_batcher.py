"""The micro-batcher: concurrent callers share one model call and each gets its own answer;
a model error reaches every caller of its batch and the worker lives on; fork and close."""

from __future__ import annotations

import multiprocessing
import threading

import numpy as np
import pytest

from classifier_models import Linear
from support import wait_until
from seldon_routers import ClassifierRouter
from seldon_routers.errors import RouterFailed
from seldon_routers.routers.classifier.batcher import _STOP, Batcher

N_THREADS = 64


class Gate:
    """A model whose first call after `close()` blocks until `open()`: callers pile up meanwhile."""

    def __init__(self, model):
        self.model, self.event, self.calls, self.entered = model, threading.Event(), [], threading.Event()
        self.event.set()

    def __call__(self, batch):
        self.entered.set()
        self.event.wait()
        self.calls.append(len(batch))
        return self.model(batch)


def held(max_batch_size: int, width: int = 1) -> tuple:
    """(gate, batcher, blocker): the worker holds the blocker's batch until gate.event.set(),
    so what is submitted meanwhile queues up together."""
    gate = Gate(lambda b: b)
    batcher = Batcher(gate, max_batch_size=max_batch_size)
    gate.event.clear()
    blocker = batcher.submit(np.zeros((1, width)))
    assert gate.entered.wait(5)
    return gate, batcher, blocker


def test_64_threads_with_distinct_inputs_each_get_their_own_answer():
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(16, 10))
    inputs = [rng.normal(size=(1 + i % 3, 16)).astype(np.float32) for i in range(N_THREADS)]  # 1 to 3 rows each
    reference = ClassifierRouter(model=Linear(weights), input_shape="16", max_batch_size=1)
    reference.load()
    expected = [reference.classify(x) for x in inputs]  # unbatched, one at a time

    gate = Gate(Linear(weights))
    router = ClassifierRouter(model=gate, input_shape="16", max_batch_size=32)
    router.load()
    gate.calls.clear()
    gate.event.clear()
    gate.entered.clear()
    results: list = [None] * N_THREADS
    start = threading.Barrier(N_THREADS)
    submitted, lock, submit = [], threading.Lock(), router._batcher.submit

    def counted(rows):  # counts the callers whose rows are queued (or held by the worker)
        future = submit(rows)
        with lock:
            submitted.append(1)
        return future

    router._batcher.submit = counted

    def call(i):
        start.wait()
        results[i] = router.classify(inputs[i])

    threads = [threading.Thread(target=call, args=(i,)) for i in range(N_THREADS)]
    for t in threads:
        t.start()
    gate.entered.wait(30)  # the worker holds one batch; the other callers queue behind it
    wait_until(lambda: len(submitted) == N_THREADS)
    gate.event.set()
    for t in threads:
        t.join(30)
    for i, (got, want) in enumerate(zip(results, expected)):
        assert got.child == want.child and got.tags["class"] == want.tags["class"], i
        assert got.tags["probability"] == pytest.approx(want.tags["probability"], rel=1e-5), i
    assert sum(gate.calls) == sum(len(x) for x in inputs)
    assert max(gate.calls) > 1 and len(gate.calls) < N_THREADS  # batches really formed
    assert all(n <= 32 + 2 for n in gate.calls)  # up to max_batch_size (a caller's rows are never split)
    stats = router.state()["batching"]
    assert stats["max_rows"] == max(gate.calls)


def test_the_batch_does_not_grow_past_max_batch_size_rows():
    calls, gate = [], threading.Event()
    batcher = Batcher(lambda b: (gate.wait(), calls.append(len(b)))[0] and b, max_batch_size=4)
    futures = [batcher.submit(np.full((1, 1), i)) for i in range(10)]
    gate.set()
    assert [int(f.result(30)[0, 0]) for f in futures] == list(range(10))
    assert max(calls) <= 4 and sum(calls) == 10


def test_an_item_that_would_overflow_the_batch_leads_the_next_one():
    gate, batcher, blocker = held(32)
    sizes = (1, 31, 31, 31, 40, 1)  # 40: larger than the cap, it runs alone
    futures = [batcher.submit(np.full((n, 1), i)) for i, n in enumerate(sizes)]
    gate.event.set()
    blocker.result(5)
    for i, (f, n) in enumerate(zip(futures, sizes)):
        assert f.result(5).shape == (n, 1) and (f.result(5) == i).all()
    assert gate.calls == [1, 32, 31, 31, 40, 1]  # 1 + 31 fill the cap; 62 (two 31s together) never forms


def test_a_lone_caller_with_a_delay_still_gets_its_answer():
    batcher = Batcher(lambda b: b * 2, max_batch_size=8, max_batch_delay_ms=5)
    assert batcher(np.ones((1, 2)))[0, 0] == 2
    assert batcher.stats.batches == 1


def test_a_delay_gathers_callers_that_arrive_within_it():
    batcher = Batcher(lambda b: b, max_batch_size=8, max_batch_delay_ms=1000)
    futures = [batcher.submit(np.full((1, 1), i)) for i in range(8)]  # the batch fills: no waiting the full delay
    assert [int(f.result(30)[0, 0]) for f in futures] == list(range(8))
    assert batcher.stats.batches == 1 and batcher.stats.max_rows == 8


def test_a_model_error_fails_every_caller_of_the_batch_and_the_worker_survives():
    fail = threading.Event()
    fail.set()

    def model(batch):
        if fail.is_set():
            raise ValueError("boom")
        return batch

    batcher = Batcher(model, max_batch_size=8)
    futures = [batcher.submit(np.ones((1, 1))) for _ in range(5)]
    for f in futures:
        with pytest.raises(RouterFailed, match="the model failed on a batch of .* rows: ValueError: boom"):
            f.result(30)
    fail.clear()
    assert batcher(np.ones((1, 1)))[0, 0] == 1


def test_rows_that_do_not_stack_fail_their_batch_and_the_worker_survives():
    gate, batcher, blocker = held(8, width=2)
    mismatched = [batcher.submit(np.ones((1, 2))), batcher.submit(np.ones((1, 3)))]  # one batch, two widths
    gate.event.set()
    blocker.result(5)
    for f in mismatched:
        with pytest.raises(RouterFailed, match="rows do not stack"):
            f.result(timeout=5)
    assert batcher.submit(np.ones((1, 2))).result(timeout=5).shape == (1, 2)


@pytest.mark.parametrize("error", [SystemExit(3), KeyboardInterrupt(), MemoryError("no room")])
def test_a_base_exception_from_the_model_fails_the_batch_and_the_worker_survives(error):
    raised = []

    def model(batch):
        if not raised:
            raised.append(1)
            raise error
        return batch

    batcher = Batcher(model, max_batch_size=8)
    with pytest.raises(RouterFailed, match=f"the model failed on a batch of 1 rows: {type(error).__name__}"):
        batcher.submit(np.ones((1, 1))).result(timeout=5)
    assert batcher.submit(np.ones((1, 1))).result(timeout=5)[0, 0] == 1


def test_a_dead_worker_is_replaced_on_the_next_submit():
    batcher = Batcher(lambda b: b, max_batch_size=8)
    batcher._work = lambda q: None  # a worker that dies at once, leaving its item queued
    stranded = batcher.submit(np.full((1, 1), 1))
    batcher._thread.join(5)
    assert not batcher._thread.is_alive()
    del batcher._work
    later = batcher.submit(np.full((1, 1), 2))
    assert stranded.result(timeout=5)[0, 0] == 1 and later.result(timeout=5)[0, 0] == 2


def test_an_error_in_one_callers_finish_fails_that_caller_only():
    def finish(part):
        if part[0, 0] < 0:
            raise ValueError("negative")
        return float(part[0, 0])

    gate = threading.Event()
    batcher = Batcher(lambda b: gate.wait() and b, max_batch_size=8, finish=finish)
    futures = [batcher.submit(np.full((1, 1), v)) for v in (1.0, -1.0, 2.0)]
    gate.set()
    assert futures[0].result(30) == 1.0 and futures[2].result(30) == 2.0
    with pytest.raises(ValueError, match="negative"):
        futures[1].result(30)


def test_wrong_row_count_from_the_model_is_a_router_failure():
    gate = threading.Event()
    batcher = Batcher(lambda b: gate.wait() and b[:1], max_batch_size=8)
    futures = [batcher.submit(np.ones((1, 1))) for _ in range(3)]
    gate.set()
    with pytest.raises(RouterFailed, match="returned 1 rows for"):
        futures[-1].result(30)


def test_close_serves_what_is_queued_then_refuses():
    batcher = Batcher(lambda b: b, max_batch_size=2)
    futures = [batcher.submit(np.full((1, 1), i)) for i in range(5)]
    batcher.close()
    assert [int(f.result(30)[0, 0]) for f in futures] == list(range(5))
    with pytest.raises(RouterFailed, match="closed"):
        batcher.submit(np.ones((1, 1)))


class _ContendedLock:
    """A lock that tells (`contended`) when a second thread waits on it."""

    def __init__(self):
        self._lock, self.contended = threading.Lock(), threading.Event()

    def __enter__(self):
        if not self._lock.acquire(blocking=False):
            self.contended.set()
            self._lock.acquire()
        return self

    def __exit__(self, *exc):
        self._lock.release()


def test_a_submit_racing_close_is_served_never_left_waiting():
    batcher = Batcher(lambda b: b, max_batch_size=8)
    assert batcher(np.zeros((1, 1)))[0, 0] == 0  # the worker runs
    lock, real = _ContendedLock(), batcher._queue
    batcher._lock = lock
    settled, race, closed = threading.Event(), threading.Event(), threading.Event()

    def close():
        batcher.close()
        closed.set()
        settled.set()

    class RacingQueue:  # close() runs between submit's closed check and its put
        get = real.get

        def put(self, item):
            if race.is_set() and item is not _STOP:
                race.clear()
                threading.Thread(target=close).start()
                threading.Thread(target=lambda: lock.contended.wait(10) and settled.set()).start()
                assert settled.wait(5)  # close() has finished, or waits for the lock submit holds
            real.put(item)

    batcher._queue = RacingQueue()
    race.set()
    future = batcher.submit(np.ones((1, 1)))
    assert future.result(timeout=5)[0, 0] == 1
    assert closed.wait(5)
    with pytest.raises(RouterFailed, match="closed"):
        batcher.submit(np.ones((1, 1)))


def test_an_item_behind_the_stop_marker_is_failed_as_closed():
    gate, batcher, first = held(8)
    batcher._queue.put(_STOP)  # as if close() had run between a submit's check and its put
    behind = batcher.submit(np.ones((1, 1)))
    gate.event.set()
    assert first.result(timeout=5)[0, 0] == 0
    with pytest.raises(RouterFailed, match="closed"):
        behind.result(timeout=5)


def _classify_in_child(router, queue):
    queue.put(router.classify(np.eye(4, dtype=np.float32)[2:3]).child)


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="no fork on this platform")
# Forking while the batcher's thread runs is the point; Python >= 3.12 warns of any fork
# in a multi-threaded process.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded, use of fork:DeprecationWarning")
def test_a_forked_process_starts_its_own_worker():
    router = ClassifierRouter(model=Linear(np.eye(4) * 5), input_shape="4")
    router.load()
    assert router.classify(np.eye(4, dtype=np.float32)[1:2]).child == 1  # the parent's worker runs
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_classify_in_child, args=(router, queue))
    proc.start()
    assert queue.get(timeout=30) == 2
    proc.join(30)
    assert proc.exitcode == 0
