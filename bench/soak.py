#!/usr/bin/env python3
"""Soak: minutes of fixed-rate load at 80% of the measured peak, mixed route and feedback,
checking that nothing fails, the memory stays flat and the tail latency does not drift.

Modes:
  single         one `seldon-router serve` of a learning router (epsilon-greedy, 3 branches),
                 REST and gRPC loaded at once
  workers-redis  the same with `--workers 2 --state redis://...` on a redis-server of its own
  gateway        `seldon-router gateway` over 2 simulated vLLM pods (tests/llm_pod.py), chat
                 completions, plain and streamed

1. Peak: every stream closed-loop at once (h2load, REST with --h1, gRPC over h2c) for
   --peak-seconds; the peak of a transport is what its streams answered per second together.
2. Soak: every stream at its share of --load x its transport's peak (h2load --rps), for
   --minutes, as consecutive --segment second runs: per segment p50/p99, errors and req/s;
   the server's RSS (its whole process tree) sampled every --rss-every s.
3. Checks, PASS/FAIL: no errors (non-2xx, socket errors, gRPC replies without a message) and
   the server's own counters agree with the clients'; RSS growth from the end of the warm-up to
   the end < 5%; p99 of the last window within 20% of the first window after the warm-up
   (defaults: minute 2 against the last minute); achieved rate within 3% of the target.

    bash bench/setup.sh                                  # h2load (and wrk)
    python bench/soak.py single --minutes 1              # ~1.5 minutes: checks the machinery
    python bench/soak.py workers-redis                   # 10 minutes
    python bench/soak.py gateway --docs                  # also docs/images/soak-gateway.png

Writes <out>/soak-<mode>.json, .csv (one row per segment and transport) and .png (RSS, p99
and req/s over time). Not run in CI: tests/bench/test_soak.py runs a short one.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
for _p in (BENCH, ROOT / "tests", ROOT):  # serving's helpers; the tests' redis, pods and scrape
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import serving  # noqa: E402
from _peers import AUTH, BODY, Checks, common_args, in_netns, pyplot, start_router, write_results  # noqa: E402

MODES = ("single", "workers-redis", "gateway")
REQUEST = json.loads(serving.REQUEST_JSON)
# reward 1 for branch 1 of unit "0" (the server's default --unit-id): the bandit learns
FEEDBACK = {"request": REQUEST, "response": {"meta": {"routing": {"0": 1}}, "data": {"ndarray": [[1]]}},
            "reward": 1.0}
FEEDBACK_PATH = "/seldon.protos.Router/SendFeedback"
# The soak opens a connection per CLIENT_RPS req/s (at least the peak's): each sends every
# 20 ms or more, so only a reply slower than that delays a send (h2load is closed loop per
# connection: one request at a time over HTTP/1.1, up to 4 streams over HTTP/2).
CLIENT_RPS = 50
RATE_TOLERANCE, RSS_GROWTH, P99_DRIFT = 0.03, 0.05, 0.20


@dataclass
class Stream:
    """One h2load: a kind of call at a share of its transport's rate."""
    name: str
    transport: str  # the peak it shares: rest, grpc, chat
    counted_as: str  # the server's counter of these calls: route, feedback, chat
    url: str
    body: Path
    headers: tuple
    share: float
    clients: int  # at the peak; the soak opens more (CLIENT_RPS)
    reply_bytes: int = 0  # gRPC: the message each reply must carry (an error is a 200 without one)

    @property
    def h1(self) -> bool:
        return self.transport != "grpc"


# --- h2load ---------------------------------------------------------------------------------

def h2load_argv(s: Stream, seconds: int, log: Path, rate: float | None) -> list:
    clients = s.clients if rate is None else max(s.clients, math.ceil(rate / CLIENT_RPS))
    argv = ["h2load", f"-c{clients}", f"-D{seconds}", "-d", str(s.body), f"--log-file={log}"]
    argv += ["--h1"] if s.h1 else ["-m1" if rate is None else "-m4"]
    for h in s.headers:
        argv += ["-H", h]
    if rate is not None:
        argv.append(f"--rps={rate / clients:.4f}")
    return argv + [s.url]


def _counts(text: str, line: str) -> dict:
    """h2load's "<line>: 5 total, 4 done, ..." as {"total": 5, "done": 4, ...}."""
    m = re.search(rf"^{line}: (.*)$", text, re.M)
    return {k: int(v) for v, k in re.findall(r"(\d+) (\w+)", m.group(1))} if m else {}


