#!/usr/bin/env python3
"""The gateway (`seldon-routers gateway`) side by side with the LLM routers users would pick
instead (sglang-router, vllm-router, litellm), in one run, in a loopback-only network namespace.

1. Overhead: 2 pods answering instantly (non-streaming chat, tiny body), 32 concurrent
   clients (wrk, 2 threads, --duration s per run): direct (wrk's connections spread over the
   pods round-robin), our gateway (least-request, prefix-cache), sglang-router (round_robin,
   cache_aware), vllm-router (round_robin, cache_aware), litellm (simple-shuffle), and the
   Python floor (a bare uvicorn + aiohttp round-robin proxy, `gateway_peers.py floor`: what
   the gateway's stack costs with no routing at all). req/s and p50/p99 latency added to
   direct's. Targets: ours (prefix-cache) / sglang cache_aware throughput >= 0.6, / litellm's
   >= 20; our added p50 / sglang cache_aware's added p50 <= 1.5.
2. Streaming TTFT: pods streaming 32 tokens, one every 5 ms; one client, sequential streamed
   requests, direct vs through the gateway. Target: p50 TTFT difference within 1 ms.

    bash bench/setup.sh && bash bench/setup_peers.sh    # wrk; the peers in /work/peers/<name>
    python bench/gateway_peers.py                       # ~3 minutes on 2 cores
    python bench/gateway_peers.py --duration 3 --stream-requests 30   # checks the machinery

Not run in CI. The pods are a minimal aiohttp vLLM look-alike (`gateway_peers.py pod`), so
that the load generator, not the pods, limits direct's throughput. Writes
bench/results/gateway_peers.json (and .png with matplotlib).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

from _peers import (AUTH, BODY, GATEWAY_PORT, PY, Checks, Proc, answering, common_args, in_netns, pct, pyplot,
                    start_pods, start_router, write_results)

POD_PORTS = (18001, 18002)
# The Python stack's floor: uvicorn (httptools, uvloop) serving, aiohttp forwarding, round-robin,
# nothing else (no routing, accounting, metrics, retries): what the gateway costs at best.
FLOOR = "python floor: uvicorn + aiohttp proxy"
STREAM_PORTS = (18011, 18012)
# Peers that are not installed, or fail to start, are reported as such; the rest still run.
TARGETS = {
    "gateway least-request": ("gateway", "least-request"),
    "gateway prefix-cache": ("gateway", "prefix-cache"),
    "sglang-router round_robin": ("sglang", "round_robin"),
    "sglang-router cache_aware": ("sglang", "cache_aware"),
    "vllm-router round_robin": ("vllm", "round_robin"),
    "vllm-router cache_aware": ("vllm", "cache_aware"),
    "litellm simple-shuffle": ("litellm", "simple-shuffle"),
    FLOOR: ("floor", "round-robin"),
}


# --- the pod -----------------------------------------------------------------------------

def pod_main(argv) -> None:
    """A vLLM look-alike: instant answers, or a stream of --tokens chunks every --token-time s.
    Counts the requests per path, for /bench/stats (what the routers ask of a pod)."""
    from aiohttp import web

    ap = argparse.ArgumentParser(prog="gateway_peers.py pod")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--model", default="llama")
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--token-time", type=float, default=0.0)
    args = ap.parse_args(argv)
    hits: dict = {}
    metrics = ("vllm:num_requests_running{model_name=\"%s\"} 0\nvllm:num_requests_waiting{model_name=\"%s\"} 0\n"
               "vllm:kv_cache_usage_perc{model_name=\"%s\"} 0\n" % ((args.model,) * 3)).encode()

    def answer(kind: str) -> bytes:
        if kind == "chat":
            choice = {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
        else:
            choice = {"index": 0, "text": "hi", "finish_reason": "stop"}
        return json.dumps({"id": "x", "object": kind, "created": 0, "model": args.model, "choices": [choice],
                           "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}).encode()

    instant = {"/v1/chat/completions": answer("chat"), "/v1/completions": answer("text_completion")}

    async def handle(request):
        path = request.path
        hits[path] = hits.get(path, 0) + 1
        if path in instant:
            body = await request.read()
            if b'"stream":true' not in body.replace(b" ", b""):
                return web.Response(body=instant[path], content_type="application/json")
            return await stream(request, path, body)
        if path == "/health":
            return web.Response(body=b"")
        if path == "/metrics":
            return web.Response(body=metrics, content_type="text/plain")
        if path == "/v1/models":
            return web.json_response({"object": "list", "data": [{"id": args.model, "object": "model",
                                                                   "owned_by": "vllm", "parent": None}]})
        if path == "/bench/stats":
            return web.json_response(hits)
        return web.Response(status=404, body=b'{"detail":"Not Found"}', content_type="application/json")

    async def stream(request, path, body):
        usage = b'"include_usage":true' in body.replace(b" ", b"")
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        for i in range(args.tokens):
            delta = {"index": 0, "delta": {"content": "tok"}, "finish_reason": None if i < args.tokens - 1 else "length"}
            chunk = {"id": "x", "object": "chat.completion.chunk", "model": args.model, "choices": [delta]}
            await resp.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
            if args.token_time and i < args.tokens - 1:
                await asyncio.sleep(args.token_time)
        if usage:
            chunk = {"id": "x", "object": "chat.completion.chunk", "model": args.model, "choices": [],
                     "usage": {"prompt_tokens": 3, "completion_tokens": args.tokens, "total_tokens": 3 + args.tokens}}
            await resp.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
        await resp.write(b"data: [DONE]\n\n")
        return resp

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    print(f"ready {args.port}", flush=True)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None)


def floor_main(argv) -> None:
    """FLOOR: a bare pass-through proxy over the --pod URLs, round-robin, on --port."""
    import itertools

    import aiohttp
    import uvicorn

    ap = argparse.ArgumentParser(prog="gateway_peers.py floor")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--pod", action="append", required=True)
    args = ap.parse_args(argv)
    turn, sessions = itertools.cycle(range(len(args.pod))), {}

    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        body, more = b"", True
        while more:
            message = await receive()
            body, more = body + message.get("body", b""), message.get("more_body", False)
        i = next(turn)
        if i not in sessions:
            sessions[i] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), auto_decompress=False)
        async with sessions[i].post(args.pod[i] + scope["path"], data=body,
                                    headers={"content-type": "application/json"}) as r:
            data = await r.read()
        await send({"type": "http.response.start", "status": r.status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
        await send({"type": "http.response.body", "body": data})

    uvicorn.run(app, host="127.0.0.1", port=args.port, loop="uvloop", http="httptools", log_level="warning",
                access_log=False, lifespan="off")


def start_floor(ports) -> tuple:
    pods = [x for p in ports for x in ("--pod", f"http://127.0.0.1:{p}")]
    proc = Proc("floor", [PY, os.path.abspath(__file__), "floor", "--port", str(GATEWAY_PORT), *pods])
    return proc, answering(proc, GATEWAY_PORT, 20.0)


# --- processes ---------------------------------------------------------------------------

def own_pods(ports, **options) -> list:
    """This file's instant pods (`gateway_peers.py pod`) on the ports, each ready."""
    extra = [x for k, v in options.items() for x in (f"--{k.replace('_', '-')}", str(v))]
    return start_pods(ports, lambda p: [PY, os.path.abspath(__file__), "pod", "--port", str(p), *extra])


