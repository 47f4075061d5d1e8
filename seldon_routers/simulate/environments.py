"""Bandit environments: the reward every arm would give at every step, drawn up front.

`env.sample(horizon, seed, repetition)` draws one repetition's whole table with numpy from
(seed, repetition) alone, so every policy run on that repetition sees the same outcomes:
when two policies pull the same arm at the same step they get the same reward.

| environment | reward of arm k at step t | expected reward |
| --- | --- | --- |
| `Bernoulli(means)` | 1 if u[t, k] < means[k] else 0 | means[k] |
| `Gaussian(means, sigma)` | means[k] + sigma * z[t, k] | means[k] |
| `Drift(means, drifted, at)` | Bernoulli, means before step `at`, drifted from it on | per step |
| `Contextual(arms, dim)` | 1 if u[t, k] < x_t . theta_k else 0 | x_t . theta_k |

`shuffle=True` (Bernoulli, Gaussian) puts the arms in a random order per repetition, so a
policy that breaks ties towards arm 0 is not favoured when arm 0 is the best.

`Contextual`: contexts x_t ~ Dirichlet(1, ..., 1) (non-negative, summing to 1) and arm
weights theta_k ~ U[0, 1]^dim, so x_t . theta_k lies in [0, 1] with no clipping and the
linear model LinUCB assumes holds exactly. The weights (the problem instance) come from the
seed alone; each repetition redraws the contexts and the rewards. The best arm changes with
the context, so a policy that ignores it keeps a regret growing linearly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np

from ..errors import ConfigError
from ..routers._params import integer, number, positive_int

# Domain tags, so the reward draws, the policies' seeds and a problem instance drawn from
# the same --seed never share a random stream.
_REWARDS, _POLICY, _INSTANCE, _CONTEXTS, _SHUFFLE = 0, 1, 2, 3, 4


def rng_for(seed: int, repetition: int, stream: int = _REWARDS) -> np.random.Generator:
    """The generator of repetition `repetition`'s reward draws (or its contexts). Each table
    is filled row by row from its own generator, so a shorter horizon's table is a prefix
    of a longer one's."""
    return np.random.default_rng([stream, seed, repetition])


def policy_seed(seed: int, repetition: int) -> int:
    """The `seed` every policy gets in this repetition (the same for every policy)."""
    return int(np.random.SeedSequence([_POLICY, seed, repetition]).generate_state(1)[0])


@dataclass
class Stream:
    """One repetition's draws.

    rewards: (T, K), the reward arm k gives if pulled at step t.
    contexts: (T, d) feature rows, or None for a non-contextual environment.
    segments: [(start, end, means)]: stationary stretches with their expected rewards, or
    mean_table: (T, K) expected rewards per step (contextual).
    """

    rewards: np.ndarray
    contexts: Optional[np.ndarray] = None
    segments: list = field(default_factory=list)
    mean_table: Optional[np.ndarray] = None

    @property
    def horizon(self) -> int:
        return self.rewards.shape[0]

    def pseudo_regret(self, chosen: np.ndarray) -> np.ndarray:
        """Per-step regret of the arms chosen: best expected reward - chosen's expected reward."""
        chosen = np.asarray(chosen)
        if self.mean_table is not None:
            table = self.mean_table
            return table.max(axis=1) - table[np.arange(len(chosen)), chosen]
        out = np.empty(len(chosen))
        for start, end, means in self.segments:
            out[start:end] = means.max() - means[chosen[start:end]]
        return out


def _bernoulli_draws(rng: np.random.Generator, horizon: int, means) -> np.ndarray:
    """0/1 outcomes as uint8 (T x K bytes), from uniforms compared with the means."""
    u = rng.random((horizon, len(means)), dtype=np.float32)
    return (u < np.asarray(means, dtype=np.float32)).view(np.uint8)


def _check_means(means, field_name: str, unit: bool) -> np.ndarray:
    means = np.asarray(means, dtype=float)
    if means.ndim != 1 or len(means) < 2:
        raise ConfigError(f"{field_name}: need at least 2 arms, got {list(np.atleast_1d(means))}")
    if not np.all(np.isfinite(means)):
        raise ConfigError(f"{field_name}: means must be finite, got {means.tolist()}")
    if unit and (means.min() < 0 or means.max() > 1):
        raise ConfigError(f"{field_name}: Bernoulli means must lie in [0, 1], got {means.tolist()}")
    return means


def bernoulli_kl(p: float, q: float) -> float:
    """KL(Bernoulli(p) || Bernoulli(q)), with 0 ln 0 = 0."""
    def term(a, b):
        if a == 0:
            return 0.0
        if b == 0:
            return math.inf
        return a * math.log(a / b)
    return term(p, q) + term(1 - p, 1 - q)


def lai_robbins_constant(means: Sequence[float], kl) -> float:
    """C in Lai & Robbins' bound, regret ~ C ln T: sum over suboptimal arms of
    (mu* - mu_i) / KL(mu_i || mu*). An arm at infinite divergence adds nothing."""
    best = max(means)
    total = 0.0
    for mu in means:
        if mu < best:
            d = kl(mu, best)
            total += 0.0 if math.isinf(d) else (best - mu) / d
    return total


class Environment:
    """Base: `n_arms`, `sample(horizon, seed, repetition) -> Stream`, and a description."""

    n_arms: int
    contextual = False

    def sample(self, horizon: int, seed: int, repetition: int) -> Stream:
        raise NotImplementedError

    def bound_constant(self) -> Optional[float]:
        """C of the asymptotic lower bound C ln T, where one applies (stationary arms)."""
        return None

    def check(self, horizon: int) -> None:
        """Raises ConfigError when the environment cannot run for `horizon` steps."""

    def describe(self) -> str:
        raise NotImplementedError


