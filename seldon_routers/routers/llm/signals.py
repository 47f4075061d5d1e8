"""The strategies that read the pods' signals: throughput, least-kv-cache, least-latency.

Each uses the pods' metrics when every candidate has a fresh sample, else the router's own
accounting, and says which in its tags (`signals: metrics | local`); the bookkeeping behind
both, and what /state shows of it, is pod_signals.py (PodSignals, which the router holds).
"""

from __future__ import annotations

from .slo import Profile
from .pod_signals import DEFAULT_PREFILL, GPU_CACHE, KV_CACHE, PROMPT_TOKENS, RUNNING, WAITING, PodSignals
from .scorers import Scorer, lower_is_better

__all__ = ["PodSignals", "Throughput", "LeastKVCache", "LeastLatency"]  # PodSignals: what the router builds


def _tag(call, source: str) -> None:
    # In a mix, one local fallback is what the tag must show.
    if source == "local" or "signals" not in call.tags:
        call.tags["signals"] = source


class Throughput(Scorer):
    """Least recent token load, AIBrix's 2 x prompt + generated tokens per second: from the
    pods' token counters when fresh, else what this router routed in the last WINDOW seconds."""

    name = "throughput"

    def score(self, call, pods):
        signals = self.router.signals
        rates = [signals.token_rate(p) for p in pods] if signals.samples(pods, PROMPT_TOKENS) else None
        if rates is None or any(r is None for r in rates):
            _tag(call, "local")
            return lower_is_better([signals.local_token_rate(p) for p in pods])
        _tag(call, "metrics")
        return lower_is_better(rates)


class LeastKVCache(Scorer):
    """Lowest KV-cache usage (vllm:kv_cache_usage_perc, or gpu_cache_usage_perc before V1);
    locally: fewest tokens (prompt + max output) in flight."""

    name = "least-kv-cache"

    def score(self, call, pods):
        signals = self.router.signals
        samples = signals.samples(pods, KV_CACHE)
        if samples is None:
            _tag(call, "local")
            tokens = signals.in_flight_tokens()
            return lower_is_better([tokens[p] for p in pods])
        _tag(call, "metrics")
        return lower_is_better([s.get(KV_CACHE, s.get(GPU_CACHE)) for s in samples])


class LeastLatency(Scorer):
    """Lowest predicted time to finish this request on each pod:
        first token: ttft(queue) from its profile, else queue x service + prompt tokens x prefill
        + max_tokens x (tpot(queue) from its profile, else the learned seconds per output token)
    queue: waiting + running when fresh (plus what was routed since the sample), else in
    flight; service and seconds per output token: EWMAs of the pod's completions."""

    name = "least-latency"

    def __init__(self, router):
        super().__init__(router)
        self.curves = [Profile.optional(pod.profile, f"pods[{i}].profile") for i, pod in enumerate(router.pods)]

    def score(self, call, pods):
        signals = self.router.signals
        samples = signals.samples(pods, RUNNING, WAITING)
        if samples is None:
            _tag(call, "local")
            queues = [call.counts[p] if call.counts else 0 for p in pods]
        else:
            _tag(call, "metrics")
            queues = [s[RUNNING] + s[WAITING] + signals.routed_since(p) for p, s in zip(pods, samples)]
        prompt, output = call.prompt_tokens, call.max_tokens
        predicted = []
        for p, queue in zip(pods, queues):
            service, tpot = signals.service(p)
            curves = self.curves[p]
            first = curves.at("ttft", queue) if curves else None
            per_token = curves.at("tpot", queue) if curves else None
            predicted.append((queue * service + prompt * DEFAULT_PREFILL if first is None else first)
                             + output * (tpot if per_token is None else per_token))
        call.tags["predicted_s"] = dict(zip(pods, predicted))  # the pick's alone once it is made
        return lower_is_better(predicted)

    def routed(self, call, pod):
        predicted = call.tags.get("predicted_s")
        if isinstance(predicted, dict):
            call.tags["predicted_s"] = round(predicted[pod], 4)
