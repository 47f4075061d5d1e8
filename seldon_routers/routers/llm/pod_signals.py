"""What the router knows of each pod's load (the strategies reading it are in signals.py).

Two sources per pod: its metrics (vLLM's Prometheus names, scraped by the server's pod
watcher and given here with `observe`), and the router's own accounting (what it routed,
what completed, with usage). A metric-based strategy uses the metrics only when every
candidate has a sample younger than `stale` (comparing one pod's scraped queue with
another's local count would mean nothing); else it falls back to local accounting, and
says which in the tags (`signals: metrics | local`) and in /state. Pure bookkeeping, no I/O:
the watcher does the scraping (server/pod_watcher.py).
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Optional

from ...errors import ConfigError
from .._params import number

# vLLM's metric names (the watcher reads these and nothing else).
RUNNING = "vllm:num_requests_running"
WAITING = "vllm:num_requests_waiting"
KV_CACHE = "vllm:kv_cache_usage_perc"  # a fraction in [0, 1], despite the name
GPU_CACHE = "vllm:gpu_cache_usage_perc"  # its name before vLLM V1
PROMPT_TOKENS = "vllm:prompt_tokens_total"
GENERATION_TOKENS = "vllm:generation_tokens_total"
LORA_INFO = "vllm:lora_requests_info"  # labels running_lora_adapters, waiting_lora_adapters
METRIC_NAMES = (RUNNING, WAITING, KV_CACHE, GPU_CACHE, PROMPT_TOKENS, GENERATION_TOKENS)

WINDOW = 60.0  # seconds of token load `throughput` weighs (local records and counter rates)
EWMA = 0.2  # weight of the newest completion in a pod's service-time estimates
DEFAULT_SERVICE = 2.0  # seconds per request before any completion is seen (any value: same for all)
DEFAULT_TPOT = 0.02  # seconds per output token, end to end, before any completion is seen
DEFAULT_PREFILL = 5e-5  # seconds per prompt token, where no profile gives the pod's ttft


class _Pod:
    __slots__ = ("up", "sample", "sampled_at", "counters", "routed_since", "window", "window_load", "in_flight",
                 "service", "tpot", "lora")

    def __init__(self):
        self.up = True
        self.sample: Optional[dict] = None
        self.sampled_at: Optional[float] = None
        self.counters: deque = deque()  # (t, prompt_tokens_total, generation_tokens_total), <= WINDOW
        self.routed_since = [0, 0.0]  # requests and weighted tokens routed since the last sample
        self.window: deque = deque()  # [t, prompt, generated, in the window] per request routed
        self.window_load = 0.0  # the sum of 2 x prompt + generated over the window
        self.in_flight = 0  # estimated tokens (prompt + max output) of its requests in flight
        self.service: Optional[float] = None  # EWMA of request durations (route to completion)
        self.tpot: Optional[float] = None  # EWMA of duration / output tokens
        self.lora = {"running": [], "waiting": []}


class PodSignals:
    """Per pod: healthy or not, its last metrics sample, its recent token load and service times."""

    def __init__(self, n_pods: int, interval: float, stale: float, clock, ttl: float = 600.0):
        self.interval = number(interval, "metrics_interval", 0.0, lo_open=True)
        self.stale = number(stale, "metrics_stale", 0.0, lo_open=True)
        if self.stale < self.interval:
            raise ConfigError(f"metrics_stale: {stale} is shorter than metrics_interval {interval}: every "
                              "sample would be stale before the next")
        self.clock = clock
        self._pods = [_Pod() for _ in range(n_pods)]
        self._pending: dict = {}  # request key -> (pod, its window record), until it completes
        self.ttl = ttl  # the ledger's in_flight_ttl: a request never reported complete stops counting
        self._all_up = True
        self._lock = threading.Lock()

    # --- health ---------------------------------------------------------------------------

    def healthy(self, pods: list) -> list:
        if self._all_up:  # the usual case, on every request: the same list back
            return pods
        return [p for p in pods if self._pods[p].up]

    def down(self, pod: int) -> None:
        """Out of the candidates; its load goes with it (a pod that comes back starts empty)."""
        with self._lock:
            s = self._pods[pod]
            s.up, s.sample, s.sampled_at = False, None, None
            self._all_up = False
            s.counters.clear()
            s.window.clear()
            s.window_load = 0.0
            s.routed_since, s.in_flight = [0, 0.0], 0
            self._pending = {k: v for k, v in self._pending.items() if v[0] != pod}

    def up(self, pod: int) -> None:
        self._pods[pod].up = True
        self._all_up = all(p.up for p in self._pods)

    # --- metrics --------------------------------------------------------------------------

    def observe(self, pod: int, sample: dict, now: Optional[float] = None) -> None:
        """A scraped sample: {vLLM metric name: value} (LORA_INFO: {running: [...], waiting: [...]})."""
        now = self.clock() if now is None else now
        values = {k: float(v) for k, v in sample.items() if k in METRIC_NAMES and isinstance(v, (int, float))}
        with self._lock:
            s = self._pods[pod]
            s.sample, s.sampled_at, s.routed_since = values, now, [0, 0.0]
            if isinstance(sample.get(LORA_INFO), dict):
                s.lora = {k: list(sample[LORA_INFO].get(k, [])) for k in ("running", "waiting")}
            if PROMPT_TOKENS in values and GENERATION_TOKENS in values:
                point = (now, values[PROMPT_TOKENS], values[GENERATION_TOKENS])
                if s.counters and (point[1] < s.counters[-1][1] or point[2] < s.counters[-1][2]):
                    s.counters.clear()  # the pod restarted: its counters began again
                if len(s.counters) > 1 and now - s.counters[-2][0] < WINDOW / 120:
                    s.counters[-1] = point  # at most ~120 points a window, the newest kept
                else:
                    s.counters.append(point)
                while now - s.counters[0][0] > WINDOW:
                    s.counters.popleft()

    def fresh(self, pod: int, now: float, *names: str) -> Optional[dict]:
        """The pod's sample if it is younger than `stale` and has `names` (any of KV's two), else None."""
        s = self._pods[pod]
        if s.sample is None or now - s.sampled_at > self.stale:
            return None
        if KV_CACHE in names and KV_CACHE not in s.sample and GPU_CACHE in s.sample:
            names = tuple(n for n in names if n != KV_CACHE)
        return s.sample if all(n in s.sample for n in names) else None

    def samples(self, pods, *names: str) -> Optional[list]:
        """Every candidate's fresh sample, or None if any has none (the strategy then goes local)."""
        now = self.clock()
        out = [self.fresh(p, now, *names) for p in pods]
        return None if any(s is None for s in out) else out

    def routed_since(self, pod: int) -> int:
        """Requests routed to the pod since its last sample (which its queue does not show yet)."""
        return self._pods[pod].routed_since[0]

    def token_rate(self, pod: int) -> Optional[float]:
        """2 x prompt + generated tokens per second from the pod's counters over the window,
        plus what was routed to it since its last sample (so a burst does not herd)."""
        s = self._pods[pod]
        if len(s.counters) < 2 or s.counters[-1][0] <= s.counters[0][0]:
            return None
        (t0, p0, g0), (t1, p1, g1) = s.counters[0], s.counters[-1]
        return (2 * (p1 - p0) + (g1 - g0)) / (t1 - t0) + s.routed_since[1] / WINDOW

    # --- local accounting -----------------------------------------------------------------

    def routed(self, pod: int, call) -> None:
        now = self.clock()
        prompt, generated = call.prompt_tokens, call.max_tokens
        record = [now, prompt, generated, True]
        with self._lock:
            s = self._pods[pod]
            s.window.append(record)
            s.window_load += 2 * prompt + generated
            s.routed_since[0] += 1
            s.routed_since[1] += 2 * prompt + generated
            self._forget(self._pending.pop(call.key, None))  # the same request routed again
            self._pending[call.key] = (pod, record)
            s.in_flight += prompt + generated
            self._purge(now)
            _trim(s, now)  # here too: only `throughput` reads the window, and it grew without it

    def completed(self, pod: int, entry, usage: Optional[dict], key: Optional[str] = None) -> None:
        """A completion: the estimate replaced by the usage, the pod's service times updated."""
        now = self.clock()
        with self._lock:
            if key:
                found = self._pending.pop(key, None)
            else:  # a completion naming no request: the pod's oldest, as the ledger does
                key = next((k for k, (p, _) in self._pending.items() if p == pod), None)
                found = self._pending.pop(key) if key is not None else None
            self._forget(found)
            if found is not None and usage is not None:
                record, before = found[1], 2 * found[1][1] + found[1][2]
                record[1] = usage.get("prompt_tokens", record[1])
                record[2] = usage.get("completion_tokens", max(0, usage["total_tokens"] - record[1]))
                if record[3]:
                    self._pods[found[0]].window_load += 2 * record[1] + record[2] - before
            duration = now - entry.started if entry is not None else -1.0
            if duration >= 0:
                s = self._pods[pod]
                s.service = duration if s.service is None else (1 - EWMA) * s.service + EWMA * duration
                out = usage.get("completion_tokens") if usage else None
                if out:
                    tpot = duration / out
                    s.tpot = tpot if s.tpot is None else (1 - EWMA) * s.tpot + EWMA * tpot

    def _forget(self, pending) -> None:
        if pending is not None:  # before the usage replaces the estimate it was counted with
            self._pods[pending[0]].in_flight -= pending[1][1] + pending[1][2]

    def _purge(self, now: float) -> None:
        """Requests never reported complete, oldest first (the dict keeps route order)."""
        while self._pending:
            key, pending = next(iter(self._pending.items()))
            if now - pending[1][0] <= self.ttl:
                break
            del self._pending[key]
            self._forget(pending)

    def local_token_rate(self, pod: int) -> float:
        """2 x prompt + generated tokens per second routed to the pod over the window (usage
        where the completion reported it, the estimate until then)."""
        now = self.clock()
        with self._lock:
            s = self._pods[pod]
            _trim(s, now)
            return s.window_load / WINDOW

    def in_flight_tokens(self) -> list:
        """Prompt + output tokens of the requests in flight on each pod (what their KV cache holds)."""
        with self._lock:
            self._purge(self.clock())
            return [s.in_flight for s in self._pods]

    def service(self, pod: int) -> tuple:
        """(seconds per request, seconds per output token) learned from the pod's completions;
        a pod with none yet gets the mean of those that have some, else the defaults."""
        s, known = self._pods[pod], [p for p in self._pods if p.service is not None]
        service = s.service if s.service is not None else (
            sum(p.service for p in known) / len(known) if known else DEFAULT_SERVICE)
        timed = [p.tpot for p in self._pods if p.tpot is not None]
        tpot = s.tpot if s.tpot is not None else (sum(timed) / len(timed) if timed else DEFAULT_TPOT)
        return service, tpot

    def state(self) -> dict:
        now = self.clock()
        rates = [self.local_token_rate(p) for p in range(len(self._pods))]
        tokens = self.in_flight_tokens()
        pods = []
        for i, s in enumerate(self._pods):
            age = None if s.sampled_at is None else round(now - s.sampled_at, 3)
            row = {"healthy": s.up, "source": "metrics" if self.fresh(i, now) is not None else "local",
                   "sample_age": age, "local_token_rate": round(rates[i], 3), "in_flight_tokens": tokens[i],
                   "service_s": None if s.service is None else round(s.service, 4),
                   "tpot_s": None if s.tpot is None else round(s.tpot, 5)}
            if s.sample is not None:
                row["metrics"] = dict(s.sample)
                rate = self.token_rate(i)
                row["token_rate"] = None if rate is None else round(rate, 3)
            if s.lora["running"] or s.lora["waiting"]:
                row["lora"] = s.lora
            pods.append(row)
        return {"metrics_interval": self.interval, "metrics_stale": self.stale, "window": WINDOW, "pods": pods}


def _trim(s, now: float) -> None:
    """Drops a pod's records older than the window (under the lock)."""
    while s.window and now - s.window[0][0] > WINDOW:
        old = s.window.popleft()
        old[3] = False
        s.window_load -= 2 * old[1] + old[2]
    if not s.window:
        s.window_load = 0.0  # no float drift left behind
