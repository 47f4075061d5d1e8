#!/usr/bin/env python3
"""The shared-prefix workload at rising request rates up to saturation, through several routers
side by side in one run, against the same simulated pods, in a loopback-only network namespace.

Target (the gateway issue): cache hit ratio and TTFT p99 at least as good as the best peer's at
every rate, and better than each peer near saturation (the highest rate run, where a load guard
matters), with per-pod imbalance reported.

Pods: 4 x tests/llm_pod.py as processes (`--slots 16 --token-time 0.002 --prefill-per-token
0.00005 --cache-blocks 2000`): 16 requests generating at once, the rest queued FIFO; one
prefill at a time per pod (50 us a token not in its prefix cache of 2,000 blocks of 16 tokens,
LRU); 2 ms a token of decode. They are started fresh (caches empty) for every (router, rate),
and so is the router.

Workload: 20 tenants, each with a system prompt of 2,000 tokens (8,000 characters: words of 3
letters and a space, one token each, so 125 blocks of the pod's cache); a request is one
tenant's system prompt plus a user message of its own (~25 tokens), the tenant uniform at
random; streamed chat completions with stream_options.include_usage and max_tokens 32.
Open-loop Poisson arrivals at each rate (seeded: every router sees the same arrivals and
tenants at a rate). A warm-up phase at the same rate comes first and is not counted (--warmup
s; default a quarter of --duration, but at least 100 requests' worth: 10 s at 10 req/s): the
requests sent in it are left out, and the pods' counters are read at its end. Then --duration
s measured; the run waits for the answers (a TTFT past --ttft-cap s, 10, counts as over the
cap and is abandoned).

Per (router, rate): offered (requests sent in the window / the window) and achieved rate
(requests answered within the window, whenever sent / the window), errors, over the cap,
TTFT p50/p99 (to the first non-empty content chunk, from the scheduled send time; a request
over the cap counts as the cap), end-to-end p50, the cache hit ratio (sum over the pods of
delta vllm:prefix_cache_hits / delta vllm:prefix_cache_queries, from the end of the warm-up
to the last answer), requests per pod (delta vllm:generation_tokens / 32, the same span) and
their imbalance (max / mean), the pods' peak queue (vllm:num_requests_waiting, sampled every
0.5 s), and the CPU of the pods, the router and the client (percent of one core, over the
window). "saturated": more than 1% failed (errors or over the cap), or
achieved < 90% of offered, or TTFT p50 > 1 s; a router saturated at a rate is not run at the
higher ones (shown "not run: saturated below") unless --keep-going.

Routers: round-robin (no router: the client spreads the requests over the pods), our gateway
(prefix-cache, least-request), sglang-router cache_aware, vllm-router cache_aware, litellm
simple-shuffle; more with --only (substring of a name, repeatable): "litellm least-busy",
"gateway prefix-cache, pod-sized index" (prefix_blocks 250: the pods' 128,000 characters in
blocks of 512), "gateway prefix-cache, sigma filter on" (prefix_sigma 1: AIBrix's filter, off
by default). A peer not installed or failing to start is reported so; the others run.

With 20 tenants a pod that sees them all (round-robin) still hits ~0.75 (16 of 20 prompts fit
its cache) and the pods' prefill saturates only past ~150 req/s, beyond what 2 cores drive;
--tenants 40 (twice the prompts a pod can hold: round-robin ~0.4) saturates round-robin near
60 req/s, the regime where a load guard's choices cost cache hits.

    bash bench/setup_peers.sh litellm                      # the peers in /work/peers/<name>
    python bench/gateway_prefix.py                         # 6 routers, rates 10,20,40,60,80, 15 s each: ~12 min on 2 cores
    python bench/gateway_prefix.py --tenants 40            # the same, past round-robin's saturation
    python bench/gateway_prefix.py --rates 10,40 --duration 5          # checks the machinery (~4 min)
    python bench/gateway_prefix.py --only gateway --only sglang --rates 60   # all gateway rows, sglang-router

Not run in CI. Writes bench/results/gateway_prefix.json (and .png with matplotlib). Everything
shares the machine's cores (pods, routers, client): compare only within one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import re
import sys
import time

import numpy as np
from _peers import AUTH, PY, ROOT, Checks, common_args, in_netns, pct, pyplot, start_pods, start_router, write_results
from llm_fleet.workload import words

POD_PORTS = (18101, 18102, 18103, 18104)
POD_OPTIONS = ["--model", "llama", "--token-time", "0.002", "--prefill-per-token", "0.00005",
               "--cache-blocks", "2000", "--slots", "16"]
TENANTS, SYSTEM_TOKENS, USER_TOKENS, MAX_TOKENS = 20, 2000, 24, 32
DIRECT = "round-robin (no router)"
OURS = "gateway prefix-cache"
# name -> (kind, policy, gateway parameters); DEFAULT: those run without --only
TARGETS = {
    DIRECT: ("direct", None, None),
    OURS: ("gateway", "prefix-cache", None),
    "gateway least-request": ("gateway", "least-request", None),
    "sglang-router cache_aware": ("sglang", "cache_aware", None),
    "vllm-router cache_aware": ("vllm", "cache_aware", None),
    "litellm simple-shuffle": ("litellm", "simple-shuffle", None),
    "litellm least-busy": ("litellm", "least-busy", None),
    "gateway prefix-cache, pod-sized index": ("gateway", "prefix-cache", {"prefix_blocks": 250}),
    "gateway prefix-cache, sigma filter on": ("gateway", "prefix-cache", {"prefix_sigma": 1}),
}
DEFAULT = [n for n in TARGETS if n not in ("litellm least-busy", "gateway prefix-cache, pod-sized index",
                                           "gateway prefix-cache, sigma filter on")]
PEER_KINDS = ("sglang", "vllm", "litellm")
CONTENT = re.compile(rb'"content":\s*"[^"]')  # a chunk with text (the role chunk's content is "")
METRIC = re.compile(r"^(vllm:[a-z_]+?)(?:_total)?(?:\{[^}]*\})? ([0-9.eE+-]+)$", re.MULTILINE)


# --- the workload --------------------------------------------------------------------------

def system_prompts(tenants: int, seed: int = 7) -> list:
    rng = np.random.default_rng(seed)
    return [f"Tenant {t:03d}. " + words(rng, SYSTEM_TOKENS - 3) for t in range(tenants)]


def arrivals(rate: float, seconds: float, seed: int, prompts: list) -> list:
    """[(send time from the start, tenant, JSON body bytes)]: Poisson at `rate`, tenants uniform."""
    rng = np.random.default_rng(seed)
    gaps = rng.exponential(1.0 / rate, int(rate * seconds * 1.5) + 50)
    times = np.cumsum(gaps)
    times = times[times < seconds]
    out = []
    for i, at in enumerate(times.tolist()):
        tenant = int(rng.integers(len(prompts)))
        body = {"model": "llama", "max_tokens": MAX_TOKENS, "stream": True, "stream_options": {"include_usage": True},
                "messages": [{"role": "system", "content": prompts[tenant]},
                             {"role": "user", "content": f"Request {i}: " + words(rng, USER_TOKENS)}]}
        out.append((at, tenant, json.dumps(body).encode()))
    return out


# --- measuring -----------------------------------------------------------------------------

def scrape(text: str) -> dict:
    out: dict = {}
    for name, value in METRIC.findall(text):
        out[name] = out.get(name, 0.0) + float(value)
    return out


async def pod_metrics(session, ports) -> list:
    async def one(port):
        async with session.get(f"http://127.0.0.1:{port}/metrics") as r:
            return scrape(await r.text())
    return list(await asyncio.gather(*(one(p) for p in ports)))


def cpu_seconds(pgid: int) -> float:
    """user + system CPU seconds of the processes in a process group (a child and its own)."""
    total, tick = 0.0, os.sysconf("SC_CLK_TCK")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields from the state on: state ppid pgrp ...
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


async def request(session, url: str, body: bytes, scheduled: float, cap: float) -> dict:
    """One streamed chat: TTFT and end-to-end from the scheduled send time."""
    loop = asyncio.get_running_loop()
    rec = {"ok": False, "over_cap": False, "ttft": None, "e2e": None, "error": None, "done_at": None}
    try:
        async with asyncio.timeout(max(0.0, scheduled + cap - time.perf_counter())) as deadline:
            async with session.post(url, data=body, headers={"content-type": "application/json", **AUTH}) as r:
                done = False
                async for line in r.content:
                    if rec["ttft"] is None and line.startswith(b"data: {") and CONTENT.search(line):
                        rec["ttft"] = time.perf_counter() - scheduled
                        deadline.reschedule(loop.time() + 60)  # the rest: 32 tokens
                    elif line.startswith(b"data: [DONE]"):
                        done = True
                if r.status != 200:
                    rec["error"] = f"HTTP {r.status}"
                elif rec["ttft"] is None or not done:
                    rec["error"] = "no content" if rec["ttft"] is None else "no [DONE]"
                else:
                    rec["ok"], rec["e2e"] = True, time.perf_counter() - scheduled
            rec["done_at"] = time.perf_counter()
    except TimeoutError:
        rec["over_cap"] = rec["ttft"] is None
        rec["error"] = "over the TTFT cap" if rec["over_cap"] else "timeout"
    except Exception as exc:  # noqa: BLE001  (aiohttp's, connection resets...)
        rec["error"] = type(exc).__name__
    return rec


async def drive(urls: list, load: list, warmup: float, cap: float, pgids: dict) -> dict:
    """Sends `load` open-loop (request i to urls[i % len(urls)]); the pods' counters at the end of
    the warm-up and after the last answer; CPU over the window; the pods' peak queues."""
    import aiohttp

    conn = aiohttp.TCPConnector(limit=0, ttl_dns_cache=None)
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=None, sock_connect=5)) as s:
        start = time.perf_counter() + 0.2
        tasks, lags, marks = [], [], {}

        async def mark():
            await asyncio.sleep(max(0.0, start + warmup - time.perf_counter()))
            marks["before"] = await pod_metrics(s, POD_PORTS)
            marks["cpu0"] = {k: cpu_seconds(v) for k, v in pgids.items()}
            marks["t0"], peak = time.perf_counter(), [0.0] * len(POD_PORTS)
            while "stop" not in marks:
                for i, m in enumerate(await pod_metrics(s, POD_PORTS)):
                    peak[i] = max(peak[i], m.get("vllm:num_requests_waiting", 0.0))
                await asyncio.sleep(0.5)
            marks["peak_waiting"] = peak

        marker = asyncio.create_task(mark())
        for i, (at, _tenant, body) in enumerate(load):
            when = start + at
            delay = when - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            lags.append(time.perf_counter() - when)
            tasks.append(asyncio.create_task(request(s, urls[i % len(urls)] + "/v1/chat/completions", body, when, cap)))
        records = await asyncio.gather(*tasks)
        marks["stop"] = True
        await marker
        marks["cpu1"] = {k: cpu_seconds(v) for k, v in pgids.items()}
        marks["t1"] = time.perf_counter()
        marks["after"] = await pod_metrics(s, POD_PORTS)
    return {"records": records, "lags": lags, "start": start, **marks}


