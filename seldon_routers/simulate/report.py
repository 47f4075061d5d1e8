"""A simulation's result as a table, a CSV file and a PNG plot."""

from __future__ import annotations

import csv
import logging
import math
import os
from typing import Optional

import numpy as np

from ..errors import ConfigError
from .runner import Result, checkpoints


def _pm(mean: float, se: float) -> str:
    if math.isnan(se):
        return f"{mean:.1f}"
    return f"{mean:.1f} ± {se:.1f}"


def header(result: Result) -> str:
    feedback = "feedback after every step" if result.batch == 1 else f"feedback in batches of {result.batch} steps"
    lines = [result.env.describe(),
             f"horizon {result.horizon}, {result.repetitions} repetition(s), seed {result.seed}, {feedback}"]
    c = result.env.bound_constant()
    if c is not None:
        lines.append(f"Lai-Robbins asymptotic lower bound C ln T: C = {c:.2f}, the sum over suboptimal "
                     f"arms of (mu* - mu_i) / KL(mu_i || mu*)")
    return "\n".join(lines)


def table(result: Result) -> str:
    """Rows: 10, 100, ..., T; columns: mean cumulative pseudo-regret ± standard error per
    policy, and the Lai-Robbins bound where it applies."""
    rows = [s for s in checkpoints(result.horizon) if s in set(result.steps.tolist())]
    index = {s: i for i, s in enumerate(result.steps.tolist())}
    bound = result.bound()
    head = ["T"] + result.labels + (["C ln T"] if bound is not None else [])
    means = {label: result.mean(label) for label in result.labels}
    ses = {label: result.se(label) for label in result.labels}
    body = []
    for s in rows:
        i = index[s]
        cells = [str(s)] + [_pm(means[label][i], ses[label][i]) for label in result.labels]
        if bound is not None:
            cells.append(f"{bound[i]:.1f}")
        body.append(cells)
    body.append(["us/step"] + [f"{result.us_per_step(label):.1f}" for label in result.labels]
                + ([""] if bound is not None else []))
    widths = [max(len(r[j]) for r in [head] + body) for j in range(len(head))]
    fmt = lambda cells: "  ".join(c.rjust(w) for c, w in zip(cells, widths))  # noqa: E731
    rule = "  ".join("-" * w for w in widths)
    return "\n".join([fmt(head), rule] + [fmt(r) for r in body[:-1]] + [rule, fmt(body[-1])])


def write_csv(result: Result, path: str) -> None:
    """One row per (policy, checkpoint): mean and standard error of the cumulative regret,
    and the Lai-Robbins bound C ln t (empty where none applies)."""
    bound = result.bound()
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["policy", "t", "mean_regret", "se", "lai_robbins_bound", "repetitions"])
        for label in result.labels:
            mean, se = result.mean(label), result.se(label)
            for i, s in enumerate(result.steps.tolist()):
                w.writerow([label, s, f"{mean[i]:.6g}", "" if math.isnan(se[i]) else f"{se[i]:.6g}",
                            "" if bound is None else f"{bound[i]:.6g}", result.repetitions])


def write_png(result: Result, path: str, title: Optional[str] = None) -> None:
    """Cumulative regret against T (log x axis): one line per policy with a ± 1 SE band,
    the Lai-Robbins bound dashed."""
    try:
        import matplotlib
        logging.getLogger("matplotlib").setLevel(logging.WARNING)  # not its font-cache notices
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ConfigError(f"plotting needs matplotlib ({exc}): pip install 'seldon-routers[sim]', "
                          "or pass --no-plot") from None
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    steps = result.steps
    for label in result.labels:
        mean, se = result.mean(label), result.se(label)
        (line,) = ax.plot(steps, mean, label=label, linewidth=1.6)
        if not np.all(np.isnan(se)):
            ax.fill_between(steps, mean - se, mean + se, color=line.get_color(), alpha=0.2, linewidth=0)
    bound = result.bound()
    if bound is not None:
        ax.plot(steps, bound, "k--", linewidth=1.2, label=f"Lai-Robbins C ln T (C = {result.env.bound_constant():.2f})")
    ax.set_xscale("log")
    ax.set_xlim(1, result.horizon)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("T (steps)")
    ax.set_ylabel("cumulative pseudo-regret")
    ax.set_title(title or result.env.describe(), fontsize=9)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    fig.text(0.99, 0.01, f"{result.repetitions} repetitions, seed {result.seed}; bands: ± 1 standard error",
             ha="right", va="bottom", fontsize=7, color="0.4")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_outputs(result: Result, out_dir: str, plot: bool = True) -> list:
    os.makedirs(out_dir, exist_ok=True)
    written = [os.path.join(out_dir, "regret.csv")]
    write_csv(result, written[0])
    if plot:
        written.append(os.path.join(out_dir, "regret.png"))
        write_png(result, written[1])
    return written
