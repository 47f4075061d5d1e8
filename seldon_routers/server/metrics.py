"""Prometheus metrics for one router unit, in a registry of its own (no global state).

Under `--workers N` each worker runs in prometheus_client's multiprocess mode
($PROMETHEUS_MULTIPROC_DIR, set by the supervisor): the values live in files there and
the supervisor serves them all, counters and histograms summed. A gauge says how it
combines across the live workers (its multiprocess_mode, ignored in one process)."""

from __future__ import annotations

import math
import re

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Summary

from ..errors import RouterFailed, quote

_CUSTOM_KINDS = {"COUNTER", "GAUGE", "TIMER"}
# Workers: a router's own gauge shows the value last set by any live worker (prometheus_client
# >= 0.18; older ones show each worker's value, labelled by pid).
_LAST_SET = "livemostrecent" if "livemostrecent" in getattr(Gauge, "_MULTIPROC_MODES", ()) else "liveall"


class Metrics:
    def __init__(self):
        self.registry = CollectorRegistry()
        r = self.registry
        self._routes = Counter("seldon_router_routes", "Route decisions, by child.", ["child"], registry=r)
        self._feedback = Counter("seldon_router_feedback", "Feedback applied, by child.", ["child"], registry=r)
        # A summary, not a counter: rewards may be negative (Gaussian bandits, lin-ucb, routers
        # that do not learn), and a counter refuses to go down. _sum and _count by child.
        self._reward = Summary("seldon_router_reward", "Rewards applied, by child.", ["child"], registry=r)
        self._errors = Counter("seldon_router_errors", "Rejected or failed calls.",
                               ["endpoint", "code"], registry=r)
        self._seconds = Histogram("seldon_router_request_seconds", "Time in the dataplane per call.",
                                  ["endpoint", "transport"], registry=r,
                                  buckets=(1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 5e-3, 0.025, 0.1, 1))
        # Workers: 0 if any worker cannot reach the store; the feedbacks buffered by all of them.
        self._store_up = Gauge("seldon_router_state_store_up", "1 while the state store is reachable.", registry=r,
                               multiprocess_mode="livemin")
        self._buffered = Gauge("seldon_router_state_buffered", "Feedbacks applied here, not yet in the state store.",
                               registry=r, multiprocess_mode="livesum")
        self._refused = Counter("seldon_router_state_refused", "Feedbacks refused: store unreachable, buffer full.",
                                registry=r)
        self._persistence = None  # made by the first file snapshot: no other store persists to a disk
        self._sync = Histogram("seldon_router_state_sync_seconds", "One sync with the state store.", registry=r,
                               buckets=(2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.1, 1))
        self._cache: dict = {}
        self._custom: dict = {}

    def histogram(self, name: str, documentation: str, buckets) -> Histogram:
        """A router's own histogram in this unit's registry (see Router.register_metrics)."""
        return Histogram(name, documentation, registry=self.registry, buckets=buckets)

    def _child(self, metric, child: int):
        key = (id(metric), child)
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = metric.labels(child=str(child))
        return found

    def routed(self, child: int) -> None:
        self._child(self._routes, child).inc()

    def fed_back(self, child, reward, n_children=None) -> None:
        """One applied feedback for `child` (None: the response named none, which the executor
        reads as -1), with its reward (None: it had none). Labels come from a bounded set: with
        n_children known, the server refused any routing outside -2..n_children-1; without,
        a child this router never routed to is counted as "other"."""
        if child is None:
            label = -1
        elif child in (-1, -2) or (0 <= child < n_children if n_children is not None
                                   else (id(self._routes), child) in self._cache):  # routed to it
            label = child
        else:
            label = "other"
        self._child(self._feedback, label).inc()
        if reward is not None:
            self._child(self._reward, label).observe(reward)

    def state_synced(self, seconds, buffered: int, up: bool) -> None:
        if seconds is not None:
            self._sync.observe(seconds)
        self._buffered.set(buffered)
        self._store_up.set(1 if up else 0)

    def state_persisted(self, healthy: bool) -> None:
        """A file snapshot written (or unchanged) or failed: 0 while the disk refuses it."""
        if self._persistence is None:
            self._persistence = Gauge("seldon_router_state_persistence_healthy",
                                      "1 while state snapshots are written; 0 while they fail (disk full, "
                                      "read-only).", registry=self.registry, multiprocess_mode="livemin")
        self._persistence.set(1 if healthy else 0)

    def state_refused(self) -> None:
        self._refused.inc()

    def failed(self, endpoint: str, code: int) -> None:
        self._errors.labels(endpoint=endpoint, code=str(code)).inc()

    def timer(self, endpoint: str, transport: str):
        key = (endpoint, transport)
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = self._seconds.labels(endpoint=endpoint, transport=transport)
        return found

    def custom(self, items) -> list:
        """Validates a router's metrics() (Seldon's format) and records it; returns the list."""
        if not isinstance(items, (list, tuple)):
            raise RouterFailed(f"metrics() must return a list, got {type(items).__name__}")
        for m in items:
            if not isinstance(m, dict) or m.get("type") not in _CUSTOM_KINDS or "key" not in m \
                    or not isinstance(m.get("value"), (int, float)) or isinstance(m.get("value"), bool):
                raise RouterFailed(f"metrics(): each item needs type COUNTER|GAUGE|TIMER, key and a "
                                   f"numeric value, got {quote(m)}")
            if m["type"] == "COUNTER" and not (m["value"] >= 0 and math.isfinite(m["value"])):
                # prometheus_client raises ValueError on a negative increment: a 500 naming nothing
                raise RouterFailed(f"metrics(): COUNTER {quote(m['key'])} must add a finite amount >= 0, "
                                   f"got {quote(m['value'])}")
            name = "seldon_router_custom_" + re.sub(r"[^a-zA-Z0-9_]", "_", str(m["key"]))
            metric = self._custom.get(name)
            if metric is not None and metric[0] != m["type"]:
                raise RouterFailed(f"metrics(): key {quote(m['key'])} changed type to {m['type']}")
            metric = metric and metric[1]
            if metric is None:
                kind = {"COUNTER": Counter, "GAUGE": Gauge, "TIMER": Histogram}[m["type"]]
                extra = {"multiprocess_mode": _LAST_SET} if kind is Gauge else {}
                try:
                    metric = kind(name, f"Custom metric {m['key']} from the router.", registry=self.registry,
                                  **extra)
                except ValueError as exc:  # a name taken: "a" (a COUNTER's a_total) and "a_total"
                    raise RouterFailed(f"metrics(): key {quote(m['key'])}: {exc}") from None
                self._custom[name] = (m["type"], metric)
            if m["type"] == "COUNTER":
                metric.inc(m["value"])
            elif m["type"] == "GAUGE":
                metric.set(m["value"])
            else:
                metric.observe(m["value"] / 1000.0)  # Seldon's TIMER values are milliseconds
        return list(items)
