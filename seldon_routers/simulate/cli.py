"""`seldon-router simulate`: from parsed arguments to a table, a CSV and a plot."""

from __future__ import annotations

import inspect
import sys

from .. import params as _params
from ..errors import ConfigError
from .environments import Bernoulli, Contextual, Drift, Environment, Gaussian, shorthand_means
from .report import header, table, write_outputs
from .runner import Policy, simulate


def _floats(text: str, flag: str) -> list:
    try:
        values = [float(v) for v in text.replace(":", ",").split(",") if v.strip()]
    except ValueError:
        raise ConfigError(f"{flag}: expected numbers separated by commas, got {text!r}") from None
    return values


def environment(args) -> Environment:
    kind = args.env
    if kind == "contextual":
        if args.means is not None:
            raise ConfigError("--means: the contextual environment draws its arms; give --arms and --dim")
        return Contextual(args.arms if args.arms is not None else 10, args.dim, seed=args.seed)
    if args.means is not None:
        if args.arms is not None or args.best is not None or args.gap is not None:
            raise ConfigError("--means: give either --means or --arms/--best/--gap, not both")
        means = _floats(args.means, "--means")
    else:
        means = shorthand_means(args.arms if args.arms is not None else 10,
                                args.best if args.best is not None else 0.5,
                                args.gap if args.gap is not None else 0.1)
        if kind in ("bernoulli", "drift") and not (0 <= means[-1] and means[0] <= 1):
            raise ConfigError(f"--best/--gap: Bernoulli means must lie in [0, 1], got best {means[0]:g} "
                              f"and the others {means[-1]:g}")
    if args.shuffle_arms and kind not in ("bernoulli", "gaussian"):
        raise ConfigError(f"--shuffle-arms: applies to the bernoulli and gaussian environments, not {kind}")
    if kind == "bernoulli":
        return Bernoulli(means, shuffle=args.shuffle_arms)
    if kind == "gaussian":
        return Gaussian(means, args.sigma, shuffle=args.shuffle_arms)
    if kind == "drift":
        if args.drifted_means is None:
            raise ConfigError("--drifted-means: the drift environment needs the means after the drift")
        at = args.drift_at if args.drift_at is not None else args.horizon // 2
        return Drift(means, _floats(args.drifted_means, "--drifted-means"), at)
    raise ConfigError(f"--env: unknown environment {kind!r}")


def _accepts(spec_policy: Policy, name: str) -> bool:
    signature = inspect.signature(spec_policy.resolve().__init__).parameters
    return name in signature or any(p.kind is p.VAR_KEYWORD for p in signature.values())


def policies(args) -> list:
    specs = []
    if args.policy:
        specs.append(args.policy)
    if args.compare:
        specs.extend(s.strip() for s in args.compare.split(",") if s.strip())
    if not specs:
        raise ConfigError("give --policy NAME or --compare NAME,NAME,...")
    out = []
    for spec in specs:
        label, sep, target = spec.partition("=")
        out.append(Policy(target.strip(), label=label.strip()) if sep else Policy(spec))
    by_label = {p.label: p for p in out}
    shared = _params.from_pairs(args.param)
    for name, value in shared.items():  # to every policy that takes it
        takers = [p for p in out if _accepts(p, name)]
        if not takers:
            raise ConfigError(f"--param {name}: no policy takes a parameter {name!r}")
        for p in takers:
            p.params[name] = value
    for item in args.policy_param:
        head, sep, value = item.partition("=")
        label, colon, name = head.rpartition(":")
        if not sep or not colon or not name.strip():
            raise ConfigError(f"--policy-param {item!r}: expected POLICY:NAME=VALUE")
        if label not in by_label:
            raise ConfigError(f"--policy-param {item!r}: no policy labelled {label!r} "
                              f"(policies: {', '.join(by_label)})")
        by_label[label].params[name.strip()] = value
    return out


def _progress(total: int, quiet: bool):
    """A tqdm bar on stderr when it is a terminal (and tqdm is installed), else nothing."""
    if quiet or not sys.stderr.isatty():
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, unit="step", unit_scale=True, file=sys.stderr,
                smoothing=0.05)


def run(args) -> int:
    env = environment(args)
    pols = policies(args)
    bar = _progress(len(pols) * args.repetitions * args.horizon, args.quiet)
    try:
        result = simulate(env, pols, args.horizon, args.repetitions, seed=args.seed, batch=args.batch,
                          jobs=args.jobs, progress=bar.update if bar is not None else None)
    finally:
        if bar is not None:
            bar.close()
    print(header(result))
    print()
    print(table(result))
    if args.out:
        for path in write_outputs(result, args.out, plot=not args.no_plot):
            print(f"wrote {path}")
    return 0
