"""A micro-batcher: concurrent callers' rows gathered into one model call.

Pure threading, no server imports. Callers `submit(rows)` and get a
concurrent.futures.Future; one worker thread takes the first queued item, then every
item already queued while the rows stay within `max_batch_size` (an item that would take
the batch past it waits, first in line, for the next batch; a single item larger than the
cap runs alone), optionally waits up to `max_batch_delay_ms` from the first item's arrival
for more, runs the model once on the concatenated rows and hands each caller its own slice.
With a delay of 0 (the default) a lone caller is never held back, and under load batches
form while the previous batch runs (continuous batching).

Whatever goes wrong with a batch (rows that do not concatenate, a model error, a
MemoryError, even a SystemExit or KeyboardInterrupt raised by the model) fails every caller
of that batch with a RouterFailed naming the error, and the worker lives on: it is the only
thread that serves the model, and a stop signal raised by model code is not the process's
to obey. Should the worker die anyway, the next submit starts a new one. close() and
submit() share a lock, so a call either lands before the stop marker (and is served) or is
refused; anything found behind the marker is failed, never left waiting.
"""

from __future__ import annotations

import os
import queue
import threading
import time
import weakref
from concurrent.futures import Future
from typing import Any, Callable, Optional

import numpy as np

from ...errors import RouterError, RouterFailed

_STOP = object()


_LIVE: "weakref.WeakSet[Batcher]" = weakref.WeakSet()


def _new_locks_after_fork() -> None:
    """A child forked while another thread held a batcher's lock must not inherit it held."""
    for batcher in list(_LIVE):
        batcher._lock = threading.Lock()


# One hook for every batcher (a hook per instance would pile up and never be removed).
os.register_at_fork(after_in_child=_new_locks_after_fork)


class _Item:
    __slots__ = ("rows", "future", "arrived")

    def __init__(self, rows: np.ndarray, future: Future, arrived: float):
        self.rows, self.future, self.arrived = rows, future, arrived


class BatchStats:
    """What the batcher has done so far (read by tests, /state and the bench)."""

    __slots__ = ("batches", "rows", "max_rows")

    def __init__(self):
        self.batches = self.rows = self.max_rows = 0

    def as_dict(self) -> dict:
        return {"batches": self.batches, "rows": self.rows, "max_rows": self.max_rows,
                "mean_rows": self.rows / self.batches if self.batches else 0.0}


