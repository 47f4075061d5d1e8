#!/usr/bin/env python3
"""The LLM routers on a simulated fleet of vLLM-like pods (bench/llm_fleet), side by side.

1. Routing: random, round-robin, least-request, power-of-two, prefix-cache, the `llm` mix
   (prefix-cache:3,least-request:2) and an oracle that knows every pod's cache, on 4 pods
   (2,000-block LRU prefix caches of 16 tokens, 50 us/token prefill, 2 ms/token decode,
   16 slots), 20 tenants with ~2,000-token system prompts, at rising Poisson rates.
   Targets: prefix-cache hit ratio >= 90% of the oracle's at every rate; its p99 TTFT no
   worse than least-request's at every rate and >= 2x lower than random's at the highest.
2. Replicas: prefix-cache as 2 router replicas (one shared in-flight ledger, each its own
   prefix index, requests alternated) vs 1: the hit-ratio lost by not sharing the index.
3. Heterogeneous GPUs: fast/expensive and slow/cheap pods, their profiles measured offline
   by a calibration run (llm_fleet/calibrate.py); `slo` vs least-request on the mixed
   fleet. Targets: slo meets its objective on >= 99% of requests, at a lower cost per
   request than least-request. Cost: a pod costs its cost_per_hour while it has a request
   in flight (an idle pod could be scaled down or lent), over the run, per request served.

    python bench/llm_routing.py            # ~1-2 minutes on 2 cores
    python bench/llm_routing.py --quick    # ~15 s: few requests, checks the machinery only
    python bench/llm_routing.py --full     # 4x the requests per rate, two more rates

Needs the bench extra (tqdm, matplotlib) and the llm extra (xxhash). Writes a JSON summary
and a PNG of TTFT vs rate per strategy under bench/results/ (or --out).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from llm_fleet.calibrate import profile
from llm_fleet.pods import BASE, FAST, SLOW
from llm_fleet.report import summarise, table
from llm_fleet.sim import simulate
from llm_fleet.strategies import Oracle, Replicas, RoundRobin, package_router
from llm_fleet.workload import CHARS_PER_TOKEN, Workload
from progress_bar import Progress

from seldon_routers.routers.llm.router import LLMRouter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MIX = "prefix-cache:3,least-request:2"
# The router's prefix index is told the pods' KV capacity (as an operator would set it), in
# its own blocks (block_size characters; the pods' are 16 tokens), so it forgets what the
# pods evict.
BLOCK_SIZE = LLMRouter(n_branches=1).options["block_size"]
PREFIX = {"prefix_blocks": max(1, BASE.cache_blocks * 16 * CHARS_PER_TOKEN // BLOCK_SIZE)}


def router(name: str, **params):
    return lambda pods, clock, seed: package_router(name, pods, clock, seed, **params)


STRATEGIES = {
    "random": router("random"),
    "round-robin": RoundRobin,
    "least-request": router("least-request"),
    "power-of-two": router("power-of-two"),
    "prefix-cache": router("prefix-cache", **PREFIX),
    "llm " + MIX: router("llm", strategy=MIX, **PREFIX),
    "oracle": Oracle,
}


def available(name: str, make) -> str | None:
    """None, or why the strategy cannot be built here (prefix-cache not installed yet)."""
    try:
        make([type("P", (), {"index": 0, "gpu": BASE})()], lambda: 0.0, 0)
    except Exception as exc:  # noqa: BLE001 - reported in the table, the others still run
        return f"{type(exc).__name__}: {exc}"
    return None


def check(label: str, ok: bool | None, detail: str) -> dict:
    verdict = "n/a " if ok is None else ("PASS" if ok else "FAIL")
    print(f"  {verdict} {label}: {detail}")
    return {"check": label, "pass": ok, "detail": detail}


def routing(args, workload, progress) -> tuple[dict, list]:
    runs, checks = {}, []
    missing = {n: why for n, m in STRATEGIES.items() if (why := available(n, m))}
    for name, why in missing.items():
        print(f"skipped {name}: {why}")
    for rate in args.rates:
        rows = []
        for name, make in STRATEGIES.items():
            if name in missing:
                continue
            run = simulate(make, [BASE] * args.pods, workload, rate, args.requests, args.seed, tick=progress)
            rows.append(summarise(name, rate, run))
            runs.setdefault(name, {})[rate] = rows[-1]
        print(f"\n### {rate:g} req/s offered, {args.pods} pods, {args.requests} requests\n")
        print(table(rows))
    print("\nTargets:")
    prefix, oracle, lr, rnd = (runs.get(n) for n in ("prefix-cache", "oracle", "least-request", "random"))
    for rate in args.rates:
        if prefix is None:
            checks.append(check(f"{rate:g} req/s prefix-cache hit ratio >= 0.9 x oracle", None, "prefix-cache not available"))
            continue
        ratio = prefix[rate].hit_ratio / oracle[rate].hit_ratio
        checks.append(check(f"{rate:g} req/s prefix-cache hit ratio >= 0.9 x oracle's", ratio >= 0.9,
                            f"{prefix[rate].hit_ratio:.3f} / {oracle[rate].hit_ratio:.3f} = {ratio:.2f}"))
        ratio = prefix[rate].ttft_p99 / lr[rate].ttft_p99
        checks.append(check(f"{rate:g} req/s prefix-cache p99 TTFT <= least-request's", ratio <= 1.0,
                            f"{prefix[rate].ttft_p99 * 1e3:.1f} / {lr[rate].ttft_p99 * 1e3:.1f} ms = {ratio:.2f}"))
    top = args.rates[-1]
    if prefix is not None:
        ratio = rnd[top].ttft_p99 / prefix[top].ttft_p99
        checks.append(check(f"{top:g} req/s (highest) random p99 TTFT >= 2 x prefix-cache's", ratio >= 2.0,
                            f"{rnd[top].ttft_p99 * 1e3:.1f} / {prefix[top].ttft_p99 * 1e3:.1f} ms = {ratio:.2f}x"))
    return runs, checks


def replicas(args, workload, progress) -> list:
    if available("prefix-cache", STRATEGIES["prefix-cache"]):
        print("\nReplicas: skipped (prefix-cache not available)")
        return []
    two = lambda pods, clock, seed: Replicas([package_router("prefix-cache", pods, clock, seed + i, **PREFIX) for i in range(2)])
    out = []
    print("\n### prefix-cache: 1 router replica vs 2 (one shared in-flight ledger, an index each)\n")
    print("| rate | hit ratio, 1 replica | 2 replicas | hit ratio lost | p99 TTFT ms, 1 | 2 |\n|---|---|---|---|---|---|")
    for rate in args.replica_rates:
        one = summarise("1", rate, simulate(STRATEGIES["prefix-cache"], [BASE] * args.pods, workload, rate,
                                            args.requests, args.seed, tick=progress))
        both = summarise("2", rate, simulate(two, [BASE] * args.pods, workload, rate, args.requests, args.seed,
                                             tick=progress))
        loss = 1 - both.hit_ratio / one.hit_ratio
        print(f"| {rate:g} | {one.hit_ratio:.3f} | {both.hit_ratio:.3f} | {loss:.1%} | {one.ttft_p99 * 1e3:.1f} | "
              f"{both.ttft_p99 * 1e3:.1f} |")
        out.append({"rate": rate, "hit_1": one.hit_ratio, "hit_2": both.hit_ratio, "loss": loss,
                    "p99_1": one.ttft_p99, "p99_2": both.ttft_p99})
    return out


def slo(args, workload, progress) -> tuple[list, list, dict]:
    started = time.perf_counter()
    profiles = {g.name: profile(g, workload, args.calibration_requests) for g in (FAST, SLOW)}
    print(f"\n### Heterogeneous GPUs: profiles measured offline ({time.perf_counter() - started:.1f} s, "
          f"p99 at each load)\n")
    print("| gpu | cost/h | load | " + " | ".join(str(x) for x in profiles["fast"]["load"]) + " |")
    print("|---|---|---|" + "---|" * len(profiles["fast"]["load"]))
    for g in (FAST, SLOW):
        for key, scale, unit in (("ttft", 1e3, "ms"), ("tpot", 1e3, "ms")):
            cells = " | ".join(f"{v * scale:.0f}" if key == "ttft" else f"{v * scale:.2f}" for v in profiles[g.name][key])
            print(f"| {g.name} | {g.cost_per_hour:g} | {key} {unit} | {cells} |")
    fleet = [FAST] * args.fast + [SLOW] * args.slow
    objective = {"slo_ttft": args.slo_ttft, "slo_tpot": args.slo_tpot}
    strategies = {"least-request": router("least-request"), "random": router("random"),
                  "slo": router("slo", **objective)}
    rows = []
    for name, make in strategies.items():
        run = simulate(make, fleet, workload, args.slo_rate, args.requests, args.seed, profiles=profiles, tick=progress)
        rows.append(summarise(name, args.slo_rate, run, slo=(args.slo_ttft, args.slo_tpot)))
    print(f"\n### {args.slo_rate:g} req/s on {args.fast} fast + {args.slow} slow pods, objective TTFT <= "
          f"{args.slo_ttft:g} s and TPOT <= {args.slo_tpot:g} s\n")
    print(table(rows, slo=True))
    by = {r.strategy: r for r in rows}
    print("\nTargets:")
    checks = [check("slo meets its objective on >= 99% of requests", by["slo"].slo_met >= 0.99,
                    f"{by['slo'].slo_met:.2%} (least-request {by['least-request'].slo_met:.2%})"),
              check("slo cost per request < least-request's", by["slo"].cost_per_1k < by["least-request"].cost_per_1k,
                    f"{by['slo'].cost_per_1k:.3f} / {by['least-request'].cost_per_1k:.3f} = "
                    f"{by['slo'].cost_per_1k / by['least-request'].cost_per_1k:.2f}")]
    return rows, checks, profiles


def plot(path: str, runs: dict, rates: list) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6), dpi=110, sharey=True)
    for ax, attr, title in ((axes[0], "ttft_p50", "TTFT p50"), (axes[1], "ttft_p99", "TTFT p99")):
        for name, by_rate in runs.items():
            xs = [r for r in rates if r in by_rate]
            ax.plot(xs, [getattr(by_rate[r], attr) * 1e3 for r in xs], marker="o", label=name)
        ax.set_yscale("log")
        ax.set_xlabel("offered load (req/s)")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("ms (log scale)")
    axes[1].legend(fontsize=8)
    fig.suptitle("LLM routers on 4 simulated vLLM-like pods (bench/llm_routing.py)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="few requests: checks the machinery, not the targets")
    ap.add_argument("--full", action="store_true", help="4x the requests, two more rates")
    ap.add_argument("--rates", type=lambda s: [float(x) for x in s.split(",")], default=None)
    ap.add_argument("--requests", type=int, default=None, help="requests per run (default 3000)")
    ap.add_argument("--pods", type=int, default=4)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--only", choices=("routing", "replicas", "slo"), action="append")
    ap.add_argument("--fast", type=int, default=2, help="fast pods in the mixed fleet")
    ap.add_argument("--slow", type=int, default=4, help="slow pods in the mixed fleet")
    ap.add_argument("--slo-rate", type=float, default=20.0)
    ap.add_argument("--slo-ttft", type=float, default=0.5)
    ap.add_argument("--slo-tpot", type=float, default=0.004)
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    ap.add_argument("--quiet", action="store_true", help="no progress bar")
    args = ap.parse_args(argv)
    args.rates = args.rates or ([10.0, 40.0] if args.quick else [10, 20, 30, 40, 50, 60] if args.full
                                else [10.0, 20.0, 40.0, 60.0])
    args.requests = args.requests or (400 if args.quick else 12000 if args.full else 3000)
    args.replica_rates = [r for r in (20.0, 40.0) if not args.quick] or [40.0]
    args.calibration_requests = 100 if args.quick else 300
    parts = args.only or ["routing", "replicas", "slo"]
    workload = Workload()
    total = args.requests * ((len(args.rates) * len(STRATEGIES) if "routing" in parts else 0)
                             + (2 * len(args.replica_rates) if "replicas" in parts else 0)
                             + (3 if "slo" in parts else 0))
    progress = Progress(total, quiet=args.quiet)
    started = time.perf_counter()
    summary = {"args": {k: v for k, v in vars(args).items() if k != "only"}, "checks": []}
    runs = {}
    try:
        if "routing" in parts:
            runs, checks = routing(args, workload, progress)
            summary["checks"] += checks
            summary["routing"] = {n: {str(r): vars(s) for r, s in by.items()} for n, by in runs.items()}
        if "replicas" in parts:
            summary["replicas"] = replicas(args, workload, progress)
        if "slo" in parts:
            rows, checks, profiles = slo(args, workload, progress)
            summary["checks"] += checks
            summary["slo"] = {"rows": [vars(r) for r in rows], "profiles": profiles}
    finally:
        progress.close()
    summary["seconds"] = time.perf_counter() - started
    os.makedirs(args.out, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    json_path = os.path.join(args.out, f"llm-routing-{stamp}.json")
    with open(json_path, "w") as f:
        json.dump(summary, f, indent=1, default=str)
    print(f"\n{summary['seconds']:.0f} s; wrote {json_path}")
    if runs:
        png = os.path.join(args.out, f"llm-routing-{stamp}.png")
        try:
            plot(png, runs, args.rates)
            print(f"wrote {png}")
        except ImportError:
            print("(no plot: matplotlib is not installed)")
    failed = [c for c in summary["checks"] if c["pass"] is False]
    return 0 if not failed or args.quick else 1


if __name__ == "__main__":
    sys.exit(main())
