"""`thompson-sampling`: route to the arm whose posterior draw is highest."""

from __future__ import annotations

import math
from collections import deque
from typing import Optional, Union

import numpy as np

from ...errors import ConfigError
from ...request import Request
from .._params import choice, number
from .base import Bandit

# Beta draws are made ahead, BLOCK routes at a time, in one numpy call (numpy charges
# about a microsecond per call, tens of nanoseconds per draw). An arm whose posterior
# changed since is "stale" and drawn afresh on each route. Every route thus draws exactly
# from the current posteriors, independently of earlier routes.
BLOCK = 32
HOT = 1  # stale arms drawn singly on each route (more: measured no faster)
# Propensities are the argmax frequencies of the last few blocks' draws (made from the
# posteriors of their time): a Monte Carlo estimate that costs nothing extra.
PROPENSITY_BLOCKS = 16


class ThompsonSampling(Bandit):
    """Thompson sampling: routes to the arm whose posterior draw is highest.

    reward_model "bernoulli" (default): Beta(alpha, beta) posteriors from prior
    (alpha, beta) = (prior_alpha, prior_beta), updated fractionally by reward*rows
    successes out of rows. "gaussian": real-valued rewards, a Normal posterior
    for each arm's mean (sample variance; prior_variance before two observations); each
    arm is tried once first.

    The propensity tag is estimated by Monte Carlo from the posteriors (the last
    BLOCK * PROPENSITY_BLOCKS draws), so it follows feedback as it arrives.
    """

    name = "thompson-sampling"

    def __init__(self, n_branches: Optional[int] = None, reward_model: str = "bernoulli",
                 prior_alpha: float = 1.0, prior_beta: float = 1.0, prior_variance: float = 1.0,
                 seed: Optional[int] = None, branch_names: Union[str, list, None] = None,
                 discount: Optional[float] = None, window: Optional[int] = None, min_share: Optional[float] = None,
                 max_share: Optional[float] = None, dedupe: int = 100_000):
        if choice(reward_model, "reward_model", ("bernoulli", "gaussian")) == "gaussian":
            self.reward_range = None
        super().__init__(n_branches, branch_names, seed, discount, window, min_share, max_share, dedupe)
        self.reward_model = reward_model
        self.prior_alpha, self.prior_beta, self.prior_variance = (
            number(value, field, 0.0, lo_open=True) for field, value in
            (("prior_alpha", prior_alpha), ("prior_beta", prior_beta), ("prior_variance", prior_variance)))
        k = self.n_children
        self.squares = [0.0] * k  # sum of reward^2 * rows (gaussian)
        self._propensity = [1.0 / k] * k
        self._wins: deque = deque(maxlen=PROPENSITY_BLOCKS)  # argmax counts of recent blocks
        self._win_total = [0] * k
        self._untried: list = []  # gaussian arms without feedback yet: tried first
        self._since_estimate = 0  # gaussian: feedbacks since the propensities were estimated
        self._posterior()

    def reseed_for_process(self) -> None:
        super().reseed_for_process()
        self._row = BLOCK  # draws made before the fork are the parent's: never replay them

    # --- posteriors --------------------------------------------------------------------

    def _posterior(self, arms=None) -> None:
        """Posterior parameters, kept current on every update so routing only draws."""
        k = self.n_children
        if arms is None:
            self._a, self._b = [self.prior_alpha] * k, [self.prior_beta] * k
            self._mu, self._sd = [0.0] * k, [1.0] * k
            self._block, self._row, self._stale = None, BLOCK, {}
            arms = range(k)
        if self.reward_model == "bernoulli":
            for i in arms:
                s = self.successes[i]
                self._a[i], self._b[i] = self.prior_alpha + s, self.prior_beta + self.pulls[i] - s
                self._stale_arm(i)
            return
        for i in arms:
            n = self.pulls[i]
            if n <= 1e-12:  # untried: tried first, as UCB1 does
                if i not in self._untried:
                    self._untried.append(i)
                self._mu[i], self._sd[i] = math.inf, 0.0
                continue
            if i in self._untried:
                self._untried.remove(i)
            mean = self.mean(i)
            var = max(self.squares[i] / n - mean * mean, 0.0) * n / (n - 1) if n > 1 else self.prior_variance
            self._mu[i], self._sd[i] = mean, math.sqrt(max(var, 1e-12) / n)

    def _stale_arm(self, arm: int) -> None:
        """The pre-drawn samples of `arm` no longer follow its posterior: it is drawn afresh
        on each route; past HOT such arms, the least recently fed back has the rest of its
        column redrawn in one call instead."""
        stale = self._stale
        stale.pop(arm, None)
        stale[arm] = None  # most recent last
        if len(stale) > HOT:
            cold = next(iter(stale))
            del stale[cold]
            row = self._row
            if row < BLOCK:
                self._block[row:, cold] = self.rng.beta(self._a[cold], self._b[cold], BLOCK - row)

    def _refill(self) -> None:
        k = self.n_children
        block = self._block = self.rng.beta(self._a, self._b, size=(BLOCK, k))
        self._row = 0
        self._stale.clear()
        wins = np.bincount(block.argmax(axis=1), minlength=k).tolist()
        total = self._win_total
        if len(self._wins) == PROPENSITY_BLOCKS:
            total = [t - w for t, w in zip(total, self._wins[0])]
        self._wins.append(wins)
        self._win_total = total = [t + w for t, w in zip(total, wins)]
        # Add-one smoothing: an arm the sampler can still choose never reads 0, which would
        # break inverse-propensity weighting downstream.
        n = BLOCK * len(self._wins) + k
        self._propensity = [(t + 1) / n for t in total]

    # --- routing -----------------------------------------------------------------------

    def choose(self, request: Request) -> tuple[int, float]:
        with self.lock:  # feedback may be changing the posteriors (Seldon's wrapper runs threads)
            if self._untried:  # gaussian: every untried arm draws +inf; pick one of them at random
                arm = self._untried[int(self.rng.random() * len(self._untried))]
                return arm, 1.0 / len(self._untried)
            if self.reward_range is None:  # gaussian
                arm = int((np.asarray(self._mu) + np.asarray(self._sd) * self.rng.standard_normal(self.n_children)).argmax())
                return arm, self._propensity[arm]
            arm = self._bernoulli_arm()
        return arm, self._propensity[arm]

    def _bernoulli_arm(self) -> int:
        """The hot path (under the lock): this route's row of the block, stale arms drawn afresh."""
        row = self._row
        if row >= BLOCK:
            self._refill()
            row = 0
        self._row = row + 1
        sample = self._block[row]
        for i in self._stale:
            sample[i] = self.rng.beta(self._a[i], self._b[i])
        return int(sample.argmax())

    def choose_probability(self, request: Request, arm: int) -> float:
        if self._untried:
            return (arm in self._untried) / len(self._untried)
        return self._propensity[arm]

    def estimate_propensities(self, draws: int = 512) -> np.ndarray:
        """P(arm has the highest draw), by Monte Carlo from the current posteriors."""
        if self.reward_model == "bernoulli":
            samples = self.rng.beta(self._a, self._b, size=(draws, self.n_children))
        else:
            samples = np.asarray(self._mu) + np.asarray(self._sd) * self.rng.standard_normal((draws, self.n_children))
        wins = np.bincount(samples.argmax(axis=1), minlength=self.n_children)
        return (wins + 1) / (draws + self.n_children)

    # --- learning ----------------------------------------------------------------------

    def _update(self, arm, successes, trials, context) -> None:
        self.pulls[arm] += trials
        self.successes[arm] += successes
        if self.reward_model == "bernoulli":  # the hot path, inlined
            self._a[arm] += successes
            self._b[arm] += trials - successes
            if arm not in self._stale:
                self._stale_arm(arm)
            return
        # successes/trials is the reward; rows share it, so each adds reward^2
        self.squares[arm] += (successes / trials) ** 2 * trials if trials else 0.0
        self._posterior((arm,))
        self._since_estimate += 1
        # Re-estimate on a geometric schedule: cheap over long runs, fresh early on.
        if self._since_estimate >= max(50, sum(self.pulls) / 20):
            self._since_estimate = 0
            self._propensity = self.estimate_propensities().tolist()

    def stats(self) -> dict:
        out = super().stats()
        if self.reward_model == "gaussian":
            out["squares"] = list(self.squares)
        return out

    def _set_stats(self, stats: dict) -> None:
        super()._set_stats(stats)
        if "squares" in stats:
            self.squares = list(stats["squares"])

    def _rebuild(self) -> None:
        self._posterior()

    def delta(self, arm, successes, trials, context) -> dict:
        out = super().delta(arm, successes, trials, context)
        if self.reward_model == "gaussian":
            out["squares"] = {arm: (successes / trials) ** 2 * trials if trials else 0.0}
        return out

    def check_state(self, state: dict) -> None:
        super().check_state(state)
        # A Gaussian sampler's sums (any real rewards) are no Beta posterior: a Bernoulli one
        # took them, as they hold every statistic it keeps, and routed from invalid Betas.
        if state.get("reward_model", "bernoulli") != self.reward_model:
            raise ConfigError(f"state.reward_model: {state.get('reward_model')!r}, this router's is "
                              f"{self.reward_model!r}")

    def _extra_state(self) -> dict:
        out = {"reward_model": self.reward_model, "propensity": list(self._propensity)}
        if self.reward_model == "bernoulli":
            out.update(alpha=list(self._a), beta=list(self._b))
        else:
            out.update(squares=list(self.squares))
        return out
