"""The canary's parameters, read once at start-up (docs/canary.md): the two children, the
steps and checks of the rollout, stickiness, exactly-once feedback, its revision."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Optional

from ...errors import ConfigError
from .._params import child, children, duration, integer, items, number, optional, positive_int
from .._weights import StickyKey
from .analysis import Criteria
from .rollout import Steps


@dataclass(frozen=True)
class CanaryConfig:
    children: list
    stable: int
    candidate: int
    interval: float  # seconds between checks
    steps: Steps
    criteria: Criteria
    threshold: int  # failed checks that roll back
    max_insufficient_checks: int
    sticky: Optional[StickyKey]
    revision: Optional[str]
    seed: Optional[int]
    dedupe: int
    clock: Callable[[], float]
    not_enforced: dict  # what a ModelRoute document asks for that the canary does not apply
    reward_range: tuple  # (lo, hi): the rewards a feedback may carry


def read(stable, candidate, branch_names, n_branches, interval, step_weight, step_weights, max_weight, threshold,
         min_samples, max_insufficient_checks, min_reward, max_error_rate, margin, min_probability, seed,
         sticky_key, dedupe, revision, config, config_file, clock, reward_range) -> CanaryConfig:
    not_enforced = {}
    if config is not None or config_file is not None:  # a ModelRoute's spec.canary sets the rollout
        from .modelroute import from_model_route

        mapped, not_enforced = from_model_route(config, config_file, branch_names, n_branches, dict(
            stable=stable, candidate=candidate, interval=interval, step_weight=step_weight,
            step_weights=step_weights, max_weight=max_weight, max_error_rate=max_error_rate))
        stable, candidate = mapped["stable"], mapped["candidate"]
        interval, step_weight = mapped.get("interval", interval), mapped.get("step_weight", step_weight)
        max_error_rate = mapped.get("max_error_rate", max_error_rate)
    if branch_names is None and n_branches is None:
        branch_names = ["stable", "candidate"]
    names = children(n_branches, branch_names)
    if len(names) < 2:
        raise ConfigError(f"branch_names: a canary needs two children, got {names}")
    stable, candidate = child(stable, names, "stable"), child(candidate, names, "candidate")
    if stable == candidate:
        raise ConfigError(f"candidate: the same child as stable ({names[stable]!r})")
    if clock is not None and not callable(clock):
        raise ConfigError("clock: must be a callable returning POSIX seconds")
    criteria = Criteria(min_reward, max_error_rate, margin, min_probability, min_samples)
    lo, hi = rewards = _reward_range(reward_range, criteria.margin)
    if criteria.min_reward is not None and not lo <= criteria.min_reward <= hi:
        raise ConfigError(f"min_reward: {criteria.min_reward:g} is outside reward_range [{lo:g}, {hi:g}]: "
                          "a check would always fail or always pass")
    return CanaryConfig(
        names, stable, candidate, number(duration(interval, "interval"), "interval (seconds)", 0.0, lo_open=True),
        Steps(step_weight, optional(items, step_weights, "step_weights", float), max_weight),
        criteria,
        positive_int(threshold, "threshold"), integer(max_insufficient_checks, "max_insufficient_checks"),
        optional(StickyKey, sticky_key, "sticky_key"), revision, optional(integer, seed, "seed"), integer(dedupe, "dedupe"),
        clock or time.time, not_enforced, rewards)


def _reward_range(value, margin) -> tuple:
    """The rewards a feedback may carry: LO:HI, finite. Bounded always, as the bandits bound
    theirs: one reward of 3.4e38 would otherwise outweigh every other in the candidate's mean."""
    if value is None:
        return 0.0, 1.0  # success fractions, as the bandits' and margin's rewards are
    bounds = items(value, "reward_range", float)
    if len(bounds) != 2 or not all(math.isfinite(b) for b in bounds) or not bounds[0] < bounds[1]:
        raise ConfigError(f"reward_range: expected LO:HI, two finite numbers with LO < HI, got {value!r}")
    if margin is not None and not 0 <= bounds[0] < bounds[1] <= 1:
        raise ConfigError(f"reward_range: with margin, rewards are success fractions within [0, 1], got {value!r}")
    return bounds[0], bounds[1]
