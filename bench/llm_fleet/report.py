"""What a run measured: cache hit ratio, TTFT percentiles, throughput, per-pod imbalance,
the SLO share and the cost per request; and the tables printed side by side."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Summary:
    strategy: str
    rate: float
    hit_ratio: float
    ttft_p50: float
    ttft_p90: float
    ttft_p99: float
    throughput: float  # completed requests per simulated second
    imbalance: float  # max / mean of requests per pod
    decide_us: float  # median wall time of one decide, in process
    slo_met: float = float("nan")  # share of requests meeting the objective (served or not)
    cost_per_1k: float = float("nan")  # fleet cost of busy pods per 1,000 requests (cost units)
    rejected: int = 0


def summarise(name: str, rate: float, run, warmup: float = 0.1, slo=None) -> Summary:
    """Measured over the jobs after the first `warmup` share (caches start cold).
    Cost: each pod costs cost_per_hour while it has a request in flight (an idle pod could
    be scaled down or lent), over the whole run, divided by the requests served."""
    jobs = run.jobs[int(len(run.jobs) * warmup):]
    prompt = sum(j.prompt_tokens for j in jobs)
    cached = sum(j.cached_tokens for j in jobs)
    ttft = np.array([j.ttft for j in jobs])
    start = jobs[0].turn.arrival
    span = max(j.done for j in jobs) - start
    per_pod = np.bincount([j.pod for j in jobs], minlength=len(run.pods))
    s = Summary(name, rate, cached / prompt, *np.percentile(ttft, [50, 90, 99]), len(jobs) / span,
                per_pod.max() / per_pod.mean(), float(np.median(run.decide_seconds)) * 1e6, rejected=run.rejected)
    if slo is not None:
        ttft_slo, tpot_slo = slo
        met = sum(1 for j in jobs if (ttft_slo is None or j.ttft <= ttft_slo) and (tpot_slo is None or j.tpot <= tpot_slo))
        s.slo_met = met / (len(jobs) + run.rejected * (1 - warmup))
        cost = sum(p.gpu.cost_per_hour * p.busy_time(run.end) / 3600 for p in run.pods)
        s.cost_per_1k = 1000 * cost / len(run.jobs)
    return s


def table(rows: list[Summary], slo: bool = False) -> str:
    head = ["strategy", "hit ratio", "TTFT p50 ms", "p90 ms", "p99 ms", "req/s", "imbalance", "decide us"]
    if slo:
        head += ["SLO met", "cost/1k req", "refused"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r.strategy, f"{r.hit_ratio:.3f}", f"{r.ttft_p50 * 1e3:.1f}", f"{r.ttft_p90 * 1e3:.1f}",
                 f"{r.ttft_p99 * 1e3:.1f}", f"{r.throughput:.1f}", f"{r.imbalance:.2f}", f"{r.decide_us:.0f}"]
        if slo:
            cells += [f"{r.slo_met:.2%}", f"{r.cost_per_1k:.3f}", str(r.rejected)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
