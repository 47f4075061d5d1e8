"""`ucb1`: route to the arm with the highest upper confidence bound (Auer et al. 2002)."""

from __future__ import annotations

import math
from typing import Optional, Union

from ...request import Request
from .._params import number
from .base import Bandit


class UCB1(Bandit):
    """UCB1: index = mean + sqrt(2 ln t / n) with t all trials so far, n the arm's trials
    (each arm is tried once first). Deterministic given the state: the propensity tag is
    1 / (number of arms tied for the highest index). c scales the exploration term."""

    name = "ucb1"

    def __init__(self, n_branches: Optional[int] = None, c: float = 1.0, seed: Optional[int] = None,
                 branch_names: Union[str, list, None] = None, discount: Optional[float] = None,
                 window: Optional[int] = None, min_share: Optional[float] = None, max_share: Optional[float] = None,
                 dedupe: int = 100_000):
        super().__init__(n_branches, branch_names, seed, discount, window, min_share, max_share, dedupe)
        self.c = number(c, "c", 0.0)
        self._best = list(range(self.n_children))

    def indices(self) -> list:
        total = sum(self.pulls)
        log_t = 2.0 * math.log(total) if total > 1 else 0.0
        return [self.mean(i) + self.c * math.sqrt(log_t / n) if n > 1e-12 else math.inf
                for i, n in enumerate(self.pulls)]

    def choose(self, request: Request) -> tuple[int, float]:
        best = self._best
        arm = best[int(self.rng.random() * len(best))] if len(best) > 1 else best[0]
        return arm, 1.0 / len(best)

    def choose_probability(self, request: Request, arm: int) -> float:
        return (arm in self._best) / len(self._best)

    def _update(self, arm, successes, trials, context) -> None:
        super()._update(arm, successes, trials, context)
        self._rebuild()

    def _rebuild(self) -> None:
        index = self.indices()  # the log term moves every arm's index: recompute all
        top = max(index)
        self._best = [i for i, x in enumerate(index) if x == top]

    def _extra_state(self) -> dict:
        return {"c": self.c, "index": [x if math.isfinite(x) else None for x in self.indices()]}
