"""The event loop: Poisson arrivals routed by a strategy through its public entry points,
served by the simulated pods, completions fed back with their usage.

A route is router.decide(Request(body, kind="jsonData", headers=..., meta={"puid": ...}));
a completion is router.learn(Feedback(...)) whose response is the OpenAI usage as
jsonData. The router's clock is the simulated one (router.clock), so its TTLs and windows
run in simulated time.
"""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from seldon_routers.errors import NoCapacity
from seldon_routers.request import Feedback, Headers, Request
from seldon_routers.routers.llm.prompt import prompt_text

from .pods import GPU, Job, Pod, block_keys
from .workload import CHARS_PER_TOKEN, Arrivals, Workload


@dataclass
class Run:
    """What one simulated run leaves: every job (in arrival order), the pods, the timing."""
    jobs: list
    pods: list
    rejected: int
    end: float
    decide_seconds: list = field(default_factory=list)  # wall time of each decide (in process)


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def request_of(turn) -> Request:
    headers = Headers([("user", turn.user), ("x-session-id", turn.session)])
    meta = {"puid": turn.key, "tags": {}, "routing": {}, "requestPath": {}}
    return Request(turn.body, kind="jsonData", headers=headers, meta=meta)


def feedback_of(job: Job) -> Feedback:
    usage = {"prompt_tokens": job.prompt_tokens, "completion_tokens": job.turn.output_tokens,
             "total_tokens": job.prompt_tokens + job.turn.output_tokens}
    meta = {"puid": job.turn.key, "tags": {}, "routing": {}, "requestPath": {}}
    return Feedback(Request(None, meta=meta), dict(meta), 0.0, None, job.pod,
                    response=Request({"usage": usage}, kind="jsonData"))


def simulate(make_strategy: Callable, gpus: list[GPU], workload: Workload, rate: float, requests: int,
             seed: int = 0, block_tokens: int = 16, profiles: Optional[dict] = None, tick=None) -> Run:
    """Routes `requests` arrivals at `rate`/s over pods of the given GPU types.
    make_strategy(pods, clock, seed) builds the router; profiles (gpu name -> profile) go
    into the pods' config. tick(n) is told of each completed request (a progress bar)."""
    clock = Clock()
    pods = [Pod(i, g, block_tokens) for i, g in enumerate(gpus)]
    for p in pods:
        p.profile = (profiles or {}).get(p.gpu.name)
    strategy = make_strategy(pods, clock, seed)
    arrivals = Arrivals(workload, rate, seed)
    jobs, rejected, decide_seconds = [], 0, []
    heap: list = []
    seq = 0

    def push(events):
        nonlocal seq
        for t, kind, pod, job in events:
            seq += 1
            heapq.heappush(heap, (t, seq, kind, pod, job))

    first = arrivals.next()
    push([(first.arrival, "arrive", -1, first)])
    sent = 1
    while heap:
        t, _, kind, pod, item = heapq.heappop(heap)
        clock.now = t
        if kind == "arrive":
            turn = item
            turn.text = prompt_text(turn.body)
            request = request_of(turn)
            started = time.perf_counter()
            try:
                decision = strategy.decide(request)
            except NoCapacity:
                rejected += 1
                decision = None
            decide_seconds.append(time.perf_counter() - started)
            if decision is not None:
                child = decision.child if hasattr(decision, "child") else int(decision)
                job = Job(turn, block_keys(turn.text, block_tokens), -(-len(turn.text) // CHARS_PER_TOKEN))
                job.tags = decision.tags if hasattr(decision, "tags") else None
                jobs.append(job)
                push(pods[child].arrive(t, job))
            if sent < requests:
                nxt = arrivals.next()
                push([(nxt.arrival, "arrive", -1, nxt)])
                sent += 1
        elif kind == "prefilled":
            push(pods[pod].prefilled(t, item))
        else:
            push(pods[pod].decoded(t, item))
            strategy.learn(feedback_of(item))
            if tick is not None:
                tick(1)
    return Run(jobs, pods, rejected, clock.now, decide_seconds)
