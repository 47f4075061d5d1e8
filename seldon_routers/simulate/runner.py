"""Run policies (routers) on an environment and record their pseudo-regret.

A policy is any router class, driven only through Seldon's public methods: for each step
`child = router.route(features, feature_names)`, then
`router.send_feedback(features, feature_names, reward, None, routing=child)`, with a
one-row request (the context row, or a 1x1 zero for a non-contextual environment). With
`batch=B` the B rewards of a batch are sent after its B routes (delayed feedback).

The simulator's own work per step is a list lookup and a comparison: each repetition's
reward table is drawn with numpy up front and handed to the loop in chunks of Python lists;
the regret is computed with numpy after the loop.
"""

from __future__ import annotations

import inspect
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence, Union

import numpy as np

from .. import params as _params
from .. import registry
from ..errors import ConfigError, RouterError, RouterFailed
from ..routers._params import positive_int
from .environments import Environment, Stream, policy_seed

CHUNK = 4096  # steps handed to the Python loop at a time (and the progress granularity)
SET_BY_SIMULATOR = ("seed",)


@dataclass
class Policy:
    """A router to simulate: `spec` is a built-in name, an import path or a class;
    `params` are its constructor parameters (strings are typed as for `--param`)."""

    spec: Union[str, type]
    params: dict = field(default_factory=dict)
    label: str = ""

    def __post_init__(self):
        if not self.label:
            self.label = self.spec if isinstance(self.spec, str) else self.spec.__name__

    def resolve(self) -> type:
        return registry.resolve(self.spec) if isinstance(self.spec, str) else self.spec

    def make(self, n_arms: int, seed: Optional[int]):
        """A fresh router over n_arms children; `n_branches` and `seed` are passed when the
        constructor takes them."""
        cls = self.resolve()
        signature = inspect.signature(cls.__init__).parameters
        takes_any = any(p.kind is p.VAR_KEYWORD for p in signature.values())
        for name in SET_BY_SIMULATOR:
            if name in self.params:
                raise ConfigError(f"policy {self.label!r}: parameter {name!r} is set by the simulator "
                                  f"(per repetition, from --seed)")
        kwargs = dict(self.params)
        if "n_branches" in kwargs:
            try:
                given = int(kwargs["n_branches"])
            except (TypeError, ValueError):
                given = None
            if given != n_arms:
                raise ConfigError(f"policy {self.label!r}: n_branches={kwargs['n_branches']} but the "
                                  f"environment has {n_arms} arms")
        elif "n_branches" in signature or takes_any:
            kwargs["n_branches"] = n_arms
        if seed is not None and ("seed" in signature or takes_any):
            kwargs["seed"] = seed
        router = _params.build(cls, kwargs)
        declared = getattr(router, "n_children", None)
        if declared is not None and declared != n_arms:
            raise ConfigError(f"policy {self.label!r}: routes over {declared} children but the "
                              f"environment has {n_arms} arms")
        if not callable(getattr(router, "route", None)):
            raise ConfigError(f"policy {self.label!r}: has no route() method")
        return router


def run_policy(router, stream: Stream, batch: int = 1,
               progress: Optional[Callable[[int], None]] = None, label: str = "") -> np.ndarray:
    """Drives `router` through the stream; returns the arm chosen at each step."""
    horizon, n_arms = stream.rewards.shape
    route = router.route
    feedback = getattr(router, "send_feedback", None) or (lambda *args, **kwargs: None)  # optional in Seldon
    contexts = stream.contexts
    zero = np.zeros((1, 1))
    names = [f"x{i}" for i in range(contexts.shape[1])] if contexts is not None else []
    chosen = []
    pick = chosen.append
    pending = []

    def bad(child):
        return RouterFailed(f"policy {label or type(router).__name__!r} routed to {child!r}; "
                            f"the simulator needs an arm in 0..{n_arms - 1}")

    for t0 in range(0, horizon, CHUNK):
        t1 = min(horizon, t0 + CHUNK)
        rows = stream.rewards[t0:t1].astype(float).tolist()
        if contexts is None:
            xs = [zero] * (t1 - t0)
        else:
            block = contexts[t0:t1]
            xs = [block[i:i + 1] for i in range(t1 - t0)]
        if batch == 1:
            for x, row in zip(xs, rows):
                child = route(x, names)
                if not 0 <= child < n_arms:
                    raise bad(child)
                feedback(x, names, row[child], None, routing=child)
                pick(child)
        else:
            for x, row in zip(xs, rows):
                child = route(x, names)
                if not 0 <= child < n_arms:
                    raise bad(child)
                pick(child)
                pending.append((x, child, row[child]))
                if len(pending) == batch:
                    for px, pchild, preward in pending:
                        feedback(px, names, preward, None, routing=pchild)
                    pending.clear()
        if progress is not None:
            progress(t1 - t0)
    for px, pchild, preward in pending:  # the last, partial batch (no later route reads it)
        feedback(px, names, preward, None, routing=pchild)
    return np.asarray(chosen, dtype=np.int64)


