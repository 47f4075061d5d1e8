"""The parameters every bandit takes (its arms, generator, drift handling, guard rails and
exactly-once window), read once at start-up; a policy's own few are read in its module."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ...errors import ConfigError
from .._params import children, fraction, integer, number, optional, positive_int


@dataclass(frozen=True)
class BanditConfig:
    arms: list  # the children's names
    seed: Optional[int]
    discount: Optional[float]  # in (0, 1]: multiplies past statistics at each update
    window: Optional[int]  # keep only the last `window` feedbacks
    min_share: float  # each arm gets at least this share of routes
    max_share: Optional[float]  # no arm gets more than this share of recent routes
    dedupe: int  # feedback puids remembered, so a duplicate is applied once


def read(n_branches, branch_names, seed, discount, window, min_share, max_share, dedupe) -> BanditConfig:
    if n_branches is None and branch_names is None:
        raise ConfigError("n_branches: required (or branch_names)")
    arms = children(n_branches, branch_names)
    k = len(arms)
    discount = optional(fraction, discount, "discount", lo_open=True)
    window = optional(positive_int, window, "window")
    if discount is not None and window is not None:
        raise ConfigError("discount: give either discount or window, not both")
    return BanditConfig(arms, optional(integer, seed, "seed"), discount, window,
                        optional(number, min_share, "min_share (at most 1/n_branches)", 0.0, 1.0 / k) or 0.0,
                        optional(number, max_share, "max_share (at least 1/n_branches)", 1.0 / k, 1.0),
                        integer(dedupe, "dedupe"))
