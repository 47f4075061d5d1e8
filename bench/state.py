#!/usr/bin/env python3
"""State-store benchmark: what sharing learned state through Redis costs.

Measured side by side in one run, rounds interleaved so the machine's noise hits both:
  route     REST POST /route req/s, `--state redis://...` vs `--state memory`, one worker
            (target: redis >= 85% of memory: routes are made from a local copy)
  feedback  REST POST /send-feedback req/s, redis vs memory (a feedback is acknowledged
            once Redis has it; concurrent ones share a script call)
  sync lag  feedback acknowledged by replica A until replica B's GET /state shows it
            (two processes on one Redis, --sync-interval 0.1)
  workers   route req/s with --workers 2 vs 1 (redis store)

The router is thompson-sampling over 3 arms. Redis is a redis-server of the benchmark's
own on a free port. Load: wrk (bench/setup.sh installs it), 8 connections.

    python bench/state.py [--rounds 3] [--duration 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from serving import free_port, run_wrk  # noqa: E402

ROUTE = '{"data":{"ndarray":[[1.0,2.0]]}}'
FEEDBACK = '{"request":{"data":{"ndarray":[[1.0,2.0]]}},"response":{"meta":{"routing":{"0":0}}},"reward":1.0}'
ROUTER = ["thompson-sampling", "--param", "n_branches=3"]
TARGET_ROUTE_RATIO = 0.85


def lua(tmp: Path, name: str, body: str) -> Path:
    path = tmp / f"{name}.lua"
    path.write_text(f'wrk.method = "POST"\nwrk.body = \'{body}\'\nwrk.headers["Content-Type"] = "application/json"\n')
    return path


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


def post(url: str, body: str) -> None:
    req = urllib.request.Request(url, body.encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as r:
        r.read()


class Router:
    def __init__(self, *extra: str):
        self.http = free_port()
        cmd = [sys.executable, "-m", "seldon_routers.cli", "serve", *ROUTER, "--host", "127.0.0.1",
               "--http-port", str(self.http), "--grpc-port", str(free_port()),
               "--metrics-port", str(free_port()), "--log-level", "warning", *extra]
        self.proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self.url = f"http://127.0.0.1:{self.http}"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"router exited {self.proc.returncode}: {self.proc.stderr.read().decode()}")
            try:
                if urllib.request.urlopen(self.url + "/ready", timeout=1).status == 200:
                    return
            except OSError:
                time.sleep(0.1)
        raise SystemExit("router not ready after 30 s")

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.proc.pid, signal.SIGKILL)


def measure(store: list, path: str, script: Path, args) -> float:
    router = Router(*store)
    try:
        run_wrk(router.http, args.warmup, args.connections, script, path)
        res = run_wrk(router.http, args.duration, args.connections, script, path)
        if res["problems"]:
            raise SystemExit(f"{path} with {store}: {res['problems']}\n{res['raw']}")
        return res["rps"]
    finally:
        router.stop()


def paired(name: str, a_label: str, a: list, b_label: str, b: list, path: str, script: Path, args) -> list:
    """Rounds of (a, b) in alternating order; returns [(a_rps, b_rps)]."""
    out = []
    for i in range(args.rounds):
        order = [(0, a), (1, b)] if i % 2 == 0 else [(1, b), (0, a)]
        got = {}
        for key, store in order:
            got[key] = measure(store, path, script, args)
        out.append((got[0], got[1]))
        print(f"  {name} round {i + 1}: {a_label} {got[0]:,.0f} req/s, {b_label} {got[1]:,.0f} req/s, "
              f"ratio {got[1] / got[0]:.3f}", flush=True)
    return out


def sync_lag(redis_url: str, samples: int) -> list:
    ns = ["--state", redis_url, "--state-namespace", f"lag-{os.getpid()}", "--sync-interval", "0.1"]
    a, b = Router(*ns), Router(*ns)
    lags = []
    try:
        for _ in range(samples):
            before = get_json(b.url + "/state")["state"]["pulls"][0]
            start = time.perf_counter()
            post(a.url + "/send-feedback", FEEDBACK)
            while get_json(b.url + "/state")["state"]["pulls"][0] <= before:
                time.sleep(0.002)
            lags.append(time.perf_counter() - start)
            time.sleep(0.05)
    finally:
        a.stop()
        b.stop()
    return lags


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=5)
    p.add_argument("--warmup", type=float, default=2)
    p.add_argument("--connections", type=int, default=8)
    p.add_argument("--lag-samples", type=int, default=40)
    p.add_argument("--skip-workers", action="store_true")
    args = p.parse_args()
    if not shutil.which("wrk") or not shutil.which("redis-server"):
        raise SystemExit("needs wrk (bench/setup.sh) and redis-server (scripts/install_redis.sh)")
    tmp = Path(tempfile.mkdtemp(prefix="seldon-state-bench-"))
    port = free_port()
    redis = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                              "--appendonly", "no", "--dir", str(tmp)], stdout=subprocess.DEVNULL)
    redis_url = f"redis://127.0.0.1:{port}/0"
    time.sleep(0.5)
    memory = ["--state", "memory"]
    shared = lambda tag: ["--state", redis_url, "--state-namespace", f"{tag}-{os.getpid()}"]  # noqa: E731
    try:
        print(f"thompson-sampling, 3 arms; wrk -c{args.connections}, {args.duration:g} s per run after "
              f"{args.warmup:g} s warm-up; {args.rounds} rounds, order alternating\n", flush=True)
        route = paired("route", "memory", memory, "redis", shared("route"), "/route", lua(tmp, "route", ROUTE), args)
        feedback = paired("feedback", "memory", memory, "redis", shared("feedback"), "/send-feedback",
                          lua(tmp, "feedback", FEEDBACK), args)
        lags = sync_lag(redis_url, args.lag_samples)
        workers = None
        if not args.skip_workers:
            workers = paired("workers", "1 worker", shared("w1") + ["--workers", "1"], "2 workers",
                             shared("w2") + ["--workers", "2"], "/route", lua(tmp, "route", ROUTE), args)
    finally:
        redis.terminate()
        redis.wait()
        shutil.rmtree(tmp, ignore_errors=True)

    def summary(rows):
        ratio = statistics.median(b / a for a, b in rows)
        return statistics.median(a for a, _ in rows), statistics.median(b for _, b in rows), ratio

    m, r, ratio = summary(route)
    ok = ratio >= TARGET_ROUTE_RATIO
    print(f"\nroute     memory {m:,.0f} req/s, redis {r:,.0f} req/s: redis/memory {ratio:.1%} "
          f"(median of per-round ratios; target >= {TARGET_ROUTE_RATIO:.0%}) {'PASS' if ok else 'FAIL'}")
    m, r, fratio = summary(feedback)
    print(f"feedback  memory {m:,.0f} req/s, redis {r:,.0f} req/s: redis/memory {fratio:.1%} (reported)")
    lags_ms = sorted(x * 1000 for x in lags)
    print(f"sync lag  feedback on A until B shows it, --sync-interval 0.1: p50 {statistics.median(lags_ms):.0f} ms, "
          f"p95 {lags_ms[int(0.95 * (len(lags_ms) - 1))]:.0f} ms, max {lags_ms[-1]:.0f} ms ({len(lags_ms)} samples)")
    if workers:
        one, two, wratio = summary(workers)
        print(f"workers   1: {one:,.0f} req/s, 2: {two:,.0f} req/s: x{wratio:.2f} (2 cores shared with wrk)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