def parse_h2load(s: Stream, text: str, log: Path, rc: int) -> dict:
    """One stream's segment: counts, errors, req/s, latency (ms; "durations" sorted)."""
    req, codes = _counts(text, "requests"), _counts(text, "status codes")
    m = re.search(r"finished in ([\d.]+)s", text)
    data = re.search(r"\((\d+)\) data", text)
    durations = sorted(int(row.split("\t")[2]) / 1000.0 for row in log.read_text().splitlines()
                       if row.count("\t") >= 2) if log.exists() else []
    ok, seconds = codes.get("2xx", 0), float(m.group(1)) if m else 0.0
    non_2xx = sum(v for k, v in codes.items() if k != "2xx")
    # h2load counts a non-2xx reply and a reset stream ("errored") as failed too
    errors, problems = max(req.get("failed", 0), req.get("errored", 0), non_2xx) + req.get("timeout", 0), []
    if rc != 0 or not req:
        problems.append(f"h2load exited {rc}: {text.strip()[-300:]}")
        errors += 1
    missing = 0
    if s.reply_bytes and ok and data:
        expected = 5 + s.reply_bytes  # the length prefix and the message
        missing = max(0, round(ok - int(data.group(1)) / expected))
        if missing:
            problems.append(f"~{missing} gRPC replies without a message")
            errors += missing
    if not ok:
        problems.append("no request answered")
        errors += 1
    return {"started": req.get("started", 0), "done": req.get("done", 0), "ok": ok, "non_2xx": non_2xx,
            "failed": req.get("failed", 0), "timeout": req.get("timeout", 0), "missing_message": missing,
            "errors": errors, "seconds": seconds, "rps": ok / seconds if seconds else 0.0,
            "p50_ms": serving._percentile(durations, 0.50), "p99_ms": serving._percentile(durations, 0.99),
            "max_ms": durations[-1] if durations else math.nan, "durations": durations, "problems": problems}


def run_segment(streams: list, seconds: int, tmp: Path, rates: dict | None = None) -> dict:
    """All the streams at once for `seconds` (closed loop, or at `rates` req/s each)."""
    procs = {}
    for s in streams:
        log = tmp / (re.sub(r"\W+", "_", s.name) + ".tsv")
        log.unlink(missing_ok=True)  # h2load appends
        argv = h2load_argv(s, seconds, log, rates[s.name] if rates else None)
        procs[s.name] = (subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True), log)
    out = {}
    for s in streams:
        p, log = procs[s.name]
        text = p.communicate(timeout=seconds + 60)[0]
        out[s.name] = parse_h2load(s, text, log, p.returncode)
    return out


def by_transport(streams: list, results: dict) -> dict:
    """A segment's streams merged per transport: req/s, errors, p50/p99 over all their calls."""
    out = {}
    for t in dict.fromkeys(s.transport for s in streams):
        rs = [results[s.name] for s in streams if s.transport == t]
        durations = sorted(d for r in rs for d in r["durations"])
        out[t] = {"rps": sum(r["rps"] for r in rs), "errors": sum(r["errors"] for r in rs),
                  "p50_ms": serving._percentile(durations, 0.50), "p99_ms": serving._percentile(durations, 0.99)}
    return out


# --- the server's memory and CPU ----------------------------------------------------------------

def pid_rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            return next((int(line.split()[1]) for line in f if line.startswith("VmRSS:")), 0)
    except OSError:  # gone meanwhile
        return 0


def tree_rss_kb(sid: int) -> int:
    """RSS of the server and every process it started (its session)."""
    return sum(pid_rss_kb(pid) for pid in serving.session_pids(sid))


class RssSampler(threading.Thread):
    """Samples {series: kB} every `every` s, t in seconds from `t0` (monotonic)."""

    def __init__(self, series: dict, every: float, t0: float):
        super().__init__(daemon=True)
        self.series, self.every, self.t0 = series, every, t0
        self.samples: list = []
        self.done = threading.Event()

    def run(self) -> None:
        while True:
            self.samples.append({"t": time.monotonic() - self.t0, **{k: f() for k, f in self.series.items()}})
            if self.done.wait(self.every):
                return


