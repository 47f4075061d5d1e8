"""One canary check as a pure function: the candidate's feedback window against the
configured criteria (mean reward, error rate and, optionally, a Bayesian comparison with
the stable child). No clock, no lock, no I/O, so it is table-tested."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Optional

from ...errors import ConfigError
from .._params import fraction, integer, number, optional, positive_int

PASSED, FAILED, INSUFFICIENT = "passed", "failed", "insufficient"


@dataclass
class Tally:
    """Feedback counted for one child: how many, the sum of their rewards, how many errors."""

    n: int = 0
    reward_sum: float = 0.0
    errors: int = 0

    def add(self, reward: float, error: bool) -> None:
        self.n += 1
        self.reward_sum += reward
        self.errors += error

    @property
    def reward_mean(self) -> Optional[float]:
        return self.reward_sum / self.n if self.n else None

    @property
    def error_rate(self) -> Optional[float]:
        return self.errors / self.n if self.n else None

    def to_json(self) -> dict:
        return {"n": self.n, "reward_sum": self.reward_sum, "errors": self.errors,
                "reward_mean": self.reward_mean, "error_rate": self.error_rate}

    @classmethod
    def from_json(cls, value, field_: str, reward_range: Optional[tuple] = None) -> "Tally":
        """What `to_json` wrote (the derived means are ignored); ConfigError naming the field."""
        if not isinstance(value, dict):
            raise ConfigError(f"{field_}: expected an object with n, reward_sum, errors, got {value!r}")
        n, errors = integer(value.get("n"), f"{field_}.n"), integer(value.get("errors"), f"{field_}.errors")
        reward_sum = number(value.get("reward_sum"), f"{field_}.reward_sum")
        if errors > n:
            raise ConfigError(f"{field_}.errors: {errors} errors in {n} feedbacks")
        if reward_range is not None:  # n rewards within [lo, hi] sum to within [n lo, n hi]
            lo, hi = reward_range[0] * n, reward_range[1] * n
            slack = 1e-9 * max(1.0, abs(lo), abs(hi))
            if not lo - slack <= reward_sum <= hi + slack:
                raise ConfigError(f"{field_}.reward_sum: {reward_sum:g} for {n} rewards within reward_range "
                                  f"[{reward_range[0]:g}, {reward_range[1]:g}]")
        return cls(n, float(reward_sum), errors)


@dataclass(frozen=True)
class Criteria:
    """What a check requires of the candidate; validated at construction (ConfigError
    naming the parameter). At least one of min_reward, max_error_rate, margin is set."""

    min_reward: Optional[float] = None
    max_error_rate: Optional[float] = None
    margin: Optional[float] = None
    min_probability: float = 0.95
    min_samples: int = 20

    def __post_init__(self):
        set_ = object.__setattr__  # frozen: normalise the validated values in place
        set_(self, "min_reward", optional(number, self.min_reward, "min_reward"))
        set_(self, "max_error_rate", optional(fraction, self.max_error_rate, "max_error_rate"))
        set_(self, "margin", optional(fraction, self.margin, "margin", hi_open=True))
        set_(self, "min_probability", fraction(self.min_probability, "min_probability", lo_open=True, hi_open=True))
        set_(self, "min_samples", positive_int(self.min_samples, "min_samples"))
        if self.min_reward is None and self.max_error_rate is None and self.margin is None:
            raise ConfigError("min_reward: a canary must check something: set min_reward, max_error_rate "
                              "or margin (or several)")
        if self.margin is not None:  # at start-up, not at the first check an interval later
            try:
                importlib.import_module("scipy.stats")  # the `canary` extra
            except ImportError:
                raise ConfigError("margin: the comparison with the stable child needs scipy: "
                                  "pip install 'seldon-routers[canary]'") from None


@dataclass
class Analysis:
    """The outcome of one check: passed, failed or insufficient, and why."""

    result: str
    reasons: list = field(default_factory=list)
    metrics: dict = field(default_factory=dict)
    probability: Optional[float] = None

    def to_json(self) -> dict:
        return {"result": self.result, "reasons": list(self.reasons), "metrics": dict(self.metrics),
                "probability": self.probability}


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def analyse(window: Tally, baseline: Tally, criteria: Criteria) -> Analysis:
    """Judge the candidate's window (and, with a margin, the stable baseline) against the
    criteria. Too few samples on either side compared is INSUFFICIENT, not judged."""
    metrics = {"n": window.n, "reward_mean": window.reward_mean, "error_rate": window.error_rate}
    if criteria.margin is not None:
        metrics.update(stable_n=baseline.n, stable_reward_mean=baseline.reward_mean)
    short = [f"{who}: {tally.n} feedbacks, min_samples is {criteria.min_samples}"
             for who, tally in (("candidate", window), ("stable", baseline))
             if tally.n < criteria.min_samples and (who == "candidate" or criteria.margin is not None)]
    if short:
        return Analysis(INSUFFICIENT, short, metrics)
    held, failed = [], []
    if criteria.min_reward is not None:
        ok = window.reward_mean >= criteria.min_reward
        (held if ok else failed).append(
            f"reward_mean {_fmt(window.reward_mean)} {'>=' if ok else '<'} min_reward {_fmt(criteria.min_reward)}")
    if criteria.max_error_rate is not None:
        ok = window.error_rate <= criteria.max_error_rate
        (held if ok else failed).append(f"error_rate {_fmt(window.error_rate)} {'<=' if ok else '>'} "
                                        f"max_error_rate {_fmt(criteria.max_error_rate)}")
    probability = None
    if criteria.margin is not None:
        probability = not_worse_probability(window.reward_sum, window.n - window.reward_sum, baseline.reward_sum,
                                            baseline.n - baseline.reward_sum, criteria.margin)
        ok = probability >= criteria.min_probability
        (held if ok else failed).append(
            f"P(candidate > stable - {_fmt(criteria.margin)}) {probability:.4f} {'>=' if ok else '<'} "
            f"min_probability {_fmt(criteria.min_probability)}")
    return Analysis(FAILED if failed else PASSED, failed or held, metrics, probability)


def not_worse_probability(successes: float, failures: float, stable_successes: float, stable_failures: float,
                          margin: float, points: int = 8192) -> float:
    """P(p_candidate > p_stable - margin) with p ~ Beta(1 + successes, 1 + failures) for
    each child (uniform priors; fractional counts allowed).

    Integrated over the stable posterior by its quantiles, E[sf_candidate(p_stable - margin)]
    with p_stable = ppf_stable(u) at `points` midpoints u: exact for any posterior however
    peaked (a fixed grid over [0, 1] misses a narrow one), with an error below 1/points."""
    import numpy as np
    from scipy.stats import beta  # the `canary` extra; needed only with a margin

    u = (np.arange(points) + 0.5) / points
    stable = beta.ppf(u, 1.0 + stable_successes, 1.0 + stable_failures)
    tail = beta.sf(stable - margin, 1.0 + successes, 1.0 + failures)
    return float(np.clip(tail.mean(), 0.0, 1.0))
