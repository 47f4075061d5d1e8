"""The built-in names: the LLM router with each strategy as its default. Only `llm` takes a
per-request strategy from the routing-strategy header; the others are their strategy."""

from __future__ import annotations

from .router import LLMRouter


class _Fixed(LLMRouter):
    per_request_strategy = False


def _strategy(class_name: str, name: str, doc: str) -> type:
    """A class named as the module binds it (registry.builtin_name and Seldon's wrapper
    find it by that name), its docstring the strategy's line and LLMRouter's parameters."""
    cls = type(class_name, (_Fixed,), {"name": name, "default_strategy": name,
                                       "__doc__": doc + "\n\n" + LLMRouter.__doc__.split("\n\n", 1)[1]})
    cls.__module__ = __name__
    return cls


Random = _strategy("Random", "random", "LLM pods: a random pod among those serving the model.")
LeastRequest = _strategy("LeastRequest", "least-request", "LLM pods: the pod with the fewest requests in flight.")
PowerOfTwo = _strategy("PowerOfTwo", "power-of-two", "LLM pods: two random pods, the one with fewer requests in flight.")
Throughput = _strategy("Throughput", "throughput", "LLM pods: the pod with the least recent token load (2 x prompt + output tokens).")
LeastKVCache = _strategy("LeastKVCache", "least-kv-cache", "LLM pods: the pod with the lowest KV-cache usage.")
LeastLatency = _strategy("LeastLatency", "least-latency", "LLM pods: the pod with the lowest predicted queue, prefill and decode time.")
PrefixCache = _strategy("PrefixCache", "prefix-cache", "LLM pods: the pod holding the longest cached prefix of the prompt, within a load bound.")
SessionAffinity = _strategy("SessionAffinity", "session-affinity", "LLM pods: the same session key to the same pod while it is healthy.")
SLO = _strategy("SLO", "slo", "LLM pods: the cheapest pod predicted to meet the TTFT/TPOT objective at its load.")
