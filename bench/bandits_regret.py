#!/usr/bin/env python3
"""Regret of the bandit routers in Chapelle & Li's setting, against the theory and MABWiser.

Chapelle & Li (2011), "An Empirical Evaluation of Thompson Sampling", figure 1: 10 Bernoulli
arms, the best at 0.5, the other nine at 0.4 (gap 0.1). Lai & Robbins' asymptotic lower bound
is C ln T with C = sum over the nine of 0.1 / KL(0.4 || 0.5) = 44.70; Chapelle & Li found
Thompson sampling's regret below it at finite T and growing with slope C in ln T.

Targets (printed as PASS/FAIL):
  * thompson-sampling: mean regret at T = 10^5 (>= 20 seeds) at most 0.7 C ln T (= 360.2);
  * thompson-sampling: slope (R(10^6) - R(10^5)) / ln 10 within 20% of C, per seed, then
    averaged over the --long-seeds runs to 10^6 (20 by default; fewer to save time). The
    first 10^5 steps of a 10^6 run are exactly the 10^5 run of its seed, so they count at
    10^5 too; --seeds beyond --long-seeds run to 10^5 only.
ucb1 and epsilon-greedy are reported beside it, and MABWiser's Thompson sampling, UCB1 and
epsilon-greedy (its own defaults, epsilon 0.1, UCB1 alpha 1) are run on the SAME reward
streams through the same loop (route = predict(), feedback = partial_fit()), on the first
--mabwiser-seeds seeds (MABWiser spends 150-250 us a step). MABWiser's UCB1 gives an
untried arm an index of 0, not infinity, so the adapter first tries each arm once, as
textbook UCB1 (and our ucb1) does. The best arm's position is drawn per seed
(`shuffle=True`): MABWiser breaks ties towards the first arm, which would otherwise be the
best one.

    python bench/bandits_regret.py              # ~6 minutes on 2 idle cores
    python bench/bandits_regret.py --quick      # ~30 s: small horizons, indicative only

Needs the bench extra: pip install -e '.[bench]'. Writes a JSON summary and a PNG under
bench/results/ (or --out).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import numpy as np
from progress_bar import Progress

from seldon_routers.simulate import Bernoulli, Policy, checkpoints, simulate
from seldon_routers.simulate.runner import default_jobs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# --- MABWiser, driven like a router -------------------------------------------------------

class _Mabwiser:
    """route() = MAB.predict(), send_feedback() = MAB.partial_fit([arm], [reward])."""

    try_each_arm_first = False

    def __init__(self, n_branches: int, seed: int):
        from mabwiser.mab import MAB, LearningPolicy
        self.arms = list(range(n_branches))
        self.mab = MAB(self.arms, self.learning_policy(LearningPolicy), seed=seed % (2 ** 31))
        self.mab.fit(np.array([], dtype=int), np.array([], dtype=float))  # no history
        self.untried = list(self.arms) if self.try_each_arm_first else []

    def route(self, features, feature_names):
        if self.untried:
            return self.untried[0]
        return self.mab.predict()

    def send_feedback(self, features, feature_names, reward, truth, routing=None):
        if self.untried and routing == self.untried[0]:
            self.untried.pop(0)
        self.mab.partial_fit([routing], [reward])


class MabwiserThompson(_Mabwiser):
    @staticmethod
    def learning_policy(lp):
        return lp.ThompsonSampling()


class MabwiserUCB1(_Mabwiser):
    try_each_arm_first = True

    @staticmethod
    def learning_policy(lp):
        return lp.UCB1(alpha=1)


class MabwiserEpsilonGreedy(_Mabwiser):
    @staticmethod
    def learning_policy(lp):
        return lp.EpsilonGreedy(epsilon=0.1)


# --- helpers ------------------------------------------------------------------------------

def mean_se(values) -> tuple[float, float]:
    values = np.asarray(values, dtype=float)
    se = values.std(ddof=1) / math.sqrt(len(values)) if len(values) > 1 else float("nan")
    return float(values.mean()), float(se)


def pm(values) -> str:
    m, se = mean_se(values)
    return f"{m:.1f} ± {se:.1f}" if not math.isnan(se) else f"{m:.1f}"


def power(t: int) -> str:
    k = round(math.log10(t))
    return f"10^{k}" if 10 ** k == t else str(t)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20, help="repetitions at --horizon (default 20)")
    ap.add_argument("--horizon", type=int, default=100_000, help="default 10^5")
    ap.add_argument("--long-horizon", type=int, default=1_000_000, help="for the slope (default 10^6)")
    ap.add_argument("--long-seeds", type=int, default=20, help="repetitions at --long-horizon (default 20)")
    ap.add_argument("--mabwiser-seeds", type=int, default=5, help="repetitions of MABWiser's policies "
                                                                   "(the first ones; default 5; 0: skip)")
    ap.add_argument("--seed", type=int, default=0, help="base seed of the reward streams (default 0)")
    ap.add_argument("--jobs", type=int, default=default_jobs(), help="worker processes (default: up to 2)")
    ap.add_argument("--quick", action="store_true",
                    help="10^4 and 10^5 steps, 5 and 3 seeds, 2 for MABWiser: a smoke run, not the targets")
    # ~15 us a step for thompson-sampling, ~170-260 us for MABWiser's policies.
    ap.add_argument("--out", default=None, help="folder for the JSON and PNG (default bench/results/)")
    args = ap.parse_args(argv)
    if args.quick:
        args.seeds, args.horizon, args.long_horizon, args.long_seeds = 5, 10_000, 100_000, 3
        args.mabwiser_seeds = min(args.mabwiser_seeds, 2)
    h, lh = args.horizon, args.long_horizon
    if not (lh > h >= 10 and args.seeds >= 2 and args.long_seeds >= 2):
        ap.error("need --long-horizon > --horizon >= 10 and at least 2 seeds of each")
    if args.mabwiser_seeds:
        try:
            import mabwiser  # noqa: F401
        except ImportError:
            ap.error("MABWiser is not installed: pip install -e '.[bench]' (or --mabwiser-seeds 0)")

    env = Bernoulli([0.5] + [0.4] * 9, shuffle=True)
    C = env.bound_constant()
    steps = np.union1d(checkpoints(h, dense=True), checkpoints(lh, dense=True))
    short_steps = steps[steps <= h]
    ts, ours = Policy("thompson-sampling"), [Policy("ucb1"), Policy("epsilon-greedy")]
    mw = [Policy(MabwiserThompson, label="mabwiser-thompson"), Policy(MabwiserUCB1, label="mabwiser-ucb1"),
          Policy(MabwiserEpsilonGreedy, label="mabwiser-epsilon-greedy")]
    extra_ts = max(0, args.seeds - args.long_seeds)
    total = (args.long_seeds * lh + extra_ts * h + 2 * args.seeds * h
             + (3 * args.mabwiser_seeds * h if args.mabwiser_seeds else 0))
    print(f"Chapelle & Li: {env.describe()}; C = {C:.2f}; seed {args.seed}; {args.jobs} worker(s)")
    print(f"runs: thompson-sampling {args.long_seeds} seeds x {power(lh)} + {extra_ts} x {power(h)}; "
          f"ucb1, epsilon-greedy {args.seeds} x {power(h)}; MABWiser {args.mabwiser_seeds} x {power(h)} each "
          f"({total / 1e6:.1f} M steps)", flush=True)
    progress = Progress(total, unit="step")
    started = time.perf_counter()
    timings = {}
    try:
        t0 = time.perf_counter()
        long_ts = simulate(env, [ts], lh, args.long_seeds, seed=args.seed, steps=steps, jobs=args.jobs,
                           progress=progress)
        timings["thompson-sampling long"] = time.perf_counter() - t0
        regret = {}  # label -> (repetitions, len(short_steps)) at the short horizon's steps
        regret["thompson-sampling"] = long_ts.regret[ts.label][:, :len(short_steps)]
        us = {"thompson-sampling": long_ts.us_per_step(ts.label)}
        if extra_ts:
            more = simulate(env, [ts], h, extra_ts, seed=args.seed, steps=short_steps, jobs=args.jobs,
                            progress=progress, first_repetition=args.long_seeds)
            regret["thompson-sampling"] = np.vstack([regret["thompson-sampling"], more.regret[ts.label]])

        def run_short(name, policies, seeds):
            """Runs policies to the short horizon, recording their regret, speed and time."""
            t0 = time.perf_counter()
            result = simulate(env, policies, h, seeds, seed=args.seed, steps=short_steps, jobs=args.jobs,
                              progress=progress)
            timings[name] = time.perf_counter() - t0
            for p in policies:
                regret[p.label], us[p.label] = result.regret[p.label], result.us_per_step(p.label)

        run_short("ucb1, epsilon-greedy", ours, args.seeds)
        if args.mabwiser_seeds:
            run_short("mabwiser", mw, args.mabwiser_seeds)
    finally:
        progress.close()
    elapsed = time.perf_counter() - started

    # --- the table -----------------------------------------------------------------------
    shown = [s for s in checkpoints(h) if s >= 100]
    col = {s: int(np.searchsorted(short_steps, s)) for s in shown}
    lcol = {s: int(np.searchsorted(steps, s)) for s in checkpoints(lh) if s > h}
    head = ["policy", "seeds"] + [f"T={power(s)}" for s in shown] + [f"T={power(s)}" for s in lcol] + ["us/step"]
    rows = []
    for label, r in regret.items():
        cells = [label, str(r.shape[0])] + [pm(r[:, col[s]]) for s in shown]
        if label == "thompson-sampling":
            cells += [pm(long_ts.regret[ts.label][:, lcol[s]]) + f" (n={args.long_seeds})" for s in lcol]
        else:
            cells += ["" for _ in lcol]
        rows.append(cells + [f"{us[label]:.1f}"])
    rows.append(["Lai-Robbins C ln T", ""] + [f"{C * math.log(s):.1f}" for s in shown]
                + [f"{C * math.log(s):.1f}" for s in lcol] + [""])
    widths = [max(len(row[j]) for row in [head] + rows) for j in range(len(head))]
    line = lambda cells: "  ".join(c.ljust(w) if j == 0 else c.rjust(w)  # noqa: E731
                                   for j, (c, w) in enumerate(zip(cells, widths)))
    print()
    print("cumulative pseudo-regret, mean ± standard error over seeds")
    print(line(head))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print(line(row))

    if args.mabwiser_seeds:
        n = args.mabwiser_seeds
        print(f"\nsame {n} streams (seeds 0..{n - 1}), T={power(h)}: ours vs MABWiser, and the paired difference")
        for ours_label, ref_label in (("thompson-sampling", "mabwiser-thompson"), ("ucb1", "mabwiser-ucb1"),
                                      ("epsilon-greedy", "mabwiser-epsilon-greedy")):
            a, b = regret[ours_label][:n, -1], regret[ref_label][:, -1]
            print(f"  {ours_label:<16} {pm(a):>16}   {ref_label:<24} {pm(b):>16}   ours - MABWiser {pm(a - b):>16}"
                  f"   speed {us[ref_label] / us[ours_label]:.1f}x")

    # --- targets -------------------------------------------------------------------------
    ts_h = regret["thompson-sampling"][:, -1]
    m, se = mean_se(ts_h)
    limit = 0.7 * C * math.log(h)
    ok1 = m <= limit
    note = "" if not args.quick else "  [--quick: not the target's horizon]"
    print()
    print(f"{'PASS' if ok1 else 'FAIL'}  thompson-sampling regret at T={power(h)} over {len(ts_h)} seeds: "
          f"{m:.1f} ± {se:.1f} <= 0.7 C ln T = {limit:.1f}{note}")
    r_h = long_ts.regret[ts.label][:, int(np.searchsorted(steps, h))]
    r_lh = long_ts.regret[ts.label][:, -1]
    slopes = (r_lh - r_h) / math.log(lh / h)
    fewer = f" (fewer than the {len(ts_h)} at {power(h)}, for time)" if len(slopes) < len(ts_h) else ""
    sm, sse = mean_se(slopes)
    ok2 = abs(sm - C) <= 0.2 * C
    print(f"{'PASS' if ok2 else 'FAIL'}  thompson-sampling slope (R({power(lh)}) - R({power(h)})) / ln({lh // h}) over "
          f"{len(slopes)} seeds{fewer}: {sm:.1f} ± {sse:.1f} vs C = {C:.2f}: "
          f"{(sm - C) / C:+.1%} (target within ±20%){note}")
    print(f"\n{elapsed:.0f} s in all ({', '.join(f'{k} {v:.0f} s' for k, v in timings.items())})")

    # --- files ---------------------------------------------------------------------------
    out = args.out or os.path.join(ROOT, "bench", "results")
    os.makedirs(out, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    summary = {
        "setting": {"means": env.means.tolist(), "C": C, "seed": args.seed, "horizon": h, "long_horizon": lh,
                    "seeds": args.seeds, "long_seeds": args.long_seeds, "mabwiser_seeds": args.mabwiser_seeds,
                    "jobs": args.jobs, "quick": args.quick},
        "regret_at_horizon": {k: dict(zip(("mean", "se"), mean_se(v[:, -1])), n=int(v.shape[0]))
                              for k, v in regret.items()},
        "us_per_step": us,
        "thompson_long": {"regret_at_long_horizon": dict(zip(("mean", "se"), mean_se(r_lh))),
                          "slope": {"mean": sm, "se": sse}, "n": int(len(slopes))},
        "targets": {"ts_regret_le_0.7_C_lnT": {"value": m, "limit": limit, "pass": bool(ok1)},
                    "ts_slope_within_20pct_of_C": {"value": sm, "C": C, "pass": bool(ok2)}},
        "seconds": elapsed,
    }
    json_path = os.path.join(out, f"bandits-regret-{stamp}.json")
    with open(json_path, "w") as f:
        json.dump(summary, f, indent=1)
    png_path = os.path.join(out, f"bandits-regret-{stamp}.png")
    try:
        plot(png_path, env, C, short_steps, steps, regret, long_ts.regret[ts.label], args)
        print(f"wrote {json_path}\nwrote {png_path}")
    except ImportError:
        print(f"wrote {json_path} (no plot: matplotlib is not installed)")
    return 0 if (ok1 and ok2) or args.quick else 1  # --quick checks the machinery, not the targets


def plot(path, env, C, short_steps, steps, regret, ts_long, args) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8.5, 5.2), dpi=110)
    long_mean = ts_long.mean(axis=0)
    long_se = ts_long.std(axis=0, ddof=1) / math.sqrt(ts_long.shape[0])
    (line,) = ax.plot(steps, long_mean, linewidth=1.8,
                      label=f"thompson-sampling ({ts_long.shape[0]} seeds, to {power(int(steps[-1]))})")
    ax.fill_between(steps, long_mean - long_se, long_mean + long_se, color=line.get_color(), alpha=0.2, lw=0)
    colours = {"thompson": line.get_color(), "ucb1": "tab:orange", "epsilon-greedy": "tab:green"}
    for label, r in regret.items():
        mean = r.mean(axis=0)
        se = r.std(axis=0, ddof=1) / math.sqrt(r.shape[0]) if r.shape[0] > 1 else np.zeros_like(mean)
        if label == "thompson-sampling":
            if r.shape[0] > ts_long.shape[0]:  # the extra seeds at the short horizon
                ax.plot(short_steps, mean, color=colours["thompson"], linewidth=0.9, alpha=0.7,
                        label=f"thompson-sampling ({r.shape[0]} seeds)")
            continue
        colour = next(c for k, c in colours.items() if k in label)
        style = "--" if label.startswith("mabwiser") else "-"
        ax.plot(short_steps, mean, style, color=colour, linewidth=1.3, label=f"{label} ({r.shape[0]} seeds)")
        ax.fill_between(short_steps, mean - se, mean + se, color=colour, alpha=0.15, lw=0)
    ax.plot(steps, C * np.log(steps), "k--", linewidth=1.2, label=f"Lai-Robbins C ln T (C = {C:.2f})")
    ax.plot(steps, 0.7 * C * np.log(steps), "k:", linewidth=1.0, label="0.7 C ln T")
    ax.set_xscale("log")
    ax.set_xlim(10, steps[-1])
    ends = [C * math.log(steps[-1]), float(long_mean[-1])] + [float(r.mean(axis=0)[-1]) for r in regret.values()]
    top = 1.05 * max(ends)
    ax.set_ylim(0, top)
    ax.set_xlabel("T (steps)")
    ax.set_ylabel("cumulative pseudo-regret")
    ax.set_title(f"Chapelle & Li: {env.describe()}", fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper left", fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
