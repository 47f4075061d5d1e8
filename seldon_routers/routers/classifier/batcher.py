"""A micro-batcher: concurrent callers' rows gathered into one model call.

Pure threading, no server imports. Callers `submit(rows)` and get a
concurrent.futures.Future; one worker thread takes the first queued item, then every
item already queued (up to `max_batch_size` rows in all), optionally waits up to
`max_batch_delay_ms` from the first item's arrival for more, runs the model once on the
concatenated rows and hands each caller its own slice. With a delay of 0 (the default) a
lone caller is never held back, and under load batches form while the previous batch runs
(continuous batching). A model error fails every caller of that batch; the worker lives on.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from concurrent.futures import Future
from typing import Any, Callable, Optional

import numpy as np

from ...errors import RouterError, RouterFailed

_STOP = object()


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

    # --- callers ------------------------------------------------------------------------

    def submit(self, rows: np.ndarray) -> Future:
        if self._closed:
            raise RouterFailed(f"{self.name}: the batcher is closed")
        self._ensure_worker()
        future: Future = Future()
        self._queue.put(_Item(rows, future, time.monotonic()))
        return future

    def __call__(self, rows: np.ndarray) -> Any:
        """Submits and waits: for callers on plain threads."""
        return self.submit(rows).result()

    def close(self, timeout: float = 5.0) -> None:
        """Stops the worker after the queued items are served."""
        self._closed = True
        thread = self._thread
        if thread is not None and thread.is_alive() and self._pid == os.getpid():
            self._queue.put(_STOP)
            thread.join(timeout)

    def _ensure_worker(self) -> None:
        # A forked process inherits the queue but not the thread: it starts its own.
        if self._pid != os.getpid() or self._thread is None:
            with self._lock:
                if self._pid != os.getpid() or self._thread is None:
                    if self._pid != os.getpid():
                        self._queue = queue.SimpleQueue()
                    self._thread = threading.Thread(target=self._work, name="seldon-router-batcher", daemon=True)
                    self._pid = os.getpid()
                    self._thread.start()

    # --- the worker ---------------------------------------------------------------------

    def _gather(self, first: _Item) -> tuple[list, bool]:
        """The first item plus what is queued (and, with a delay, what arrives in time)."""
        items, n, stop = [first], len(first.rows), False
        deadline = first.arrived + self.max_delay
        get = self._queue.get
        while n < self.max_batch_size:
            try:
                wait = deadline - time.monotonic()
                item = get(timeout=wait) if wait > 0 else get(block=False)
            except queue.Empty:
                break
            if item is _STOP:
                stop = True
                break
            items.append(item)
            n += len(item.rows)
        return items, stop

    def _work(self) -> None:
        q = self._queue
        while True:
            first = q.get()
            if first is _STOP:
                return
            items, stop = self._gather(first)
            self._serve(items)
            if stop:
                return

    def _serve(self, items: list) -> None:
        items = [it for it in items if it.future.set_running_or_notify_cancel()]
        if not items:
            return
        batch = items[0].rows if len(items) == 1 else np.concatenate([it.rows for it in items])
        start = time.perf_counter()
        try:
            outputs = self.run(batch)
            if len(outputs) != len(batch):
                raise RouterFailed(f"{self.name}: the model returned {len(outputs)} rows for {len(batch)}")
        except Exception as exc:
            error = exc if isinstance(exc, RouterError) else RouterFailed(
                f"{self.name}: the model failed on a batch of {len(batch)} rows: {type(exc).__name__}: {exc}")
            for it in items:
                it.future.set_exception(error)
            return
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
