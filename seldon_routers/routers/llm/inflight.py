"""In-flight accounting: which pod each routed request is on, until it completes.

A route adds one to its pod; a completion (feedback naming the request's puid) removes it;
an entry expires after a TTL, so a lost completion never leaks a count; a count never goes
negative (a completion for an unknown or expired puid changes nothing); a pod that leaves
takes its entries with it. Thread-safe: Seldon's wrapper calls routers from threads.

This is the memory ledger; state/llm_redis.py keeps the same entries in Redis for every
replica (the router takes whichever it is given, see LLMRouter.use_ledger).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Callable, NamedTuple, Optional


class Entry(NamedTuple):
    pod: int
    started: float  # clock() at route
    tokens: int  # tokens charged at route (estimate), reconciled at completion


class Loads(list):
    """Requests in flight per pod, with (min, max, sum, sum of squares) over all pods: kept
    as the counts change, so a strategy's load bound costs nothing per request at 100 pods."""

    __slots__ = ("stats",)


class InFlight:
    is_async = False

    def __init__(self, n_pods: int, ttl: float, clock: Callable[[], float] = time.monotonic):
        self.ttl = ttl
        self.clock = clock
        self._counts = [0] * n_pods
        self._pods_at = {0: n_pods}  # count -> pods holding that many (min and max at a glance)
        self._total = self._squares = 0
        self._entries: OrderedDict[str, Entry] = OrderedDict()  # in route order = expiry order (one TTL)
        self._lock = threading.Lock()
        self.expired = 0  # entries dropped by the TTL (completions never reported)

    def _purge(self, now: float) -> None:
        entries, cutoff = self._entries, now - self.ttl
        while entries:
            key, entry = next(iter(entries.items()))
            if entry.started > cutoff:
                break
            entries.popitem(last=False)
            self._add(entry.pod, -1)
            self.expired += 1

    def _add(self, pod: int, delta: int) -> None:
        """The one place a count changes (under the lock): the statistics follow it."""
        before = self._counts[pod]
        after = self._counts[pod] = before + delta
        at = self._pods_at
        if at[before] == 1:
            del at[before]
        else:
            at[before] -= 1
        at[after] = at.get(after, 0) + 1
        self._total += delta
        self._squares += after * after - before * before

    def counts(self) -> Loads:
        """Requests in flight per pod, now."""
        with self._lock:
            self._purge(self.clock())
            out = Loads(self._counts)
            at = self._pods_at
            out.stats = (min(at), max(at), self._total, self._squares)
            return out

    def acquire(self, key: str, pod: int, tokens: int = 0) -> None:
        """Counts a request routed to `pod`; the same key again moves it (a retried route)."""
        with self._lock:
            now = self.clock()
            self._purge(now)
            old = self._entries.pop(key, None)
            if old is not None:
                self._add(old.pod, -1)
            self._entries[key] = Entry(pod, now, tokens)
            self._add(pod, 1)

    def release(self, key: str) -> Optional[Entry]:
        """Ends a request: its entry, or None if it was never counted, already ended or expired."""
        with self._lock:
            self._purge(self.clock())
            entry = self._entries.pop(key, None)
            if entry is not None:
                self._add(entry.pod, -1)
            return entry

    def release_oldest(self, pod: int) -> Optional[Entry]:
        """Ends the oldest request on `pod`: a completion that names its pod but not its puid
        (Seldon's wrapper passes no meta to send_feedback)."""
        with self._lock:
            self._purge(self.clock())
            for key, entry in self._entries.items():
                if entry.pod == pod:
                    del self._entries[key]
                    self._add(pod, -1)
                    return entry
            return None

    def drop_pod(self, pod: int) -> int:
        """A pod that left: its entries go with it; returns how many."""
        with self._lock:
            keys = [k for k, e in self._entries.items() if e.pod == pod]
            for k in keys:
                del self._entries[k]
            self._add(pod, -self._counts[pod])
            return len(keys)

    def state(self) -> dict:
        with self._lock:
            self._purge(self.clock())
            return {"in_flight": list(self._counts), "expired": self.expired, "ttl": self.ttl}
