"""The `slo` strategy's profiles, measured offline: one pod of each GPU type, driven closed
loop at a fixed number of requests in flight (each new request arrives when one completes,
so it finds concurrency - 1 in flight), with the benchmark's workload. For each load the
profile records a high quantile of TTFT and of TPOT, so a prediction is what nearly every
request at that load sees, not the mean."""

from __future__ import annotations

import heapq

import numpy as np

from seldon_routers.routers.llm.prompt import prompt_text

from .pods import GPU, Job, Pod, block_keys
from .workload import CHARS_PER_TOKEN, Arrivals, Workload

LEVELS = (1, 2, 4, 8, 12, 16, 20, 24, 32)  # requests kept in flight


def measure(gpu: GPU, workload: Workload, concurrency: int, requests: int, seed: int = 7,
            block_tokens: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """TTFT and TPOT of `requests` requests (after a warm-up of as many) on one pod."""
    pod = Pod(0, gpu, block_tokens)
    arrivals = Arrivals(workload, 1.0, seed)
    heap, seq, done = [], 0, []

    def push(events):
        nonlocal seq
        for t, kind, _, job in events:
            seq += 1
            heapq.heappush(heap, (t, seq, kind, job))

    def send(now):
        turn = arrivals.next()
        turn.arrival = now
        text = prompt_text(turn.body)
        push(pod.arrive(now, Job(turn, block_keys(text, block_tokens), -(-len(text) // CHARS_PER_TOKEN))))

    for _ in range(concurrency):
        send(0.0)
    sent = concurrency
    while heap:
        t, _, kind, job = heapq.heappop(heap)
        if kind == "prefilled":
            push(pod.prefilled(t, job))
            continue
        push(pod.decoded(t, job))
        done.append(job)
        if sent < 2 * requests:
            send(t)
            sent += 1
    measured = done[requests:]
    return np.array([j.ttft for j in measured]), np.array([j.tpot for j in measured])


def profile(gpu: GPU, workload: Workload, requests: int = 400, quantile: float = 99.0, levels=LEVELS) -> dict:
    """The pod's profile as slo.py reads it: load (in flight at arrival), ttft and tpot
    (the `quantile` percentile, seconds) and throughput (output tokens/s) per load."""
    out = {"load": [], "ttft": [], "tpot": [], "throughput": []}
    mean_output = (workload.output_tokens[0] + workload.output_tokens[1] - 1) / 2
    for c in levels:
        ttft, tpot = measure(gpu, workload, c, requests)
        out["load"].append(c - 1)
        out["ttft"].append(round(float(np.percentile(ttft, quantile)), 6))
        out["tpot"].append(round(float(np.percentile(tpot, quantile)), 6))
        # Little's law: c requests in flight, each taking its TTFT plus its decode.
        per_request = float(np.mean(ttft)) + mean_output * float(np.mean(tpot))
        out["throughput"].append(round(c * mean_output / per_request, 1))
    return out