class Batcher:
    """run(batch) -> outputs with one row per input row; finish(outputs_slice) -> what a
    caller's future resolves to (applied per caller in the worker; an error there fails
    that caller only). on_batch(rows, seconds) is told about every model call."""

    def __init__(self, run: Callable[[np.ndarray], np.ndarray], max_batch_size: int = 32,
                 max_batch_delay_ms: float = 0.0, finish: Optional[Callable[[np.ndarray], Any]] = None,
                 on_batch: Optional[Callable[[int, float], None]] = None, name: str = "classifier"):
        self.run = run
        self.max_batch_size = max_batch_size
        self.max_delay = max_batch_delay_ms / 1000.0
        self.finish = finish
        self.on_batch = on_batch
        self.name = name
        self.stats = BatchStats()
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None
        self._pid = 0
        self._closed = False
        _LIVE.add(self)

    # --- callers ------------------------------------------------------------------------

    def submit(self, rows: np.ndarray) -> Future:
        future: Future = Future()
        with self._lock:  # close() takes it too: no item can land behind the stop marker
            if self._closed:
                raise RouterFailed(f"{self.name}: the batcher is closed")
            self._ensure_worker()
            self._queue.put(_Item(rows, future, time.monotonic()))
        return future

    def __call__(self, rows: np.ndarray) -> Any:
        """Submits and waits: for callers on plain threads."""
        return self.submit(rows).result()

    def close(self, timeout: float = 5.0) -> None:
        """Stops the worker after the queued items are served; later submits are refused."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
            running = thread is not None and thread.is_alive() and self._pid == os.getpid()
            self._queue.put(_STOP)
        if running:
            thread.join(timeout)
        else:  # no worker to serve what is queued (none started, or a forked copy's queue)
            self._drain(self._queue)

    def _ensure_worker(self) -> None:
        """Under self._lock. A forked process inherits the queue but not the thread, and a
        worker that died is replaced: either way a new one starts."""
        if self._pid == os.getpid() and self._thread is not None and self._thread.is_alive():
            return
        if self._pid != os.getpid():
            self._queue = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, args=(self._queue,), name="seldon-router-batcher",
                                        daemon=True)
        self._pid = os.getpid()
        self._thread.start()

    # --- the worker ---------------------------------------------------------------------

    def _gather(self, q: queue.SimpleQueue, items: list) -> tuple[Optional[_Item], bool]:
        """Adds to `items` (the first item) what is queued (and, with a delay, what arrives in
        time) while the rows stay within max_batch_size. Returns (the item that did not fit,
        to lead the next batch, or None; whether the stop marker came)."""
        n = len(items[0].rows)
        deadline = items[0].arrived + self.max_delay
        while n < self.max_batch_size:
            try:
                wait = deadline - time.monotonic()
                item = q.get(timeout=wait) if wait > 0 else q.get(block=False)
            except queue.Empty:
                break
            if item is _STOP:
                return None, True
            if n + len(item.rows) > self.max_batch_size:
                return item, False
            items.append(item)
            n += len(item.rows)
        return None, False

    def _work(self, q: queue.SimpleQueue) -> None:
        carry: Optional[_Item] = None  # the item that did not fit the last batch: it leads the next
        while True:
            first = carry if carry is not None else q.get()
            if first is _STOP:
                break
            items, carry, stop = [first], None, False
            try:
                carry, stop = self._gather(q, items)
                self._serve(items)
            except BaseException as exc:  # noqa: B036 - the callers must hear of it; the worker lives on
                self._fail(items, exc)
            if stop:
                break
        self._drain(q)

    def _drain(self, q: queue.SimpleQueue) -> None:
        """Fails what is left behind the stop marker."""
        error = RouterFailed(f"{self.name}: the batcher is closed")
        while True:
            try:
                item = q.get(block=False)
            except queue.Empty:
                return
            if item is not _STOP and item.future.set_running_or_notify_cancel():
                item.future.set_exception(error)

    def _fail(self, items: list, exc: BaseException) -> None:
        """Every caller of the batch not answered yet hears of `exc`."""
        rows = sum(len(it.rows) for it in items)
        error = exc if isinstance(exc, RouterError) else RouterFailed(
            f"{self.name}: the model failed on a batch of {rows} rows: {type(exc).__name__}: {exc}")
        for it in items:
            if not it.future.done():
                it.future.set_exception(error)

    def _serve(self, items: list) -> None:
        items[:] = [it for it in items if it.future.set_running_or_notify_cancel()]
        if not items:
            return
        try:
            batch = items[0].rows if len(items) == 1 else np.concatenate([it.rows for it in items])
        except ValueError as exc:
            raise RouterFailed(f"{self.name}: the batch's rows do not stack: {exc}") from None
        start = time.perf_counter()
        outputs = self.run(batch)
        if len(outputs) != len(batch):
            raise RouterFailed(f"{self.name}: the model returned {len(outputs)} rows for {len(batch)}")
        seconds = time.perf_counter() - start
        stats = self.stats
        stats.batches += 1
        stats.rows += len(batch)
        stats.max_rows = max(stats.max_rows, len(batch))
        if self.on_batch is not None:
            try:
                self.on_batch(len(batch), seconds)
            except Exception:  # a metrics hook never fails the callers
                pass
        offset, finish = 0, self.finish
        for it in items:
            part = outputs[offset:offset + len(it.rows)]
            offset += len(it.rows)
            try:
                it.future.set_result(finish(part) if finish is not None else part)
            except Exception as exc:
                it.future.set_exception(exc)