def summarise(load: list, run: dict, rate: float, warmup: float, duration: float, cap: float) -> dict:
    counted = [(t, r) for (at, t, _), r in zip(load, run["records"]) if at >= warmup]
    recs = [r for _, r in counted]
    ok = [r for r in recs if r["ok"]]
    # over the cap: counted at the cap (the percentiles of a saturated router are then lower bounds)
    ttft = [r["ttft"] if r["ttft"] is not None else cap for r in recs if r["ttft"] is not None or r["over_cap"]]
    before, after = run["before"], run["after"]
    delta = [{k: a.get(k, 0.0) - b.get(k, 0.0) for k in a} for b, a in zip(before, after)]
    queries = sum(d.get("vllm:prefix_cache_queries", 0.0) for d in delta)
    hits = sum(d.get("vllm:prefix_cache_hits", 0.0) for d in delta)
    per_pod = [round(d.get("vllm:generation_tokens", 0.0) / MAX_TOKENS) for d in delta]
    mean = sum(per_pod) / len(per_pod)
    window = run["t1"] - run["t0"]
    lo = run["start"] + warmup  # the measured window, in the client's clock
    done = sum(1 for r in run["records"] if r["ok"] and lo <= r["done_at"] < lo + duration)
    cpu = {k: 100.0 * (run["cpu1"][k] - run["cpu0"][k]) / window for k in run["cpu0"]}
    errors = [r for r in recs if not r["ok"] and not r["over_cap"]]
    over = sum(r["over_cap"] for r in recs)
    row = {"rate": rate, "sent": len(recs), "offered": len(recs) / duration, "achieved": done / duration,
           "answered": len(ok), "errors": len(errors),
           "error_kinds": sorted({r["error"] for r in errors}), "over_cap": over,
           "ttft_p50_ms": pct(ttft, 0.5) * 1e3, "ttft_p99_ms": pct(ttft, 0.99) * 1e3,
           "e2e_p50_ms": pct([r["e2e"] for r in ok], 0.5) * 1e3,
           "hit_ratio": hits / queries if queries else float("nan"), "per_pod": per_pod,
           "imbalance": max(per_pod) / mean if mean else float("nan"), "peak_waiting": run["peak_waiting"],
           "cpu_pct": cpu, "client_lag_p99_ms": pct(run["lags"], 0.99) * 1e3}
    failed = (row["errors"] + over) / max(1, len(recs))
    row["saturated"] = bool(failed > 0.01 or row["achieved"] < 0.9 * row["offered"] or not row["ttft_p50_ms"] <= 1000)
    return row


