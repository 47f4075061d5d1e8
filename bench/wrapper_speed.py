#!/usr/bin/env python3
"""Our built-ins under Seldon's own wrapper, side by side with a plain Seldon-style class
doing the same job. Target: ours at least 0.9x the plain class's req/s.

Each server is `seldon-core-microservice <module.Class> --service-type ROUTER --parameters
<JSON>` (seldon-core 1.18.2 from scripts/seldon_env.sh, the wrapper's defaults), started
in its own session and stopped as a whole process group, one at a time. The plain classes
are in bench/incumbents/plain_routers.py (no seldon_routers import, no base class).

  ab-test         plain_routers.PlainABTest   vs seldon_routers.ABTest          (required)
  epsilon-greedy  plain_routers.PlainEpsilonGreedy vs seldon_routers.EpsilonGreedy

Load: `wrk -t1 -c8 -d5s` POSTing {"data":{"ndarray":[[1.0,2.0]]}} to /route after a
warm-up; rounds alternate the order (plain, ours; then ours, plain; ...). Every call must
succeed: a real Route before and after the load must carry a route in range, wrk must
report no non-2xx and no socket errors, and its Lua script checks every reply body for a
route in range.

--hooks adds, beside the ab-test pair, the plain class with a no-op `metrics()`, with a
no-op `tags()`, and with both (what seldon_routers.Router declares on its base class):
the wrapper calls SeldonMetrics.update() once more per request when the class has a
`metrics` attribute, round trips to a multiprocessing Manager process. The IPC column
counts those calls per Route for every class, in process (bench/wrapper_calls.py run in
the Seldon venv): a count, steady whatever else the machine is doing.

    python bench/wrapper_speed.py                       # both pairs, 2 rounds, 5 s each
    python bench/wrapper_speed.py --rows ab-test --hooks --rounds 3
    python bench/wrapper_speed.py --ours-pythonpath /path/to/a/checkout   # a local change
    python bench/wrapper_speed.py --candidate /path/to/a/checkout   # it, beside the venv's
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import serving  # its process, wrk and venv helpers
from serving import BenchError, Server, free_port, http_get, rest_route, wait_until

ROOT = serving.ROOT
INCUMBENTS = serving.BENCH / "incumbents"
TARGET = 0.9


def _params(**values) -> str:
    kinds = {int: "INT", float: "FLOAT", str: "STRING"}
    return json.dumps([{"name": k, "value": str(v), "type": kinds[type(v)]} for k, v in values.items()])


# label -> (parameters JSON, number of children, {variant: module.Class}); "plain" and
# "ours" are the pair the verdict is on, any other variant is informative.
ROWS = {
    "ab-test": (_params(n_branches=3, weights="0.5:0.3:0.2"), 3, {
        "plain": "plain_routers.PlainABTest",
        "ours": "seldon_routers.ABTest",
    }),
    "epsilon-greedy": (_params(n_branches=3, epsilon=0.1), 3, {
        "plain": "plain_routers.PlainEpsilonGreedy",
        "ours": "seldon_routers.EpsilonGreedy",
    }),
}
HOOK_VARIANTS = {
    "plain+metrics()": "plain_routers.PlainABTestWithMetrics",
    "plain+tags()": "plain_routers.PlainABTestWithTags",
    "plain+both": "plain_routers.PlainABTestWithBoth",
}

# Checks every reply: HTTP 200 and a route in [0, n) in data.ndarray; counts per route.
# (serving.run_wrk passes the script no arguments, so n is written into it.)
LUA = r"""
wrk.method = "POST"
wrk.body = '%(body)s'
wrk.headers["Content-Type"] = "application/json"
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args)
  n = %(n)d; bad = 0; first_bad = ""
  for i = 0, n - 1 do _G["r" .. i] = 0 end
end
function response(status, headers, body)
  local r = tonumber(body:match('"ndarray":%%s*%%[%%s*%%[?%%s*(%%-?%%d+)'))
  if status == 200 and r ~= nil and r >= 0 and r < n then
    _G["r" .. r] = _G["r" .. r] + 1
  else
    bad = bad + 1
    if first_bad == "" then first_bad = status .. " " .. body:sub(1, 200) end
  end