def rss_at(samples: list, t: float, span: float, series: str = "server") -> float:
    """Mean RSS (kB) of the samples in (t - span, t]: one sample is too noisy to compare."""
    xs = [s[series] for s in samples if t - span < s["t"] <= t]
    return statistics.fmean(xs) if xs else math.nan


def pid_cpu_seconds(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / serving.CLK_TCK  # utime, stime


class CpuMeter:
    """Since the last read: the CPU of the server, the load generators, the rig's helpers (pods,
    redis, this script) and every other process on the machine (other work: the figures are noisy)."""

    def __init__(self, sid: int, helpers: list):
        self.sid, self.helpers = sid, [*helpers, os.getpid()]
        self.last = self._now()

    def _now(self):
        return time.monotonic(), serving.session_cpu_seconds(self.sid), serving.children_cpu_seconds(), \
            sum(map(pid_cpu_seconds, self.helpers)), serving.host_cpu()

    def read(self) -> dict:
        (w0, s0, g0, r0, h0), (w1, s1, g1, r1, h1) = self.last, self._now()
        self.last = (w1, s1, g1, r1, h1)
        wall = max(w1 - w0, 1e-9)
        busy = (h1[0] - h0[0] - (h1[1] - h0[1]) - (h1[2] - h0[2])) / serving.CLK_TCK
        pct = {"server_cpu_pct": 100 * (s1 - s0) / wall, "loadgen_cpu_pct": 100 * (g1 - g0) / wall,
               "helpers_cpu_pct": 100 * (r1 - r0) / wall}
        pct["other_cpu_pct"] = max(0.0, 100 * busy / wall - sum(pct.values()))
        return {k: round(v, 1) for k, v in pct.items()}


# --- the servers ------------------------------------------------------------------------------

def _file(tmp: Path, name: str, data: bytes) -> Path:
    path = tmp / name
    path.write_bytes(data)
    return path


def grpc_frame(message) -> bytes:
    raw = message.SerializeToString()
    return b"\x00" + struct.pack(">I", len(raw)) + raw


def grpc_call(port: int, method: str, frame: bytes) -> bytes:
    """One real unary call (the frame's message); the reply's bytes."""
    import grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        return channel.unary_unary(method)(frame[5:], timeout=10)


def rest_call(url: str, body: dict) -> dict:
    import urllib.request

    req = urllib.request.Request(url, json.dumps(body).encode(), {"content-type": "application/json", **AUTH})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def router_streams(tmp: Path, ports: dict, feedback_every: int) -> list:
    """REST and gRPC route and feedback of a served router, each checked with a real call
    first (a route in the reply; the gRPC replies' lengths, which h2load checks against)."""
    from google.protobuf import json_format

    from seldon_routers.proto import prediction_pb2

    route_frame = grpc_frame(json_format.ParseDict(REQUEST, prediction_pb2.SeldonMessage()))
    feedback_frame = grpc_frame(json_format.ParseDict(FEEDBACK, prediction_pb2.Feedback()))
    rest, grpc_port = f"http://127.0.0.1:{ports['rest']}", ports["grpc"]
    serving.route_value(rest_call(rest + "/route", REQUEST))
    rest_call(rest + "/send-feedback", FEEDBACK)
    route_reply = grpc_call(grpc_port, serving.ROUTE_PATH, route_frame)
    serving.route_value(json_format.MessageToDict(prediction_pb2.SeldonMessage.FromString(route_reply)))
    feedback_reply = grpc_call(grpc_port, FEEDBACK_PATH, feedback_frame)
    json_body = ("content-type: application/json",)
    grpc_headers = ("content-type: application/grpc", "te: trailers")
    route_share = feedback_every / (feedback_every + 1)
    return [
        Stream("rest route", "rest", "route", rest + "/route", _file(tmp, "route.json", serving.REQUEST_JSON.encode()),
               json_body, route_share, 8),
        Stream("rest feedback", "rest", "feedback", rest + "/send-feedback",
               _file(tmp, "feedback.json", json.dumps(FEEDBACK).encode()), json_body, 1 - route_share, 2),
        Stream("grpc route", "grpc", "route", f"http://127.0.0.1:{grpc_port}{serving.ROUTE_PATH}",
               _file(tmp, "route.bin", route_frame), grpc_headers, route_share, 8, len(route_reply)),
        Stream("grpc feedback", "grpc", "feedback", f"http://127.0.0.1:{grpc_port}{FEEDBACK_PATH}",
               _file(tmp, "feedback.bin", feedback_frame), grpc_headers, 1 - route_share, 2, len(feedback_reply)),
    ]


def chat_streams(tmp: Path, base: str, feedback_every: int) -> list:
    """Chat completions through the gateway: plain, and streamed (1 in feedback_every + 1)."""
    headers = ("content-type: application/json", f"authorization: {AUTH['authorization']}")
    streamed = {**BODY, "stream": True}
    _ = rest_call(base + "/v1/chat/completions", BODY)["choices"][0]["message"]  # a real answer first
    plain = feedback_every / (feedback_every + 1)
    url = base + "/v1/chat/completions"
    return [Stream("chat", "chat", "chat", url, _file(tmp, "chat.json", json.dumps(BODY).encode()), headers, plain, 8),
            Stream("chat stream", "chat", "chat", url, _file(tmp, "chat-stream.json", json.dumps(streamed).encode()),
                   headers, 1 - plain, 2)]


def served_counts(metrics_url: str, gateway: bool) -> dict:
    """What the server itself counted: routes, feedbacks and errors (gateway: chats, non-200s)."""
    from support import scrape

    s = scrape(metrics_url)
    if gateway:
        answered = [(dict(labels)["status"], v) for (n, labels), v in s.items() if n == "seldon_gateway_requests_total"]
        return {"chat": sum(v for _, v in answered), "errors": sum(v for status, v in answered if status != "200")}
    return {"route": s.total("seldon_router_routes_total"), "feedback": s.total("seldon_router_feedback_total"),
            "errors": s.total("seldon_router_errors_total")}


class Rig:
    """The mode's processes; after start(): streams, the server's session (sid), RSS series and
    its metrics URL."""

    def __init__(self, args, tmp: Path):
        self.args, self.tmp, self.stops, self.helpers = args, tmp, [], []
        self.redis = None

    def start(self) -> None:
        if self.args.mode == "gateway":
            return self._gateway()
        ports = {k: serving.free_port() for k in ("rest", "grpc", "metrics")}
        argv = [sys.executable, "-m", "seldon_routers.cli", "serve", self.args.router, "--host", "127.0.0.1",
                "--http-port", str(ports["rest"]), "--grpc-port", str(ports["grpc"]),
                "--metrics-port", str(ports["metrics"]), "--log-level", self.args.log_level]
        for p in self.args.param:
            argv += ["--param", p]
        self.rss = {}
        if self.args.mode == "workers-redis":
            from redis_server import RedisServer

            redis = self.redis = RedisServer(serving.free_port(), self.tmp).start()
            self.stops.append(redis.stop)
            self.rss["redis"] = lambda: pid_rss_kb(redis.proc.pid)
            self.helpers.append(redis.proc.pid)
            argv += ["--workers", "2", "--state", redis.url]
        server = serving.Server(self.args.mode, argv, env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT,
                                log_dir=self.tmp)
        server.start()
        self.stops.insert(0, server.stop)
        serving.wait_until("GET /ready", lambda: serving.http_get(ports["rest"], "/ready") == 200, server, 60)
        serving.wait_until("gRPC Route", lambda: grpc_call(ports["grpc"], serving.ROUTE_PATH,
                                                           grpc_frame(_route_message())), server, 30)
        self.sid, self.alive, self.log = server.sid, server.alive, server.log_tail
        self.metrics_url = f"http://127.0.0.1:{ports['metrics']}/metrics"
        self.streams = router_streams(self.tmp, ports, self.args.feedback_every)
        self.rss = {"server": lambda: tree_rss_kb(self.sid), **self.rss}
        self.command = " ".join(argv[1:])

    def _gateway(self) -> None:
        from llm_pod import spawn_pods

        pods = spawn_pods(2)
        self.stops += [p.stop for p in pods]
        self.helpers += [p.proc.pid for p in pods]
        proc, base = start_router("gateway", self.args.strategy, [p.port for p in pods], self.args.log_level)
        self.stops.insert(0, proc.stop)
        self.sid, self.alive, self.log = proc.p.pid, lambda: proc.p.poll() is None, proc.tail
        self.metrics_url = base + "/metrics"
        self.streams = chat_streams(self.tmp, base, self.args.feedback_every)
        self.rss = {"server": lambda: tree_rss_kb(self.sid)}
        self.command = f"seldon-router gateway (strategy {self.args.strategy}) over 2 tests/llm_pod.py pods"

    def store(self) -> dict:
        """What the state store holds (its growth is a leak too): keys and used memory."""
        if self.redis is None:
            return {}
        with self.redis.client() as c:
            return {"keys": c.dbsize(), "used_memory_mib": round(c.info("memory")["used_memory"] / 2**20, 2)}

    def stop(self) -> None:
        for stop in self.stops:
            stop()


def _route_message():
    from google.protobuf import json_format

    from seldon_routers.proto import prediction_pb2

    return json_format.ParseDict(REQUEST, prediction_pb2.SeldonMessage())


# --- the run ------------------------------------------------------------------------------------

def measure_peak(rig: Rig, args) -> dict:
    """Closed loop, every stream at once: req/s answered per transport (after a short warm-up)."""
    run_segment(rig.streams, args.peak_warmup, rig.tmp)
    res = run_segment(rig.streams, args.peak_seconds, rig.tmp)
    merged = by_transport(rig.streams, res)
    for t, r in merged.items():
        print(f"  peak {t}: {r['rps']:.0f} req/s closed loop (p99 {r['p99_ms']:.2f} ms, errors {r['errors']})",
              flush=True)
    return {"transports": merged, "streams": {k: _without_durations(v) for k, v in res.items()}}


def _without_durations(r: dict) -> dict:
    return {k: v for k, v in r.items() if k != "durations"}


def windows(n: int, args) -> tuple:
    """Segment indexes of the first window after the warm-up and of the last window."""
    warm = min(n - 1, round(args.warmup / args.segment))
    width = max(1, round(args.window / args.segment))
    return range(warm, min(n, warm + width)), range(max(warm, n - width), n)


def soak(rig: Rig, rates: dict, args) -> dict:
    n = max(1, round(args.minutes * 60 / args.segment))
    first, last = windows(n, args)
    keep = set(first) | set(last)
    cpu, t0 = CpuMeter(rig.sid, rig.helpers), time.monotonic()
    rss = RssSampler(rig.rss, args.rss_every, t0)
    rss.start()
    segments, kept = [], {"first": {}, "last": {}}
    try:
        for i in range(n):
            t = time.monotonic() - t0
            res = run_segment(rig.streams, args.segment, rig.tmp, rates)
            seg = {"index": i, "t": t, "end": time.monotonic() - t0, "transports": by_transport(rig.streams, res),
                   "streams": {k: _without_durations(v) for k, v in res.items()}, **cpu.read()}
            if i in keep:  # every latency of the compared windows; the others only their percentiles
                for name, where in (("first", first), ("last", last)):
                    if i in where:
                        for s in rig.streams:
                            kept[name].setdefault(s.transport, []).extend(res[s.name]["durations"])
            segments.append(seg)
            _progress(seg, i, n)
            if not rig.alive():
                print(f"!! the server exited:\n{rig.log()}", flush=True)
                break
    finally:
        rss.done.set()
        rss.join()
    return {"segments": segments, "rss": rss.samples, "windows": {"first": list(first), "last": list(last)},
            "window_p99_ms": {w: {t: serving._percentile(sorted(d), 0.99) for t, d in kept[w].items()} for w in kept}}


def _progress(seg: dict, i: int, n: int) -> None:
    parts = [f"{t} {r['rps']:.0f}/s p99 {r['p99_ms']:.2f} ms err {r['errors']}" for t, r in seg["transports"].items()]
    print(f"  [{i + 1:>3}/{n}] t={seg['t']:6.1f}s  " + "  ".join(parts) +
          f"  srv CPU {seg['server_cpu_pct']:.0f}% other {seg['other_cpu_pct']:.0f}%", flush=True)


# --- checks -----------------------------------------------------------------------------------

def rss_growth(samples: list, segments: list, args) -> dict:
    """RSS at the end of the warm-up (the start of the first compared window) and at the end."""
    start = segments[min(len(segments) - 1, round(args.warmup / args.segment))]["t"]
    end = segments[-1]["end"]
    at_warm, at_end = rss_at(samples, start, args.segment), rss_at(samples, end, args.segment)
    return {"warm_t": start, "end_t": end, "warm_kb": at_warm, "end_kb": at_end,
            "first_kb": samples[0]["server"] if samples else math.nan, "growth": at_end / at_warm - 1}


def totals(streams: list, segments: list, peak: dict) -> dict:
    """Per stream over the soak: answered, started, errors, req/s; the peak's errors apart."""
    out = {}
    for s in streams:
        rs = [seg["streams"][s.name] for seg in segments]
        seconds = sum(r["seconds"] for r in rs)
        out[s.name] = {"ok": sum(r["ok"] for r in rs), "started": sum(r["started"] for r in rs),
                       "errors": sum(r["errors"] for r in rs), "peak_errors": peak["streams"][s.name]["errors"],
                       "rps": sum(r["ok"] for r in rs) / seconds if seconds else 0.0,
                       "problems": sorted({p for r in rs for p in r["problems"]})}
    return out


def check(summary: dict, streams: list, args) -> Checks:
    checks = Checks()
    tot, served = summary["totals"], summary["served"]
    errors = sum(t["errors"] + t["peak_errors"] for t in tot.values())
    detail = ", ".join(f"{k} {t['errors']} (peak {t['peak_errors']})" for k, t in tot.items())
    problems = sorted({p for t in tot.values() for p in t["problems"]})
    checks("0 errors (non-2xx, socket errors, gRPC replies without a message)", errors == 0,
           detail + ("; " + "; ".join(problems)[:400] if problems else ""))
    for kind in dict.fromkeys(s.counted_as for s in streams):
        ok = sum(tot[s.name]["ok"] for s in streams if s.counted_as == kind)
        started = sum(tot[s.name]["started"] for s in streams if s.counted_as == kind)
        got = served["after"][kind] - served["before"][kind]
        checks(f"the server counted every {kind} answered", ok <= got <= started,
               f"server {got:.0f}, clients answered {ok}, sent {started}")
    bad = served["after"]["errors"] - served["before"]["errors"]
    checks("the server counted no errors", bad == 0, f"{bad:.0f}")
    g = summary["rss_growth"]
    checks(f"RSS growth after warm-up < {RSS_GROWTH:.0%}", g["growth"] < RSS_GROWTH,
           f"{g['warm_kb'] / 1024:.1f} MiB at t={g['warm_t']:.0f} s -> {g['end_kb'] / 1024:.1f} MiB at "
           f"t={g['end_t']:.0f} s: {g['growth']:+.1%} (at start {g['first_kb'] / 1024:.1f} MiB)")
    first, last = summary["windows"]["first"], summary["windows"]["last"]
    span = _span(summary["segments"], first) + " vs " + _span(summary["segments"], last)
    for t, p_first in summary["window_p99_ms"]["first"].items():
        p_last = summary["window_p99_ms"]["last"][t]
        drift = p_last / p_first - 1
        checks(f"{t} p99 stable within {P99_DRIFT:.0%}", abs(drift) <= P99_DRIFT,
               f"{p_first:.2f} ms ({span}) -> {p_last:.2f} ms: {drift:+.1%}")
    for t, target in summary["targets"].items():
        got = sum(tot[s.name]["rps"] for s in streams if s.transport == t)
        checks(f"{t} achieved rate within {RATE_TOLERANCE:.0%} of the target", abs(got / target - 1) <= RATE_TOLERANCE,
               f"{got:.0f} / {target:.0f} req/s = {got / target:.3f} ({args.load:.0%} of the peak "
               f"{summary['peak']['transports'][t]['rps']:.0f})")
    return checks


def _span(segments: list, idx: list) -> str:
    a, b = segments[idx[0]], segments[idx[-1]]
    return f"{a['t']:.0f}-{b['end']:.0f} s"


# --- output -----------------------------------------------------------------------------------

def write_csv(path: str, segments: list, rss: list, targets: dict) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["t_s", "transport", "target_rps", "rps", "p50_ms", "p99_ms", "errors", "server_rss_mib",
                    "server_cpu_pct", "loadgen_cpu_pct", "helpers_cpu_pct", "other_cpu_pct"])
        for seg in segments:
            mib = rss_at(rss, seg["end"], seg["end"] - seg["t"]) / 1024
            for t, r in seg["transports"].items():
                w.writerow([f"{seg['t']:.1f}", t, f"{targets[t]:.1f}", f"{r['rps']:.1f}", f"{r['p50_ms']:.3f}",
                            f"{r['p99_ms']:.3f}", r["errors"], f"{mib:.2f}", seg["server_cpu_pct"],
                            seg["loadgen_cpu_pct"], seg["helpers_cpu_pct"], seg["other_cpu_pct"]])


