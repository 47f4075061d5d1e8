"""`epsilon-greedy`: the best arm so far, except a share epsilon of routes explores."""

from __future__ import annotations

from typing import Optional, Union

from ...request import Request
from .._params import fraction
from .base import Bandit


class EpsilonGreedy(Bandit):
    """Routes to the arm with the best observed mean reward; with probability epsilon to
    an arm drawn uniformly from ALL arms (Seldon's explored only the others, and failed
    with one branch). Ties break at random.

    epsilon: exploration share (default 0.1). epsilon_decay: multiplies epsilon after each
    route (1 = constant); epsilon_min: the floor it decays to.
    """

    name = "epsilon-greedy"

    def __init__(self, n_branches: Optional[int] = None, epsilon: float = 0.1, epsilon_decay: float = 1.0,
                 epsilon_min: float = 0.0, seed: Optional[int] = None, branch_names: Union[str, list, None] = None,
                 discount: Optional[float] = None, window: Optional[int] = None, min_share: Optional[float] = None,
                 max_share: Optional[float] = None, dedupe: int = 100_000):
        super().__init__(n_branches, branch_names, seed, discount, window, min_share, max_share, dedupe)
        self.epsilon, self.epsilon_min = fraction(epsilon, "epsilon"), fraction(epsilon_min, "epsilon_min")
        self.epsilon_decay = fraction(epsilon_decay, "epsilon_decay", lo_open=True)
        self._greedy = list(range(self.n_children))  # arms tied for the best mean, kept current
        self._means = [0.0] * self.n_children
        self._best = 0.0

    def choose(self, request: Request) -> tuple[int, float]:
        k, eps, greedy = self.n_children, self.epsilon, self._greedy
        # One uniform draw decides both: below eps, u / eps is itself uniform on [0, 1).
        u = self.rng.random()
        if u < eps:
            arm = min(int(u / eps * k), k - 1)
        else:
            arm = greedy[min(int((u - eps) / (1 - eps) * len(greedy)), len(greedy) - 1)] if len(greedy) > 1 else greedy[0]
        if self.epsilon_decay < 1:
            self.epsilon = max(self.epsilon_min, eps * self.epsilon_decay)
        return arm, self._probability(arm, eps, greedy)

    def _probability(self, arm: int, eps: float, greedy: list) -> float:
        """Exact: (1 - eps) / |ties| for a tied-best arm, plus eps / k for every arm."""
        return (1 - eps) * (arm in greedy) / len(greedy) + eps / self.n_children

    def choose_probability(self, request: Request, arm: int) -> float:
        return self._probability(arm, self.epsilon, self._greedy)

    def _update(self, arm, successes, trials, context) -> None:
        super()._update(arm, successes, trials, context)
        means = self._means
        new = means[arm] = self.mean(arm)
        # Only this arm's mean moved: adjust the tied-best set, a full scan only when the
        # sole best arm fell. Readers see a new list or the old one, never a half-made one.
        greedy, best = self._greedy, self._best
        if new > best:
            self._greedy, self._best = [arm], new
        elif new == best:
            if arm not in greedy:
                self._greedy = greedy + [arm]
        elif arm in greedy:
            if len(greedy) > 1:
                self._greedy = [i for i in greedy if i != arm]
            else:
                self._best = max(means)
                self._greedy = [i for i, m in enumerate(means) if m == self._best]

    def _rebuild(self) -> None:
        means = self._means = self.means()
        self._best = max(means)
        self._greedy = [i for i, m in enumerate(means) if m == self._best]

    def _extra_state(self) -> dict:
        return {"epsilon": self.epsilon, "means": list(self._means)}

    def load_state(self, state: dict) -> None:
        super().load_state(state)
        if isinstance(state.get("epsilon"), (int, float)) and 0 <= state["epsilon"] <= 1:
            self.epsilon = float(state["epsilon"])  # where its decay had got to