end
function done(summary, latency, requests)
  for _, t in ipairs(threads) do
    local counts = {}
    for i = 0, t:get("n") - 1 do table.insert(counts, t:get("r" .. i)) end
    io.write("route replies: " .. table.concat(counts, ",") .. " bad " .. t:get("bad") .. "\n")
    if t:get("bad") > 0 then io.write("first bad reply: " .. t:get("first_bad") .. "\n") end
  end
end
"""


def check_replies(res: dict, n: int, conns: int) -> None:
    """Adds to res["problems"] unless the Lua script saw a good route in every reply."""
    m = re.search(r"route replies: ([\d,]+) bad (\d+)", res["raw"])
    if not m:
        res["problems"].append("wrk's Lua script printed no reply counts")
        return
    counts = [int(c) for c in m.group(1).split(",")]
    res["route_counts"], res["bad_replies"] = counts, int(m.group(2))
    if res["bad_replies"]:
        first = re.search(r"first bad reply: (.*)", res["raw"])
        res["problems"].append(f"{res['bad_replies']} replies without a route in [0, {n})"
                               + (f", first: {first.group(1)}" if first else ""))
    # wrk counts a reply in flight at the deadline differently from response(): allow that
    if abs(sum(counts) + res["bad_replies"] - res["requests"]) > conns:
        res["problems"].append(f"checked {sum(counts) + res['bad_replies']} replies of "
                               f"{res['requests']} requests")


def checked_route(port: int, n: int) -> int:
    route, raw = rest_route(port)
    if not 0 <= route < n:
        raise BenchError(f"route {route} out of [0, {n}): {raw[:200]!r}")
    return route


def wrapper_env(venv: Path, pythonpath: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '')}"
    env["VIRTUAL_ENV"] = str(venv)
    # the working tree stays off the path (the wrapper adds its cwd to sys.path), so ours
    # is the copy installed in the venv unless a directory comes first
    env["PYTHONPATH"] = ":".join(p for p in (pythonpath, str(INCUMBENTS)) if p)
    return env


def servers(row: str, args) -> dict:
    """{variant: (module.Class, directory first on its PYTHONPATH)} of a row, in the order
    they run in an even round."""
    variants = {v: (cls, args.ours_pythonpath) for v, cls in ROWS[row][2].items()}
    if args.candidate:
        variants["candidate"] = (ROWS[row][2]["ours"], args.candidate)
    if row == "ab-test" and args.hooks:
        variants.update((v, (cls, args.ours_pythonpath)) for v, cls in HOOK_VARIANTS.items())
    return variants


def manager_calls(venv: Path, args, rows: list, tmp: Path) -> dict:
    """{(row, variant): calls to the wrapper's metrics Manager per Route}, counted in
    process by bench/wrapper_calls.py in the Seldon venv: the cause of the gap, no timing."""
    by_path: dict = {}
    for row in rows:
        for variant, (cls, path) in servers(row, args).items():
            by_path.setdefault(path, {})[f"{row}/{variant}"] = [cls, json.loads(ROWS[row][0])]
    calls = {}
    for path, classes in by_path.items():
        out = subprocess.run(
            [str(venv / "bin" / "python"), str(serving.BENCH / "wrapper_calls.py"),
             json.dumps(classes)], check=False, env=wrapper_env(venv, path), cwd=tmp,
            capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise BenchError(f"bench/wrapper_calls.py failed:\n{out.stderr[-2000:]}")
        for key, v in json.loads(out.stdout.strip().splitlines()[-1]).items():
            calls[tuple(key.split("/", 1))] = v["route"]
    return calls


def run_one(label: str, cls: str, pythonpath: str | None, params: str, n: int, venv: Path,
            args, tmp: Path, current: list) -> dict:
    hp, gp, mp = free_port(), free_port(), free_port()
    env = wrapper_env(venv, pythonpath)
    cwd = tmp / "cwd"
    cwd.mkdir(exist_ok=True)
    srv = Server(label, [
        str(venv / "bin" / "seldon-core-microservice"), cls, "--service-type", "ROUTER",
        "--parameters", params, "--http-port", str(hp), "--grpc-port", str(gp),
        "--metrics-port", str(mp)], env=env, cwd=cwd, log_dir=tmp)
    current.append(srv)
    print(f"   {label:<24} {cls:<38}", end="", flush=True)
    srv.start()
    try:
        wait_until("GET /health/ping", lambda: http_get(hp, "/health/ping") == 200, srv,
                   args.start_timeout)
        config = serving.incumbent_config(srv.log_path.read_text(errors="replace"))
        before = checked_route(hp, n)
        res = serving.measure(srv, "rest", hp, args, {"lua": tmp / "post.lua"}, None)
        check_replies(res, n, args.connections)
        after = checked_route(hp, n)
        res["check_routes"] = [before, after]
        res["processes"] = len(serving.session_pids(srv.sid))
    finally:
        srv.stop()
    res.update(label=label, cls=cls, pythonpath=pythonpath, wrapper_config=config)
    flag = "" if not res["problems"] else "  !! " + "; ".join(res["problems"])
    print(f"{res['rps']:>8.0f} req/s  p50 {res['p50_ms']:6.2f} ms  "
          f"{res['server_cpu_us_per_req']:>5.0f} us CPU/req  other {res['other_cpu_pct']:>3.0f}%  "
          f"routes {res.get('route_counts')}{flag}", flush=True)
    return res


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=5.0, help="seconds per measurement")
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up before each")
    p.add_argument("--rounds", type=int, default=2, help="measurements of each server")
    p.add_argument("--connections", type=int, default=8)
    p.add_argument("--rows", default=",".join(ROWS),
                   help=f"comma-separated, of {', '.join(ROWS)} (default: all)")
    p.add_argument("--hooks", action="store_true",
                   help="also the plain ab-test class with no-op metrics()/tags() hooks")
    p.add_argument("--seldon-env", help="the seldon-core 1.18.2 venv (default: what "
                   "scripts/seldon_env.sh prints; it installs this checkout's package there)")
    p.add_argument("--ours-pythonpath", metavar="DIR",
                   help="import seldon_routers from DIR instead of the venv's installed copy")
    p.add_argument("--candidate", metavar="DIR",
                   help="add to every row ours imported from DIR (a checkout with a change), "
                        "beside ours from the venv, in the same rounds")
    p.add_argument("--json", nargs="?", const="auto", metavar="PATH",
                   help="also write the results (default bench/results/wrapper-speed-<time>.json)")
    p.add_argument("--start-timeout", type=float, default=90.0)
    args = p.parse_args()
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = set(rows) - set(ROWS)
    if unknown or not rows:
        p.error(f"--rows: unknown {', '.join(sorted(unknown)) or '(none given)'}")
    if not shutil.which("wrk"):
        print("missing wrk: run bench/setup.sh", file=sys.stderr)
        return 2

    tmp = Path(tempfile.mkdtemp(prefix="wrapper-speed-"))
    current: list[Server] = []
    runs: dict = {}
    try:
        venv = serving.seldon_venv(args).resolve()
        print(f"wrapper speed: seldon-core-microservice from {venv}, wrk -t1 "
              f"-c{args.connections} -d{args.duration:g}s after {args.warmup:g}s warm-up, "
              f"{args.rounds} rounds, order alternating; {os.cpu_count()} CPUs", flush=True)
        for label, path in (("ours", args.ours_pythonpath), ("candidate", args.candidate)):
            if label == "candidate" and not path:
                continue
            where = subprocess.run(
                [str(venv / "bin" / "python"), "-c",
                 "import seldon_routers; print(seldon_routers.__file__)"],
                check=False, env=wrapper_env(venv, path), cwd=tmp, capture_output=True,
                text=True, timeout=60)
            if where.returncode != 0:
                raise BenchError(f"seldon_routers does not import in {venv} (PYTHONPATH "
                                 f"{path}):\n{where.stderr[-2000:]}")
            print(f"{label}: {where.stdout.strip()}", flush=True)
        args.manager_calls = manager_calls(venv, args, rows, tmp)
        for rnd in range(args.rounds):
            print(f"\n## round {rnd + 1} of {args.rounds}", flush=True)
            for row in rows:
                params, n, _ = ROWS[row]
                variants = servers(row, args)
                (tmp / "post.lua").write_text(LUA % {"body": serving.REQUEST_JSON, "n": n})
                order = list(variants.items())
                if rnd % 2:
                    order.reverse()
                for variant, (cls, path) in order:
                    res = run_one(f"{row} {variant}", cls, path, params, n, venv, args, tmp,
                                  current)
                    runs.setdefault(row, {}).setdefault(variant, []).append(res)
    except BenchError as e:
        print(f"\nERROR: {e}", file=sys.stderr)
        return 1
    finally:
        for srv in current:
            srv.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    return report(runs, args, rows)


def report(runs: dict, args, rows: list) -> int:
    problems = False
    print(f"\nResults (req/s of each run; median; ratio of medians to the plain class; "
          f"target for ours >= {TARGET:g}x)")
    configs = {json.dumps(r["wrapper_config"], sort_keys=True)
               for variants in runs.values() for rs in variants.values() for r in rs}
    for cfg in map(json.loads, sorted(configs)):
        print("  the wrapper ran with its defaults: " + (", ".join(
            f"{k}={v}" for k, v in cfg.items()) or "(not found in its log)"))
    print(f"  {'row':<16}{'variant':<17}{'class':<40}{'runs req/s':>18}{'median':>8}"
          f"{'/plain':>8}{'us/req':>8}{'/plain':>8}{'IPC':>5}")
    verdicts = []
    for row in rows:
        plain_med = statistics.median(r["rps"] for r in runs[row]["plain"])
        plain_cpu = statistics.median(r["server_cpu_us_per_req"] for r in runs[row]["plain"])
        for variant, rs in runs[row].items():
            med = statistics.median(r["rps"] for r in rs)
            cpu = statistics.median(r["server_cpu_us_per_req"] for r in rs)
            ratio = med / plain_med if plain_med else float("nan")
            bad = sorted({pr for r in rs for pr in r["problems"]})
            problems |= bool(bad)
            each = " ".join(f"{r['rps']:.0f}" for r in rs)
            line = (f"  {row:<16}{variant:<17}{rs[0]['cls']:<40}{each:>18}{med:>8.0f}"
                    f"{ratio:>7.2f}x{cpu:>8.0f}{cpu / plain_cpu:>7.2f}x"
                    f"{args.manager_calls.get((row, variant), '?'):>5}")
            if variant in ("ours", "candidate"):
                ok = ratio >= TARGET and not bad
                verdicts.append(ok)
                line += f"   {'PASS' if ok else 'FAIL'}"
            if bad:
                line += "   !! " + "; ".join(bad)
            print(line)
        for variant in ("ours", "candidate"):
            paired = [o["rps"] / pl["rps"] for o, pl in
                      zip(runs[row].get(variant, []), runs[row]["plain"]) if pl["rps"]]
            if paired:
                print(f"  {'':<16}({variant}/plain within each round: "
                      f"{', '.join(f'{x:.2f}' for x in paired)})")
    print("  req/s /plain: the verdict (median req/s over the plain class's); us/req: the "
          "server's CPU time per\n  request, all its processes (the Manager included), the "
          "steadier figure on a shared machine;\n  IPC: calls from the worker to the wrapper's "
          "metrics Manager process per Route (counted in process)")
    noisy = [r for variants in runs.values() for rs in variants.values() for r in rs
             if r["other_cpu_pct"] > 50]
    if noisy:
        print(f"  !! other work on the machine took over half a CPU during {len(noisy)} of the "
              f"runs (up to {max(r['other_cpu_pct'] for r in noisy):.0f}%): req/s is noisy; "
              "more --rounds help")
    if problems:
        print("\n!! some runs had failed calls; their figures are not valid")
    if args.json:
        path = Path(args.json) if args.json != "auto" else serving.RESULTS / (
            "wrapper-speed-" + _dt.datetime.now().strftime("%Y%m%d-%H%M%S") + ".json")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"date": _dt.datetime.now().isoformat(timespec="seconds"),
                                    "args": {k: v for k, v in vars(args).items() if k != "manager_calls"},
                                    "manager_calls": {f"{r}/{v}": n for (r, v), n in args.manager_calls.items()},
                                    "runs": runs}, indent=2, default=str) + "\n")
        print(f"\nresults written to {path}")
    return 1 if problems or not all(verdicts) else 0


if __name__ == "__main__":
    sys.exit(main())
