"""The micro-batcher: concurrent callers share one model call and each gets its own answer;
a model error reaches every caller of its batch and the worker lives on; fork and close."""

from __future__ import annotations

import multiprocessing
import threading
import time

import numpy as np
import pytest

from classifier_models import Linear
from seldon_routers import ClassifierRouter
from seldon_routers.errors import RouterFailed
from seldon_routers.routers.classifier.batcher import Batcher

N_THREADS = 64


def wait_until(predicate, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.001)


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


def _classify_in_child(router, queue):
    queue.put(router.classify(np.eye(4, dtype=np.float32)[2:3]).child)


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="no fork on this platform")
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