def checkpoints(horizon: int, dense: bool = False) -> np.ndarray:
    """Steps at which cumulative regret is reported: 10, 100, ... up to the horizon, and the
    horizon; `dense` adds ~60 log-spaced steps from 1 (for plots)."""
    points = {10 ** k for k in range(1, 20) if 10 ** k <= horizon} | {horizon}
    if dense:
        points |= set(np.unique(np.round(np.logspace(0, np.log10(horizon), 60)).astype(int)).tolist())
    return np.array(sorted(p for p in points if 1 <= p <= horizon), dtype=np.int64)


@dataclass
class Result:
    """Cumulative pseudo-regret at `steps` per policy label: an array (repetitions, steps)."""

    env: Environment
    horizon: int
    repetitions: int
    seed: int
    batch: int
    steps: np.ndarray
    regret: dict
    seconds: dict  # label -> wall time spent in the policy's runs (route + feedback + loop)
    first_repetition: int = 0

    @property
    def labels(self) -> list:
        return list(self.regret)

    def mean(self, label) -> np.ndarray:
        return self.regret[label].mean(axis=0)

    def se(self, label) -> np.ndarray:
        r = self.regret[label]
        if r.shape[0] < 2:
            return np.full(r.shape[1], np.nan)
        return r.std(axis=0, ddof=1) / np.sqrt(r.shape[0])

    def at(self, label, step: int) -> np.ndarray:
        """Per-repetition regret at `step` (one of `steps`)."""
        return self.regret[label][:, int(np.searchsorted(self.steps, step))]

    def bound(self) -> Optional[np.ndarray]:
        c = self.env.bound_constant()
        return None if c is None else c * np.log(self.steps)

    def us_per_step(self, label) -> float:
        return self.seconds[label] / (self.repetitions * self.horizon) * 1e6


def _one_run(env, policy, horizon, seed, repetition, batch, steps, stream=None, progress=None):
    if stream is None:
        stream = env.sample(horizon, seed, repetition)
    router = policy.make(env.n_arms, policy_seed(seed, repetition))
    start = time.perf_counter()
    try:
        chosen = run_policy(router, stream, batch, progress, policy.label)
    except RouterFailed:
        raise
    except Exception as exc:  # the policy's own error, named with where it happened
        message = exc.message if isinstance(exc, RouterError) else f"{type(exc).__name__}: {exc}"
        raise RouterFailed(f"policy {policy.label!r} failed in repetition {repetition}: {message}") from exc
    elapsed = time.perf_counter() - start
    cumulative = np.cumsum(stream.pseudo_regret(chosen))
    return cumulative[steps - 1], elapsed


def _task(args):  # a worker process's entry point (module level, so it pickles)
    return _one_run(*args)


def check_policies(env: Environment, policies: Sequence[Policy]) -> None:
    """Builds each policy once, so a bad name or parameter fails before any run."""
    labels = [p.label for p in policies]
    duplicated = sorted({x for x in labels if labels.count(x) > 1})
    if duplicated:
        raise ConfigError(f"policies: label(s) {', '.join(duplicated)} given twice; "
                          "name them label=policy to compare one policy under different parameters")
    for policy in policies:
        policy.make(env.n_arms, policy_seed(0, 0))


def simulate(env: Environment, policies: Sequence[Policy], horizon: int, repetitions: int,
             seed: int = 0, batch: int = 1, steps: Optional[np.ndarray] = None, jobs: int = 1,
             progress: Optional[Callable[[int], None]] = None, first_repetition: int = 0) -> Result:
    """Runs every policy on repetitions first..first+R-1 of the environment (the same
    streams for all; a repetition's stream and policy seed depend on (seed, repetition) only).

    `jobs > 1` runs (policy, repetition) pairs in that many worker processes; every run
    depends on (seed, repetition) only, so the result is the same either way.
    `progress(n)` is called with the number of steps done since its last call."""
    for flag, value in (("--horizon", horizon), ("--repetitions", repetitions), ("--batch", batch), ("--jobs", jobs)):
        positive_int(value, flag)
    if not policies:
        raise ConfigError("policies: give at least one")
    env.check(horizon)
    check_policies(env, policies)
    steps = checkpoints(horizon, dense=True) if steps is None else np.asarray(steps, dtype=np.int64)
    regret = {p.label: np.empty((repetitions, len(steps))) for p in policies}
    seconds = {p.label: 0.0 for p in policies}
    if jobs == 1:
        for i, rep in enumerate(range(first_repetition, first_repetition + repetitions)):
            stream = env.sample(horizon, seed, rep)
            for policy in policies:
                row, elapsed = _one_run(env, policy, horizon, seed, rep, batch, steps, stream, progress)
                regret[policy.label][i] = row
                seconds[policy.label] += elapsed
    else:
        import multiprocessing
        tasks = [(p, i, first_repetition + i) for i in range(repetitions) for p in policies]
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else None
        with ProcessPoolExecutor(min(jobs, len(tasks)), mp_context=multiprocessing.get_context(method)) as pool:
            futures = [(p, i, pool.submit(_task, (env, p, horizon, seed, rep, batch, steps)))
                       for p, i, rep in tasks]
            for p, i, future in futures:
                row, elapsed = future.result()
                regret[p.label][i] = row
                seconds[p.label] += elapsed
                if progress is not None:
                    progress(horizon)
    return Result(env, horizon, repetitions, seed, batch, steps, regret, seconds, first_repetition)


def default_jobs() -> int:
    return max(1, min(2, os.cpu_count() or 1))