def plot(path: str, summary: dict) -> None:
    plt = pyplot()
    segs, rss = summary["segments"], summary["rss"]
    fig, (a_rss, a_p99, a_rps) = plt.subplots(3, 1, sharex=True, figsize=(9, 7.5), dpi=110)
    for series in (k for k in rss[0] if k != "t"):
        a_rss.plot([s["t"] / 60 for s in rss], [s[series] / 1024 for s in rss], label=f"{series} RSS")
    a_rss.set_ylabel("RSS MiB")
    a_rss.set_ylim(bottom=0)
    mid = [(s["t"] + s["end"]) / 120 for s in segs]
    ratios = []
    for t, target in summary["targets"].items():
        a_p99.plot(mid, [s["transports"][t]["p99_ms"] for s in segs], marker=".", label=f"{t} p99")
        ratios += [s["transports"][t]["rps"] / target for s in segs]
        a_rps.plot(mid, ratios[-len(segs):], marker=".", label=f"{t} (target {target:.0f} req/s)")
    a_p99.set_ylabel(f"p99 ms per {summary['args']['segment']} s segment")
    p99s = [s["transports"][t]["p99_ms"] for s in segs for t in s["transports"]]
    if max(p99s) > 20 * min(p99s):  # transports orders of magnitude apart
        a_p99.set_yscale("log")
        a_p99.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:g}"))
        a_p99.yaxis.set_minor_formatter(plt.NullFormatter())
    else:
        a_p99.set_ylim(bottom=0)
    a_rps.set_ylabel("req/s / target")
    a_rps.axhline(1.0, ls="--", lw=0.8, color="grey")
    a_rps.set_ylim(min(0.9, *ratios) - 0.02, 1.05)
    a_rps.set_xlabel("minutes")
    for name in ("first", "last"):
        idx = summary["windows"][name]
        for ax in (a_rss, a_p99):
            ax.axvspan(segs[idx[0]]["t"] / 60, segs[idx[-1]]["end"] / 60, color="grey", alpha=0.12)
    for ax in (a_rss, a_p99, a_rps):
        ax.legend(fontsize=7, loc="best")
    a_rss.set_title(f"soak {summary['mode']}: {summary['args']['load']:.0%} of the peak; grey: the windows compared "
                    f"(bench/soak.py)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def print_figures(summary: dict) -> None:
    print(f"\nsoak {summary['mode']}: {summary['command']}")
    print(f"  load average before {summary['loadavg_before']}, after {summary['loadavg_after']}")
    if summary["store"]["before"]:
        print(f"  redis before the soak {summary['store']['before']}, after {summary['store']['after']}")
    for t, target in summary["targets"].items():
        rps = [s["transports"][t]["rps"] for s in summary["segments"]]
        p99 = [s["transports"][t]["p99_ms"] for s in summary["segments"]]
        print(f"  {t}: peak {summary['peak']['transports'][t]['rps']:.0f} req/s, target {target:.0f}, per segment "
              f"{min(rps):.0f}..{max(rps):.0f} req/s, p99 {min(p99):.2f}..{max(p99):.2f} ms (median "
              f"{statistics.median(p99):.2f})")
    cpu = {k: statistics.fmean(s[k] for s in summary["segments"])
           for k in ("server_cpu_pct", "loadgen_cpu_pct", "helpers_cpu_pct", "other_cpu_pct")}
    print(f"  CPU (100% = one core): server {cpu['server_cpu_pct']:.0f}%, h2load {cpu['loadgen_cpu_pct']:.0f}%, "
          f"pods/redis/this script {cpu['helpers_cpu_pct']:.0f}%, every other process and the kernel "
          f"{cpu['other_cpu_pct']:.0f}%" +
          ("  !! the machine was busy with other work" if cpu["other_cpu_pct"] > 25 else ""))
    print("Checks:")


# --- main -------------------------------------------------------------------------------------

def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=MODES)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--load", type=float, default=0.8, help="the soak's rate, a fraction of the peak (0.8)")
    ap.add_argument("--segment", type=int, default=10, help="seconds per h2load run in the soak (10)")
    ap.add_argument("--warmup", type=float, help="seconds before the RSS baseline and the first p99 window "
                    "(default: a minute, or a quarter of a run shorter than 3 minutes)")
    ap.add_argument("--window", type=float, help="seconds of each compared p99 window (default as --warmup)")
    ap.add_argument("--peak-seconds", type=int, default=15)
    ap.add_argument("--peak-warmup", type=int, default=3)
    ap.add_argument("--rate", action="append", default=[], metavar="TRANSPORT=N",
                    help="a transport's soak rate in req/s instead of --load x its measured peak")
    ap.add_argument("--feedback-every", type=int, default=4, help="routes per feedback (gateway: plain chats "
                    "per streamed one)")
    ap.add_argument("--rss-every", type=float, default=2.0, help="seconds between RSS samples")
    ap.add_argument("--router", default="epsilon-greedy")
    ap.add_argument("--param", action="append", help="the router's, NAME=VALUE (default n_branches=3)")
    ap.add_argument("--strategy", default="prefix-cache", help="the gateway's")
    ap.add_argument("--docs", action="store_true", help="also copy the PNG to docs/images/soak-<mode>.png")
    common_args(ap)
    args = ap.parse_args(argv)
    args.param = args.param or ["n_branches=3"]
    short = args.minutes * 60 < 180
    args.warmup = args.warmup if args.warmup is not None else (args.minutes * 15 if short else 60.0)
    args.window = args.window if args.window is not None else (args.minutes * 15 if short else 60.0)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    rc = in_netns(__file__, argv, args)  # the gateway's fixed port, and nothing leaves the machine
    if rc is not None:
        return rc
    if shutil.which("h2load") is None:
        print("h2load not found: run bash bench/setup.sh", file=sys.stderr)
        return 2
    started, tmp = time.perf_counter(), Path(tempfile.mkdtemp(prefix="soak-"))
    rig = Rig(args, tmp)
    try:
        rig.start()
        rig.streams = [s for s in rig.streams if not args.only or any(o in s.name for o in args.only)]
        summary = run(rig, args)
    finally:
        rig.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    summary["seconds"] = time.perf_counter() - started
    stem = f"soak-{args.mode}"
    status = write_results(args.out, stem, summary, lambda path: plot(path, summary))
    write_csv(os.path.join(args.out, f"{stem}.csv"), summary["segments"], summary["rss"], summary["targets"])
    png = os.path.join(args.out, f"{stem}.png")
    if args.docs and os.path.exists(png):
        shutil.copy(png, ROOT / "docs" / "images" / f"{stem}.png")
    return status


