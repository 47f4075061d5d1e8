"""Bandit simulator: run routers on simulated environments and measure their regret.

    from seldon_routers.simulate import Bernoulli, Policy, simulate
    result = simulate(Bernoulli([0.5] + [0.4] * 9), [Policy("thompson-sampling")], horizon=10_000,
                      repetitions=10)
    result.mean("thompson-sampling")  # mean cumulative pseudo-regret at result.steps

Every policy sees the same reward draws in a repetition (drawn from the seed and the
repetition number), and is driven only through `route` and `send_feedback`, as a server
would drive it. `seldon-router simulate` is the command-line front end (docs/cli.md).
"""

from .environments import (Bernoulli, Contextual, Drift, Environment, Gaussian, Stream, bernoulli_kl,
                           lai_robbins_constant, policy_seed, shorthand_means)
from .report import table, write_csv, write_outputs, write_png
from .runner import Policy, Result, checkpoints, run_policy, simulate

__all__ = [
    "Bernoulli", "Contextual", "Drift", "Environment", "Gaussian", "Policy", "Result", "Stream",
    "bernoulli_kl", "checkpoints", "lai_robbins_constant", "policy_seed", "run_policy",
    "shorthand_means", "simulate", "table", "write_csv", "write_outputs", "write_png",
]