def stats(ports) -> dict:
    out = {}
    for p in ports:
        with urllib.request.urlopen(f"http://127.0.0.1:{p}/bench/stats", timeout=2) as r:
            out[str(p)] = json.loads(r.read())
    return out


# --- load: wrk ---------------------------------------------------------------------------

def wrk(urls: list, duration: float, connections: int, threads: int) -> dict:
    """req/s, p50/p99 ms and errors of wrk --latency; several URLs: one wrk each, the
    connections split among them, run at once (direct's "clients spread over the pods")."""
    script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    body = json.dumps(BODY).replace("'", "\\'")
    script.write(f'wrk.method = "POST"\nwrk.body = \'{body}\'\nwrk.headers["Content-Type"] = "application/json"\n'
                 f'wrk.headers["Authorization"] = "{AUTH["authorization"]}"\n')  # litellm's key; the others ignore it
    script.close()
    per = max(1, connections // len(urls))
    procs = [subprocess.Popen(["wrk", "-t", str(max(1, threads // len(urls))), "-c", str(per), "-d", f"{duration:g}s",
                               "--latency", "-s", script.name, u + "/v1/chat/completions"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for u in urls]
    outs = [p.communicate()[0] for p in procs]
    parsed = [parse_wrk(o) for o in outs]
    rps = sum(p["rps"] for p in parsed)
    # the merged percentiles: the request-weighted mean of each wrk's (the pods are alike)
    w = [p["rps"] or 1e-9 for p in parsed]
    pct = {k: sum(p[k] * x for p, x in zip(parsed, w)) / sum(w) for k in ("p50", "p99")}
    return {"rps": rps, **pct, "errors": sum(p["errors"] for p in parsed), "output": outs}


def parse_wrk(out: str) -> dict:
    def ms(text: str) -> float:
        value, unit = re.match(r"([\d.]+)(us|ms|s|m)", text).groups()
        return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]

    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    # anchored: a "+/- Stdev" column such as 12.50% must not pass for the 50th percentile
    p50, p99 = (re.search(rf"^\s+{q}%\s+(\S+)", out, re.MULTILINE) for q in (50, 99))
    errors = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if not (rps and p50 and p99):
        raise RuntimeError(f"wrk output not understood:\n{out}")
    return {"rps": float(rps.group(1)), "p50": ms(p50.group(1)), "p99": ms(p99.group(1)),
            "errors": errors + (int(non2xx.group(1)) if non2xx else 0)}


# --- streaming TTFT ----------------------------------------------------------------------

async def ttfts(url: str, n: int) -> tuple[list, int]:
    """Seconds to the first content chunk of n sequential streamed chats, and the failures."""
    import aiohttp

    body = {**BODY, "stream": True, "max_tokens": 32}
    out, failed = [], 0
    async with aiohttp.ClientSession() as s:
        for i in range(n + 5):  # 5 warm-up requests: connections open, code paths hot
            started = time.perf_counter()
            first = None
            try:
                async with s.post(url + "/v1/chat/completions", json=body) as r:
                    async for line in r.content:
                        if first is None and line.startswith(b"data: {") and b'"content"' in line:
                            first = time.perf_counter() - started
                    ok = r.status == 200 and first is not None
            except aiohttp.ClientError:
                ok = False
            if i >= 5 and ok:
                out.append(first)
            failed += i >= 5 and not ok
    return out, failed


# --- the run -----------------------------------------------------------------------------

def overhead(args) -> tuple[dict, dict]:
    rows, notes = {}, {}
    pods = own_pods(POD_PORTS)
    direct_urls = [f"http://127.0.0.1:{p}" for p in POD_PORTS]
    try:
        print(f"\n### Overhead: {len(POD_PORTS)} instant pods, {args.connections} connections, "
              f"{args.threads} wrk threads, {args.duration:g} s each\n", flush=True)
        rows["direct"] = wrk(direct_urls, args.duration, args.connections, args.threads)
        rows["direct"]["c1"] = wrk(direct_urls[:1], args.c1_duration, 1, 1)
        rows["direct"]["c1"].pop("output")
        print(f"  direct: {rows['direct']['rps']:.0f} req/s", flush=True)
        for name, (kind, policy) in TARGETS.items():
            if args.only and not any(o in name for o in args.only):
                continue
            before = stats(POD_PORTS)
            try:
                proc, base = (start_floor(POD_PORTS) if kind == "floor"
                              else start_router(kind, policy, POD_PORTS, args.log_level))
            except RuntimeError as exc:
                notes[name] = str(exc)
                print(f"  {name}: skipped: {str(exc).splitlines()[0]}", flush=True)
                continue
            try:
                rows[name] = wrk([base], args.duration, args.connections, args.threads)
                # one connection: the latency a request pays unloaded, not the queueing at saturation
                rows[name]["c1"] = wrk([base], args.c1_duration, 1, 1)
                rows[name]["c1"].pop("output")
            finally:
                alive = proc.p.poll() is None
                proc.stop()
            after = stats(POD_PORTS)
            # what the router asked of the pods beyond the requests (render, tokenize, health...)
            rows[name]["pod_hits"] = {path: sum(after[p].get(path, 0) - before[p].get(path, 0) for p in after)
                                      for path in {k for p in after for k in after[p]}}
            rows[name]["pod_hits"] = {k: v for k, v in sorted(rows[name]["pod_hits"].items()) if v}
            rows[name]["log_tail"] = proc.tail(20)
            if not alive:
                notes[name] = f"exited during the run:\n{proc.tail()}"
            print(f"  {name}: {rows[name]['rps']:.0f} req/s, errors {rows[name]['errors']}", flush=True)
    finally:
        for p in pods:
            p.stop()
    return rows, notes


def streaming(args) -> dict:
    pods = own_pods(STREAM_PORTS, token_time=args.token_time, tokens=32)
    out = {}
    try:
        proc, base = start_router("gateway", "least-request", STREAM_PORTS, args.log_level)
        try:
            for name, url in (("direct", f"http://127.0.0.1:{STREAM_PORTS[0]}"), ("gateway least-request", base)):
                xs, failed = asyncio.run(ttfts(url, args.stream_requests))
                out[name] = {"p50_ms": pct(xs, 0.5) * 1e3, "p99_ms": pct(xs, 0.99) * 1e3,
                             "mean_ms": statistics.fmean(xs) * 1e3 if xs else None, "n": len(xs), "failed": failed}
        finally:
            proc.stop()
            out["gateway_log_tail"] = proc.tail(20)
    finally:
        for p in pods:
            p.stop()
    return out


def report(rows: dict, notes: dict, stream: dict, args) -> list:
    d = rows["direct"]
    print("\n| target | req/s | x direct | p50 ms | p99 ms | added p50 ms | added p99 ms | errors | "
          "1 conn: added p50 ms | 1 conn: added p99 ms | pod calls |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for name, r in rows.items():
        r["added_p50"], r["added_p99"] = r["p50"] - d["p50"], r["p99"] - d["p99"]
        c1 = {k: r["c1"][k] - d["c1"][k] for k in ("p50", "p99")}
        r["c1"].update(added_p50=c1["p50"], added_p99=c1["p99"])
        calls = ", ".join(f"{k} {v}" for k, v in r.get("pod_hits", {}).items()
                          if k not in ("/v1/chat/completions", "/bench/stats"))
        print(f"| {name} | {r['rps']:.0f} | {r['rps'] / d['rps']:.2f} | {r['p50']:.2f} | {r['p99']:.2f} | "
              f"{r['added_p50']:+.2f} | {r['added_p99']:+.2f} | {r['errors'] + r['c1']['errors']} | "
              f"{c1['p50']:+.3f} | {c1['p99']:+.3f} | {calls} |")
    for name, why in notes.items():
        print(f"\n{name}: {why}")
    checks = check = Checks()

    print("\nTargets:")
    ours, sg = rows.get("gateway prefix-cache"), rows.get("sglang-router cache_aware")
    if ours and sg:
        ratio = ours["rps"] / sg["rps"]
        check("gateway prefix-cache / sglang cache_aware throughput >= 0.6", ratio >= 0.6,
              f"{ours['rps']:.0f} / {sg['rps']:.0f} = {ratio:.2f}")
        ratio = ours["added_p50"] / sg["added_p50"] if sg["added_p50"] > 0 else float("inf")
        check("gateway prefix-cache added p50 / sglang cache_aware's <= 1.5", ratio <= 1.5,
              f"{ours['added_p50']:.2f} / {sg['added_p50']:.2f} ms = {ratio:.2f}")
    else:
        check("gateway vs sglang cache_aware", None, "one of them did not run")
    lite, floor = rows.get("litellm simple-shuffle"), rows.get(FLOOR)
    if ours and lite:
        ratio = ours["rps"] / max(lite["rps"], 1e-9)
        check("gateway prefix-cache / litellm simple-shuffle throughput >= 20", ratio >= 20,
              f"{ours['rps']:.0f} / {lite['rps']:.0f} = {ratio:.1f}")
    if ours and floor:  # not a target: how far the gateway is from what its stack allows
        print(f"  (gateway prefix-cache / the Python floor: {ours['rps']:.0f} / {floor['rps']:.0f} = "
              f"{ours['rps'] / floor['rps']:.2f} of the throughput; sglang cache_aware / floor: "
              f"{(sg or {}).get('rps', float('nan')) / floor['rps']:.2f})")
    if "direct" in stream and "gateway least-request" in stream:
        s, g = stream["direct"], stream["gateway least-request"]
        diff = g["p50_ms"] - s["p50_ms"]
        print(f"\n### Streaming TTFT: 32 tokens, {args.token_time * 1e3:g} ms/token, 1 client, "
              f"{args.stream_requests} sequential requests\n")
        print("| target | TTFT p50 ms | p99 ms | mean ms | failed |\n|---|---|---|---|---|")
        for name in ("direct", "gateway least-request"):
            x = stream[name]
            print(f"| {name} | {x['p50_ms']:.2f} | {x['p99_ms']:.2f} | {x['mean_ms']:.2f} | {x['failed']} |")
        check("streaming p50 TTFT gateway - direct within 1 ms", abs(diff) <= 1.0, f"{diff:+.2f} ms")
    return checks


def plot(path: str, rows: dict) -> None:
    plt = pyplot()
    names = list(rows)
    fig, ax = plt.subplots(figsize=(9, 4.2), dpi=110)
    bars = ax.bar(range(len(names)), [rows[n]["rps"] for n in names],
                  color=["grey"] + ["tab:blue" if n.startswith("gateway") else "tab:orange" for n in names[1:]])
    for b, n in zip(bars, names):
        ax.annotate(f"{rows[n]['rps']:.0f}\n{rows[n].get('added_p50', 0):+.1f} ms", (b.get_x() + b.get_width() / 2,
                    b.get_height()), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(names)), names, rotation=25, ha="right", fontsize=8)
    ax.set_ylabel("req/s (32 connections, instant pods)")
    ax.set_title("Routers' throughput; labels: req/s, added p50 (bench/gateway_peers.py)")
    ax.margins(y=0.15)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run (default 10)")
    ap.add_argument("--c1-duration", type=float, default=3.0, help="seconds of the 1-connection run per target")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--stream-requests", type=int, default=200)
    ap.add_argument("--token-time", type=float, default=0.005)
    ap.add_argument("--no-stream", action="store_true", help="skip the streaming TTFT part")
    common_args(ap)
    args = ap.parse_args(argv)
    rc = in_netns(__file__, argv, args)
    if rc is not None:
        return rc
    if shutil.which("wrk") is None:
        print("wrk not found: run bash bench/setup.sh", file=sys.stderr)
        return 2
    started = time.perf_counter()
    rows, notes = overhead(args)
    stream = {} if args.no_stream else streaming(args)
    checks = report(rows, notes, stream, args)
    summary = {"args": vars(args), "overhead": {k: {x: y for x, y in v.items() if x != "output"} for k, v in rows.items()},
               "wrk_output": {k: v.pop("output") for k, v in rows.items()}, "notes": notes, "streaming": stream,
               "checks": checks, "seconds": time.perf_counter() - started}
    return write_results(args.out, "gateway_peers", summary, lambda path: plot(path, rows))


if __name__ == "__main__":
    if sys.argv[1:2] == ["pod"]:
        pod_main(sys.argv[2:])
    elif sys.argv[1:2] == ["floor"]:
        floor_main(sys.argv[2:])
    else:
        sys.exit(main())
