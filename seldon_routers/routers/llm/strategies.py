"""The built-in names: the LLM router with each strategy as its default. Only `llm` takes a
per-request strategy from the routing-strategy header; the others are their strategy."""

from __future__ import annotations

from .router import LLMRouter


class _Fixed(LLMRouter):
    per_request_strategy = False


def _strategy(name: str, doc: str) -> type:
    cls = type(name.title().replace("-", ""), (_Fixed,), {"name": name, "default_strategy": name, "__doc__":
                                                          doc + "\n\n" + LLMRouter.__doc__.split("\n\n", 1)[1]})
    cls.__module__ = __name__
    return cls


Random = _strategy("random", "LLM pods: a random pod among those serving the model.")
LeastRequest = _strategy("least-request", "LLM pods: the pod with the fewest requests in flight.")
PowerOfTwo = _strategy("power-of-two", "LLM pods: two random pods, the one with fewer requests in flight.")
Throughput = _strategy("throughput", "LLM pods: the pod with the least recent token load (2 x prompt + output tokens).")
LeastKVCache = _strategy("least-kv-cache", "LLM pods: the pod with the lowest KV-cache usage.")
LeastLatency = _strategy("least-latency", "LLM pods: the pod with the lowest predicted queue, prefill and decode time.")
PrefixCache = _strategy("prefix-cache", "LLM pods: the pod holding the longest cached prefix of the prompt, within a load bound.")
SessionAffinity = _strategy("session-affinity", "LLM pods: the same session key to the same pod while it is healthy.")
SLO = _strategy("slo", "LLM pods: the cheapest pod predicted to meet the TTFT/TPOT objective at its load.")