def run(rig: Rig, args) -> dict:
    load_before = os.getloadavg()
    print(f"soak {args.mode}: {rig.command}\n  streams: " +
          ", ".join(f"{s.name} ({s.share:.0%} of {s.transport})" for s in rig.streams), flush=True)
    peak = measure_peak(rig, args)
    fixed = dict(x.split("=", 1) for x in args.rate)
    targets = {t: float(fixed.get(t, args.load * r["rps"])) for t, r in peak["transports"].items()}
    rates = {s.name: targets[s.transport] * s.share for s in rig.streams}
    print(f"  soak: {args.minutes:g} min in {args.segment} s segments at " +
          ", ".join(f"{t} {r:.0f} req/s" for t, r in targets.items()), flush=True)
    served_before, store_before = served_counts(rig.metrics_url, args.mode == "gateway"), rig.store()
    result = soak(rig, rates, args)
    served_after, store_after = served_counts(rig.metrics_url, args.mode == "gateway"), rig.store()
    summary = {"mode": args.mode, "command": rig.command, "args": vars(args), "peak": peak, "targets": targets,
               "rates": rates, **result, "served": {"before": served_before, "after": served_after},
               "store": {"before": store_before, "after": store_after},
               "loadavg_before": [round(x, 2) for x in load_before],
               "loadavg_after": [round(x, 2) for x in os.getloadavg()]}
    summary["totals"] = totals(rig.streams, summary["segments"], peak)
    summary["rss_growth"] = rss_growth(summary["rss"], summary["segments"], args)
    print_figures(summary)
    summary["checks"] = check(summary, rig.streams, args)
    return summary


if __name__ == "__main__":
    sys.exit(main())
