"""Strategies as scorers (llm-d's endpoint picker): each scores the candidate pods in
[0, 1], higher is better; a strategy is one scorer, the `llm` mix a weighted list of them,
and the router picks the pod with the highest weighted sum (ties at random).

A scorer is built once per router (`make(router)`) and called per request with the call
(the request's view: body, prompt, user, session, counts) and the candidates. It may add
tags to `call.tags` (which rule decided), and be told which pod was picked (`routed`).
"""

from __future__ import annotations

import importlib
from typing import Sequence

from ...errors import ConfigError

# name -> "module:factory", imported when a router first uses the strategy.
STRATEGIES = {
    "random": "scorers:Random",
    "least-request": "scorers:LeastRequest",
    "power-of-two": "scorers:PowerOfTwo",
    "throughput": "signals:Throughput",
    "least-kv-cache": "signals:LeastKVCache",
    "least-latency": "signals:LeastLatency",
    "prefix-cache": "prefix:PrefixCache",
    "session-affinity": "affinity:SessionAffinity",
    "slo": "slo:SLO",
}


def lower_is_better(values: Sequence[float]) -> list[float]:
    """Min-max normalised so the least loaded pod scores 1 and the most loaded 0 (all 1
    when they are equal): how every load scorer maps its signal to [0, 1]."""
    lo, hi = min(values), max(values)
    if hi <= lo:
        return [1.0] * len(values)
    span = hi - lo
    return [(hi - v) / span for v in values]


def least_loaded(call, pods: Sequence[int], rng, among=None):
    """The candidate with the fewest in flight, ties at random; `among`: only these positions."""
    counts = call.counts
    loads = counts if len(pods) == len(counts) else [counts[p] for p in pods]  # (pods are sorted)
    if among is None:
        stats = getattr(loads, "stats", None)
        lo = min(loads) if stats is None else stats[0]
        if loads.count(lo) == 1:  # (list.index and count run in C: no Python loop)
            return pods[loads.index(lo)]
        ties = [i for i, v in enumerate(loads) if v == lo]
    else:
        lo = min(loads[i] for i in among)
        ties = [i for i in among if loads[i] == lo]
    return pods[ties[0] if len(ties) == 1 else ties[int(rng.random() * len(ties))]]


class Scorer:
    name = ""
    # True for a strategy that may refuse even a lone candidate (slo: none predicted to
    # meet the objective), so the router asks it rather than taking that one pod.
    judges_alone = False

    def __init__(self, router):
        self.router = router

    def score(self, call, pods: Sequence[int]) -> list[float]:
        raise NotImplementedError

    def pick(self, call, pods: Sequence[int]):
        """The pod the scores' argmax would give (ties at random), without making them: the
        router asks when this scorer is the whole strategy (None: use the scores). Equal to
        the argmax by contract (tests/routers/llm/test_pick.py checks every built-in)."""
        return None

    def routed(self, call, pod: int) -> None:
        """After the pick: what this scorer remembers of it (the prefix index)."""

    def forget(self, pod: int) -> None:
        """The pod went down: what this scorer remembers of it is gone with it."""


class Random(Scorer):
    name = "random"

    def score(self, call, pods):
        return self.router.rng.random(len(pods)).tolist()

    def pick(self, call, pods):
        return pods[int(self.router.rng.random() * len(pods))]


class LeastRequest(Scorer):
    """Fewest requests in flight (the router's own accounting, shared through the store)."""

    name = "least-request"

    def score(self, call, pods):
        counts = call.counts
        return lower_is_better([counts[p] for p in pods])

    def pick(self, call, pods):
        return least_loaded(call, pods, self.router.rng)


class PowerOfTwo(Scorer):
    """Two candidates at random, the one with fewer in flight (ties: either)."""

    name = "power-of-two"

    def score(self, call, pods):
        if len(pods) <= 2:
            return LeastRequest.score(self, call, pods)
        a, b = self.router.rng.choice(len(pods), 2, replace=False)
        counts = call.counts
        out = [0.0] * len(pods)
        out[a] = out[b] = 0.5
        if counts[pods[a]] != counts[pods[b]]:
            out[a if counts[pods[a]] < counts[pods[b]] else b] = 1.0
        return out


def make(name: str, router) -> Scorer:
    target = STRATEGIES[name]
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(f"{__package__}.{module_name}")
    return getattr(module, attr)(router)


def parse_mix(spec: str, field: str, error=ConfigError) -> list[tuple[str, float]]:
    """`prefix-cache:3,least-request:2` (or one name) -> [(name, weight)]; an unknown name
    raises `error` (ConfigError at start-up, BadRequest for a request's header) naming the
    valid ones."""
    if not isinstance(spec, str) or not spec.strip():
        raise error(f"{field}: expected a strategy name or a mix like prefix-cache:3,least-request:2, got {spec!r}")
    out = []
    for part in spec.split(","):
        name, _, weight = part.strip().partition(":")
        name = name.strip().lower()
        if name not in STRATEGIES:
            raise error(f"{field}: unknown strategy {name!r}; valid: {', '.join(STRATEGIES)}, or a weighted "
                        "mix like prefix-cache:3,least-request:2")
        try:
            w = float(weight) if weight.strip() else 1.0
        except ValueError:
            raise error(f"{field}: weight {weight.strip()!r} of {name} is not a number") from None
        if not w > 0 or w == float("inf"):
            raise error(f"{field}: weight of {name} must be a number > 0, got {weight.strip()}")
        if any(n == name for n, _ in out):
            raise error(f"{field}: {name} given twice")
        out.append((name, w))
    return out


