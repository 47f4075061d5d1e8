"""The gateway's Prometheus metrics, per pod and model, in the unit's registry."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

TTFT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class GatewayMetrics:
    def __init__(self, registry):
        r = registry
        self.requests = Counter("seldon_gateway_requests", "Requests, by the pod that answered (\"\" for none), "
                                "model and status.",
                                ["pod", "model", "status"], registry=r)
        self.errors = Counter("seldon_gateway_upstream_errors", "Calls to a pod that failed (retried or not), "
                              "by reason.",
                              ["pod", "reason"], registry=r)
        self.tokens = Counter("seldon_gateway_tokens", "Tokens from the pods' usage, by kind.",
                              ["pod", "model", "kind"], registry=r)
        self.ttft = Histogram("seldon_gateway_ttft_seconds", "Time to the first byte of the answer.",
                              ["pod", "model"], buckets=TTFT_BUCKETS, registry=r)
        self.duration = Histogram("seldon_gateway_request_duration_seconds", "Whole requests.", ["pod", "model"],
                                  buckets=TTFT_BUCKETS, registry=r)
        self.in_flight = Gauge("seldon_gateway_in_flight", "Requests being forwarded, by pod.", ["pod"], registry=r)
        self._children: dict = {}

    def _child(self, metric, *labels):
        key = (id(metric), labels)  # .labels() costs a lock and a dict per call: kept
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def started(self, pod: str) -> None:
        self._child(self.in_flight, pod).inc()

    def attempt_failed(self, pod: str, reason) -> None:
        """A call to a pod that got no answer to pass on (retried, or the request failed)."""
        self._child(self.in_flight, pod).dec()
        if reason:
            self._child(self.errors, pod, reason).inc()

    def unanswered(self, model: str, status: int, seconds: float) -> None:
        """A request no pod answered (the router refused it, or every attempt failed)."""
        self._child(self.requests, "", model, str(status)).inc()
        self._child(self.duration, "", model).observe(seconds)

    def ended(self, pod: str, model: str, status: int, ttft, seconds: float, usage) -> None:
        """A request a pod answered (pod started() before)."""
        self._child(self.in_flight, pod).dec()
        self._child(self.requests, pod, model, str(status)).inc()
        if ttft is not None:
            self._child(self.ttft, pod, model).observe(ttft)
        self._child(self.duration, pod, model).observe(seconds)
        if usage:
            for kind in ("prompt_tokens", "completion_tokens"):
                value = usage.get(kind)
                if isinstance(value, int) and value > 0:
                    self._child(self.tokens, pod, model, kind[:-7]).inc(value)

    def failed(self, pod: str, reason: str) -> None:
        self._child(self.errors, pod, reason).inc()
