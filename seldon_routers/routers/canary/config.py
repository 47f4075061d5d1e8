"""The canary's parameters, read once at start-up (docs/canary.md): the two children, the
steps and checks of the rollout, stickiness, exactly-once feedback, its revision."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Optional

from ...errors import ConfigError
from .._params import child, children, duration, integer, items, optional, positive_int
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


def read(stable, candidate, branch_names, n_branches, interval, step_weight, step_weights, max_weight, threshold,
         min_samples, max_insufficient_checks, min_reward, max_error_rate, margin, min_probability, seed,
         sticky_key, dedupe, revision, clock) -> CanaryConfig:
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
    return CanaryConfig(
        names, stable, candidate, duration(interval, "interval"),
        Steps(step_weight, optional(items, step_weights, "step_weights", float), max_weight),
        Criteria(min_reward, max_error_rate, margin, min_probability, min_samples),
        positive_int(threshold, "threshold"), integer(max_insufficient_checks, "max_insufficient_checks"),
        optional(StickyKey, sticky_key, "sticky_key"), revision, optional(integer, seed, "seed"), integer(dedupe, "dedupe"),
        clock or time.time)
