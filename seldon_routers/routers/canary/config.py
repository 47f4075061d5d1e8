"""The canary's parameters, read once at start-up (docs/canary.md): the two children, the
steps and checks of the rollout, stickiness, exactly-once feedback, its revision."""

from __future__ import annotations

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


def read(stable, candidate, branch_names, n_branches, interval, step_weight, step_weights, max_weight, threshold,
         min_samples, max_insufficient_checks, min_reward, max_error_rate, margin, min_probability, seed,
         sticky_key, dedupe, revision, config, config_file, clock) -> CanaryConfig:
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
    return CanaryConfig(
        names, stable, candidate, number(duration(interval, "interval"), "interval (seconds)", 0.0, lo_open=True),
        Steps(step_weight, optional(items, step_weights, "step_weights", float), max_weight),
        Criteria(min_reward, max_error_rate, margin, min_probability, min_samples),
        positive_int(threshold, "threshold"), integer(max_insufficient_checks, "max_insufficient_checks"),
        optional(StickyKey, sticky_key, "sticky_key"), revision, optional(integer, seed, "seed"), integer(dedupe, "dedupe"),
        clock or time.time, not_enforced)
