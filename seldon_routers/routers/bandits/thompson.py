"""`thompson-sampling`: route to the arm whose posterior draw is highest."""

from __future__ import annotations

import math
from typing import Optional, Union

import numpy as np

from ...errors import ConfigError
from ...request import Request
from .base import Bandit

# Beta draws are made ahead, BLOCK routes at a time, in one numpy call per block (numpy
# charges microseconds per call, not per draw). An arm whose posterior changed is drawn
# afresh (singly, or its remaining column at once when many changed) until the next
# block: every route still draws exactly from the current posteriors, independently of
# earlier routes.
BLOCK = 64


class ThompsonSampling(Bandit):
    """Thompson sampling. reward_model "bernoulli" (default): Beta(alpha, beta) posteriors
    from prior (alpha, beta) = (prior_alpha, prior_beta), updated fractionally by
    reward*rows successes out of rows. "gaussian": real-valued rewards, a Normal posterior
    for each arm's mean (sample variance; prior_variance before two observations); each
    arm is tried once first.

    The propensity tag is estimated by Monte Carlo from the posteriors, refreshed as
    feedback arrives.
    """

    name = "thompson-sampling"

    def __init__(self, n_branches: Optional[int] = None, reward_model: str = "bernoulli",
                 prior_alpha: float = 1.0, prior_beta: float = 1.0, prior_variance: float = 1.0,
                 seed: Optional[int] = None, branch_names: Union[str, list, None] = None,
                 discount: Optional[float] = None, window: Optional[int] = None, min_share: Optional[float] = None,
                 max_share: Optional[float] = None, dedupe: int = 100_000):
        if reward_model not in ("bernoulli", "gaussian"):
            raise ConfigError(f"reward_model: must be bernoulli or gaussian, got {reward_model!r}")
        if reward_model == "gaussian":
            self.reward_range = None
        super().__init__(n_branches, branch_names, seed, discount, window, min_share, max_share, dedupe)
        for field, value in (("prior_alpha", prior_alpha), ("prior_beta", prior_beta),
                             ("prior_variance", prior_variance)):
            if not value > 0:
                raise ConfigError(f"{field}: must be > 0, got {value!r}")
        self.reward_model = reward_model
        self.prior_alpha, self.prior_beta, self.prior_variance = float(prior_alpha), float(prior_beta), float(prior_variance)
        self.squares = [0.0] * self.n_children  # sum of reward^2 * rows (gaussian)
        self._propensity = [1.0 / self.n_children] * self.n_children
        self._since_estimate, self._next_estimate = 0, 50
        self._posterior()

    def _posterior(self, arms=None) -> None:
        """Posterior parameters, kept current on every update so routing only draws."""
        k = self.n_children
        if arms is None:
            self._a, self._b = np.ones(k), np.ones(k)
            self._mu, self._sd = np.zeros(k), np.ones(k)
            self._block, self._row, self._stale = None, BLOCK, set()
            self._untried: list = []  # gaussian arms without feedback yet: tried first
            arms = range(k)
        for i in arms:
            n, s = self.pulls[i], self.successes[i]
            if n <= 1e-12 and i not in self._untried and self.reward_model == "gaussian":
                self._untried.append(i)
            elif n > 1e-12 and i in self._untried:
                self._untried.remove(i)
            if self.reward_model == "bernoulli":
                a, b = self.prior_alpha + s, self.prior_beta + n - s
                self._a[i], self._b[i] = a, b
                self._mu[i] = a / (a + b)
                self._sd[i] = math.sqrt(a * b / ((a + b) ** 2 * (a + b + 1)))
                self._stale.add(i)
            elif n <= 1e-12:  # untried: tried first, as UCB1 does
                self._mu[i], self._sd[i] = math.inf, 0.0
            else:
                mean = self.mean(i)
                var = max(self.squares[i] / n - mean * mean, 0.0) * n / (n - 1) if n > 1 else self.prior_variance
                self._mu[i] = mean
                self._sd[i] = math.sqrt(max(var, 1e-12) / n)

    def draw(self) -> np.ndarray:
        """One draw from each arm's current posterior."""
        row = self._row
        if row < BLOCK and not self._stale:  # the common case
            self._row = row + 1
            return self._block[row]
        if self.reward_model == "gaussian":
            with np.errstate(invalid="ignore"):  # inf + 0 * z for untried arms
                return np.where(np.isinf(self._mu), np.inf, self._mu + self._sd * self.rng.standard_normal(self.n_children))
        row = self._row
        if row >= BLOCK:
            self._block = self.rng.beta(self._a, self._b, size=(BLOCK, self.n_children))
            self._stale.clear()
            row = 0
        elif len(self._stale) <= 2:
            # Feedback usually touches one arm between routes: draw just this row's sample
            # for it; the arm stays stale, so its later rows are drawn afresh too.
            for i in self._stale:
                self._block[row, i] = self.rng.beta(self._a[i], self._b[i])
        else:
            for i in self._stale:
                self._block[row:, i] = self.rng.beta(self._a[i], self._b[i], size=BLOCK - row)
            self._stale.clear()
        self._row = row + 1
        return self._block[row]

    def choose(self, request: Request) -> tuple[int, float]:
        with self.lock:  # feedback may be rebuilding the posteriors (Seldon's wrapper runs threads)
            samples = self.draw()
            untried = self._untried
            if untried:  # gaussian: every untried arm draws +inf; pick one of them at random
                arm = untried[int(self.rng.random() * len(untried))]
                return arm, 1.0 / len(untried)
            arm = int(samples.argmax())
        return arm, self._propensity[arm]

    def choose_probability(self, request: Request, arm: int) -> float:
        if self._untried:
            return (arm in self._untried) / len(self._untried)
        return self._propensity[arm]

    def estimate_propensities(self, draws: int = 512) -> np.ndarray:
        """P(arm has the highest draw), by Monte Carlo from the current posteriors."""
        if self.reward_model == "bernoulli":
            samples = self.rng.beta(self._a, self._b, size=(draws, self.n_children))
        else:
            samples = self._mu + self._sd * self.rng.standard_normal((draws, self.n_children))
        wins = np.bincount(samples.argmax(axis=1), minlength=self.n_children)
        # Add-one smoothing: an arm the sampler can still choose never reads 0, which
        # would break inverse-propensity weighting downstream.
        return (wins + 1) / (draws + self.n_children)

    def _update(self, arm, successes, trials, context) -> None:
        super()._update(arm, successes, trials, context)
        if self.reward_model == "gaussian":
            # successes/trials is the reward; rows share it, so each adds reward^2
            self.squares[arm] += (successes / trials) ** 2 * trials if trials else 0.0
        self._posterior((arm,))
        self._since_estimate += 1
        # Re-estimate on a geometric schedule: cheap over long runs, fresh early on.
        if self._since_estimate >= self._next_estimate:
            self._since_estimate = 0
            self._next_estimate = max(50, int(sum(self.pulls) / 20))
            self._propensity = self.estimate_propensities().tolist()

    def _decay(self, factor: float) -> None:
        super()._decay(factor)
        self.squares = [x * factor for x in self.squares]
        self._posterior()

    def _extra_state(self) -> dict:
        out = {"reward_model": self.reward_model, "propensity": list(self._propensity)}
        if self.reward_model == "bernoulli":
            out.update(alpha=self._a.tolist(), beta=self._b.tolist())
        else:
            out.update(squares=list(self.squares))
        return out