# --- the run -------------------------------------------------------------------------------

def run_one(name: str, rate: float, load: list, warmup: float, args) -> dict:
    kind, policy, params = TARGETS[name]
    pod_script = os.path.join(ROOT, "tests", "llm_pod.py")
    pods = start_pods(POD_PORTS, lambda p: [PY, pod_script, "--port", str(p), *POD_OPTIONS])
    router = None
    try:
        if kind == "direct":
            urls = [f"http://127.0.0.1:{p}" for p in POD_PORTS]
        else:
            router, base = start_router(kind, policy, POD_PORTS, args.log_level, params)
            urls = [base]
        groups = {"client": os.getpgrp(), **({"router": router.p.pid} if router else {})}  # (sessions of their own)
        groups.update({f"pod{i}": p.p.pid for i, p in enumerate(pods)})
        run = asyncio.run(drive(urls, load, warmup, args.ttft_cap, groups))
        row = summarise(load, run, rate, warmup, args.duration, args.ttft_cap)
        row["warmup_s"] = warmup
        cpu = row["cpu_pct"]
        row["cpu_pct"] = {"pods": sum(v for k, v in cpu.items() if k.startswith("pod")),
                          "router": cpu.get("router"), "client": cpu["client"],
                          "busiest pod": max(v for k, v in cpu.items() if k.startswith("pod"))}
        if router is not None and router.p.poll() is not None:
            row["note"] = f"exited during the run:\n{router.tail()}"
        return row
    finally:
        if router is not None:
            router.stop()
        for p in pods:
            p.stop()