def _fmt_means(means) -> str:
    """'0.5, 0.4 x9': runs of equal means shortened."""
    parts, i = [], 0
    while i < len(means):
        j = i
        while j + 1 < len(means) and means[j + 1] == means[i]:
            j += 1
        parts.append(f"{means[i]:g}" + (f" x{j - i + 1}" if j > i else ""))
        i = j + 1
    return ", ".join(parts)


def _arranged(means: np.ndarray, shuffle: bool, seed: int, repetition: int) -> np.ndarray:
    """The means in this repetition's order: as given, or permuted from (seed, repetition),
    so that a policy breaking ties towards low indices gains nothing from where the best
    arm sits."""
    if not shuffle:
        return means
    return means[rng_for(seed, repetition, _SHUFFLE).permutation(len(means))]


class Bernoulli(Environment):
    def __init__(self, means, shuffle: bool = False):
        self.means = _check_means(means, "--means", unit=True)
        self.n_arms = len(self.means)
        self.shuffle = shuffle

    def sample(self, horizon, seed, repetition):
        means = _arranged(self.means, self.shuffle, seed, repetition)
        rewards = _bernoulli_draws(rng_for(seed, repetition), horizon, means)
        return Stream(rewards, segments=[(0, horizon, means)])

    def bound_constant(self):
        return lai_robbins_constant(self.means, bernoulli_kl)

    def describe(self):
        order = " (in a random order per repetition)" if self.shuffle else ""
        return f"Bernoulli bandit, {self.n_arms} arms, means {_fmt_means(self.means)}{order}"


class Gaussian(Environment):
    def __init__(self, means, sigma: float = 1.0, shuffle: bool = False):
        self.means = _check_means(means, "--means", unit=False)
        self.sigma = number(sigma, "--sigma", 0.0, lo_open=True)
        self.n_arms = len(self.means)
        self.shuffle = shuffle

    def sample(self, horizon, seed, repetition):
        means = _arranged(self.means, self.shuffle, seed, repetition)
        z = rng_for(seed, repetition).standard_normal((horizon, self.n_arms), dtype=np.float32)
        rewards = (means.astype(np.float32) + np.float32(self.sigma) * z)
        return Stream(rewards, segments=[(0, horizon, means)])

    def bound_constant(self):
        # Known variance: KL(N(mu_i, s^2) || N(mu*, s^2)) = (mu* - mu_i)^2 / (2 s^2).
        s2 = self.sigma ** 2
        return lai_robbins_constant(self.means, lambda p, q: (q - p) ** 2 / (2 * s2))

    def describe(self):
        order = " (in a random order per repetition)" if self.shuffle else ""
        return (f"Gaussian bandit, {self.n_arms} arms, means {_fmt_means(self.means)}{order}, "
                f"sigma {self.sigma:g}")


class Drift(Environment):
    """Bernoulli arms whose means change once, at step `at` (0-based: steps >= at are drifted).
    The same uniforms decide the outcomes before and after, so only the means move."""

    def __init__(self, means, drifted_means, at: int):
        self.means = _check_means(means, "--means", unit=True)
        self.drifted = _check_means(drifted_means, "--drifted-means", unit=True)
        if len(self.drifted) != len(self.means):
            raise ConfigError(f"--drifted-means: {len(self.drifted)} means for {len(self.means)} arms")
        positive_int(at, "--drift-at")
        self.at = at
        self.n_arms = len(self.means)

    def check(self, horizon):
        if self.at >= horizon:
            raise ConfigError(f"--drift-at: {self.at} is not before the horizon ({horizon})")

    def sample(self, horizon, seed, repetition):
        rng = rng_for(seed, repetition)
        u = rng.random((horizon, self.n_arms), dtype=np.float32)
        rewards = np.empty(u.shape, dtype=np.uint8)
        rewards[:self.at] = u[:self.at] < self.means.astype(np.float32)
        rewards[self.at:] = u[self.at:] < self.drifted.astype(np.float32)
        return Stream(rewards, segments=[(0, self.at, self.means), (self.at, horizon, self.drifted)])

    def describe(self):
        return (f"Bernoulli bandit with drift, {self.n_arms} arms, means {_fmt_means(self.means)}, "
                f"from step {self.at}: {_fmt_means(self.drifted)}")


class Contextual(Environment):
    """Linear Bernoulli rewards: p = x_t . theta_k, x_t ~ Dirichlet(1..1), theta_k ~ U[0,1]^d."""

    contextual = True

    def __init__(self, arms: int, dim: int, seed: int = 0):
        integer(arms, "--arms (at least 2 arms)", 2)
        positive_int(dim, "--dim")
        self.n_arms, self.dim = arms, dim
        self.theta = np.random.default_rng([_INSTANCE, seed]).random((arms, dim))

    def sample(self, horizon, seed, repetition):
        contexts = rng_for(seed, repetition, _CONTEXTS).dirichlet(np.ones(self.dim), size=horizon)
        mean_table = contexts @ self.theta.T
        u = rng_for(seed, repetition).random((horizon, self.n_arms))
        rewards = (u < mean_table).view(np.uint8)
        return Stream(rewards, contexts=contexts, mean_table=mean_table)

    def describe(self):
        return (f"contextual Bernoulli bandit, {self.n_arms} arms, {self.dim} features: "
                f"p = x . theta_arm, x ~ Dirichlet(1), theta ~ U[0,1]")


def shorthand_means(arms: int, best: float, gap: float) -> list[float]:
    """Chapelle & Li's setting: arm 0 at `best`, the other arms-1 at best - gap."""
    integer(arms, "--arms (at least 2 arms)", 2)
    number(gap, "--gap", 0.0, lo_open=True)
    return [best] + [best - gap] * (arms - 1)
