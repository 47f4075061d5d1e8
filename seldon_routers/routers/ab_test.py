"""`ab-test`: static weights over n children (A/B/C... testing)."""

from __future__ import annotations

import bisect
from typing import Optional, Union

import numpy as np

from ..errors import ConfigError
from ..request import Request
from ..router import Decision, Router
from ._arms import normalise_weights, parse_list, resolve_arms


class ABTest(Router):
    """Sends each request to child i with probability weights[i].

    n_branches: number of children (default: len(weights), else 2).
    weights: relative weights, '0.5:0.3:0.2' or a JSON list (default: equal).
    ratioA: Seldon's RANDOM_ABTEST parameter: two children, A with this probability.
    seed: seeds this instance's own generator (0 is a seed like any other).
    branch_names: names of the children, 'a:b:c', shown in tags.
    """

    name = "ab-test"
    reads_features = False  # static weights: the request's data never matters

    def __init__(self, n_branches: Optional[int] = None, weights: Union[str, list, None] = None,
                 seed: Optional[int] = None, branch_names: Union[str, list, None] = None,
                 ratioA: Optional[float] = None):
        if ratioA is not None:
            if weights is not None:
                raise ConfigError("ratioA: give either ratioA or weights, not both")
            if not 0 <= ratioA <= 1:
                raise ConfigError(f"ratioA: must be within [0, 1], got {ratioA!r}")
            weights = [ratioA, 1 - ratioA]
        parsed = parse_list(weights, "weights", float) if weights is not None else None
        if n_branches is None and parsed is None and branch_names is None:
            n_branches = 2
        if n_branches is None and parsed is not None:
            n_branches = len(parsed)
        self.branch_names = resolve_arms(n_branches, branch_names)
        self.n_children = len(self.branch_names)
        if parsed is None:
            parsed = [1.0] * self.n_children
        if len(parsed) != self.n_children:
            raise ConfigError(f"weights: {len(parsed)} weights for {self.n_children} children")
        self.weights = normalise_weights(parsed)
        self._cumulative = [float(c) for c in np.cumsum(self.weights)]
        # Rounding guard: every u in [0, 1) must land on a child with weight > 0.
        last = max(i for i, w in enumerate(self.weights) if w > 0)
        self._cumulative[last:] = [1.0] * (self.n_children - last)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        # Ready-made tags per child (never mutated): the draw is the only per-request work.
        self._tags = [
            {"route": i, "branch": name, "propensity": w}
            for i, (name, w) in enumerate(zip(self.branch_names, self.weights))
        ]

    def decide(self, request: Request) -> Decision:
        child = bisect.bisect_right(self._cumulative, self.rng.random())
        return Decision(child, self._tags[child])

    def route(self, features, feature_names, **kwargs) -> int:
        return self.decide(Request(features, feature_names)).child

    def state(self) -> dict:
        return {"weights": dict(zip(self.branch_names, self.weights))}