def fmt(x, spec=".0f") -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, spec)


def report(rows: dict, notes: dict, rates: list) -> list:
    print("\n| router | rate | offered | achieved | errors | over cap | TTFT p50 ms | TTFT p99 ms | e2e p50 ms | hit ratio | "
          "requests per pod | imbalance | peak queue | CPU % pods / router / client | status |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, by_rate in rows.items():
        for rate in rates:
            r = by_rate.get(rate)
            if r is None or "skipped" in r:
                why = (r or {}).get("skipped") or notes.get(name, "not run")
                print(f"| {name} | {rate:g} |{' |' * 12} {why.splitlines()[0]} |")
                continue
            c = r["cpu_pct"]
            print(f"| {name} | {rate:g} | {r['offered']:.1f} | {r['achieved']:.1f} | {r['errors']} | {r['over_cap']} | "
                  f"{fmt(r['ttft_p50_ms'])} | {fmt(r['ttft_p99_ms'])} | {fmt(r['e2e_p50_ms'])} | "
                  f"{fmt(r['hit_ratio'], '.2f')} | {'/'.join(map(str, r['per_pod']))} | {fmt(r['imbalance'], '.2f')} | "
                  f"{'/'.join(f'{w:.0f}' for w in r['peak_waiting'])} | {c['pods']:.0f} / {fmt(c['router'])} / "
                  f"{c['client']:.0f} | {'saturated' if r['saturated'] else 'ok'} |")
    for name, why in notes.items():
        print(f"\n{name}: {why}")
    checks = check = Checks()

    print(f"\nTargets ({OURS} against the peers: {', '.join(n for n in rows if TARGETS[n][0] in PEER_KINDS)}):")
    peers = {n: v for n, v in rows.items() if TARGETS[n][0] in PEER_KINDS}
    ours = rows.get(OURS, {})
    for rate in rates:
        o = ours.get(rate)
        ran = {n: v[rate] for n, v in peers.items() if rate in v and "skipped" not in v[rate]}
        if o is None or "skipped" in o or not ran:
            check(f"{rate:g} req/s", None, "ours or every peer did not run")
            continue
        hit_name = max(ran, key=lambda n: ran[n]["hit_ratio"])
        p99_name = min(ran, key=lambda n: ran[n]["ttft_p99_ms"])
        bh, bp = ran[hit_name]["hit_ratio"], ran[p99_name]["ttft_p99_ms"]
        check(f"{rate:g} req/s hit ratio >= best peer's", o["hit_ratio"] >= bh,
              f"{o['hit_ratio']:.3f} vs {bh:.3f} ({hit_name}): x{o['hit_ratio'] / bh:.2f}")
        check(f"{rate:g} req/s TTFT p99 <= best peer's", o["ttft_p99_ms"] <= bp,
              f"{o['ttft_p99_ms']:.0f} vs {bp:.0f} ms ({p99_name}): x{o['ttft_p99_ms'] / bp:.2f}")
    top = rates[-1]
    o = ours.get(top)
    if o is not None and "skipped" not in o:
        for n, v in peers.items():
            p = v.get(top)
            if p is None:
                continue
            if "skipped" in p:  # saturated at a lower rate
                check(f"{top:g} req/s (near saturation) better than {n}", not o["saturated"], p["skipped"])
                continue
            better = o["ttft_p99_ms"] < p["ttft_p99_ms"] and o["hit_ratio"] >= p["hit_ratio"]
            check(f"{top:g} req/s (near saturation) TTFT p99 < and hit ratio >= {n}'s", better,
                  f"p99 {o['ttft_p99_ms']:.0f} vs {p['ttft_p99_ms']:.0f} ms, hit {o['hit_ratio']:.3f} vs "
                  f"{p['hit_ratio']:.3f}")
    else:
        check(f"{top:g} req/s near saturation", None, "ours did not run there")
    return checks


def plot(path: str, rows: dict, rates: list) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), dpi=110)
    for name, by_rate in rows.items():
        pts = [(r, by_rate[r]) for r in rates if r in by_rate and "skipped" not in by_rate[r]]
        if not pts:
            continue
        xs = [r for r, _ in pts]
        style = {"lw": 2.4 if name.startswith("gateway") else 1.3, "ls": "-" if name.startswith("gateway") else "--"}
        for ax, key in zip(axes, ("hit_ratio", "ttft_p99_ms")):
            line, = ax.plot(xs, [v[key] for _, v in pts], marker="o", label=name, **style)
            sat = [(r, v[key]) for r, v in pts if v["saturated"]]
            if sat:
                ax.plot(*zip(*sat), "x", ms=10, color=line.get_color())
    axes[0].set(xlabel="offered req/s", ylabel="prefix cache hit ratio (pods' counters)", ylim=(0, 1.02))
    axes[1].set(xlabel="offered req/s", ylabel="TTFT p99 ms (log)", yscale="log")
    axes[0].legend(fontsize=7)
    fig.suptitle("Shared-prefix workload, 4 pods x 16 slots; x: saturated (bench/gateway_prefix.py)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rates", default="10,20,40,60,80", help="offered req/s, comma-separated (default 10,20,40,60,80)")
    ap.add_argument("--duration", type=float, default=15.0, help="measured seconds per (router, rate) (default 15)")
    ap.add_argument("--warmup", type=float, default=None,
                    help="warm-up seconds, not counted (default: duration / 4, at least 100 requests' worth)")
    ap.add_argument("--ttft-cap", type=float, default=10.0)
    ap.add_argument("--keep-going", action="store_true", help="run a router at higher rates after it saturated")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--tenants", type=int, default=TENANTS,
                    help=f"tenants (system prompts of {SYSTEM_TOKENS} tokens; default {TENANTS})")
    common_args(ap)
    args = ap.parse_args(argv)
    rc = in_netns(__file__, argv, args)
    if rc is not None:
        return rc
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    rates = [float(r) for r in args.rates.split(",")]
    warmups = {r: max(args.duration / 4, 100 / r) if args.warmup is None else args.warmup for r in rates}
    names = [n for n in TARGETS if any(o in n for o in args.only)] if args.only else DEFAULT
    prompts = system_prompts(args.tenants)
    loads = {r: arrivals(r, warmups[r] + args.duration, args.seed + i, prompts) for i, r in enumerate(rates)}
    started = time.perf_counter()
    rows: dict = {n: {} for n in names}
    notes: dict = {}
    print(f"routers: {', '.join(names)}; rates {args.rates} req/s; warm-up "
          f"{', '.join(f'{w:g}' for w in warmups.values())} s + {args.duration:g} s each", flush=True)
    for name in names:
        saturated_at = None
        for rate in rates:
            if saturated_at is not None and not args.keep_going:
                rows[name][rate] = {"skipped": f"not run: saturated at {saturated_at:g} req/s"}
                continue
            try:
                row = run_one(name, rate, loads[rate], warmups[rate], args)
            except RuntimeError as exc:
                notes[name] = str(exc)
                print(f"  {name}: skipped: {str(exc).splitlines()[0]}", flush=True)
                break
            rows[name][rate] = row
            if row["saturated"]:
                saturated_at = rate
            print(f"  {name} @ {rate:g}: achieved {row['achieved']:.1f}, hit {row['hit_ratio']:.2f}, "
                  f"TTFT p50/p99 {fmt(row['ttft_p50_ms'])}/{fmt(row['ttft_p99_ms'])} ms, pods "
                  f"{row['per_pod']}, CPU pods {row['cpu_pct']['pods']:.0f}% router {fmt(row['cpu_pct']['router'])}%"
                  f"{' SATURATED' if row['saturated'] else ''}", flush=True)
    checks = report(rows, notes, rates)
    summary = {"args": vars(args), "setup": {"pods": len(POD_PORTS), "pod_options": POD_OPTIONS, "tenants": args.tenants,
                                             "system_tokens": SYSTEM_TOKENS, "user_tokens": USER_TOKENS,
                                             "max_tokens": MAX_TOKENS},
               "rows": {n: {f"{r:g}": v for r, v in by.items()} for n, by in rows.items()}, "notes": notes,
               "checks": checks, "seconds": time.perf_counter() - started}
    return write_results(args.out, "gateway_prefix", summary, lambda path: plot(path, rows, rates))


if __name__ == "__main__":
    sys.exit(main())
