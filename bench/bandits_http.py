#!/usr/bin/env python3
"""The same regret through a real server: `seldon-router serve thompson-sampling` over REST
against the same router in-process, on the same reward streams.

Chapelle & Li's setting (10 arms, best 0.5, others 0.4, the best arm's position drawn per
seed). For each seed, a fresh server process is started with the seed the simulator gives
the in-process router for that repetition, then driven step by step:
POST /route {"data": {"ndarray": [[0.0]]}}, and POST /send-feedback with that request, the
route reply as `response` (so `meta.routing` names the arm) and the arm's reward from the
shared stream. The in-process run calls route() and send_feedback() on the same streams.
Printed: the regret of both (mean ± SE), their paired difference, whether they agree within
noise (|mean difference| <= 2 SE, or identical), and the share of identical decisions.

    python bench/bandits_http.py                 # 5 seeds x 10^4 steps, ~1-2 minutes
    python bench/bandits_http.py --seeds 3 --horizon 2000

Needs the server extra (pip install -e '.[server]').
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np

from seldon_routers.simulate import Bernoulli, Policy, policy_seed, run_policy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """`seldon-router serve ROUTER --param ...` on free ports, in its own session."""

    def __init__(self, router: str, params: dict):
        self.http_port = free_port()
        cmd = [sys.executable, "-m", "seldon_routers.cli", "serve", router, "--host", "127.0.0.1",
               "--http-port", str(self.http_port), "--grpc-port", str(free_port()),
               "--metrics-port", str(free_port()), "--log-level", "warning"]
        for name, value in params.items():
            cmd += ["--param", f"{name}={value}"]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                     start_new_session=True)
        deadline = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.proc.stderr.read()}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=1)
                conn.request("GET", "/ready")
                if conn.getresponse().status == 200:
                    conn.close()
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError("server not ready after 30 s")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


class RestRouter:
    """A router whose route() and send_feedback() are REST calls to a server."""

    def __init__(self, port: int):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        self.last = None  # (request body, route reply) of the last route, for its feedback

    def _post(self, path: str, body: dict) -> dict:
        self.conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        reply = self.conn.getresponse()
        data = reply.read()
        if reply.status != 200:
            raise RuntimeError(f"{path}: HTTP {reply.status}: {data[:300]!r}")
        return json.loads(data)

    def route(self, features, feature_names):
        request = {"data": {"ndarray": features.tolist()}}
        reply = self._post("/route", request)
        child = reply["data"]["ndarray"][0][0]
        if list(reply["meta"]["routing"].values()) != [child]:
            raise RuntimeError(f"meta.routing {reply['meta']['routing']} does not match route {child}")
        self.last = (request, reply)
        return int(child)

    def send_feedback(self, features, feature_names, reward, truth, routing=None):
        request, reply = self.last
        self._post("/send-feedback", {"request": request, "response": reply, "reward": reward})


def mean_se(values):
    values = np.asarray(values, dtype=float)
    return float(values.mean()), float(values.std(ddof=1) / math.sqrt(len(values))) if len(values) > 1 else 0.0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--router", default="thompson-sampling")
    ap.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                    help="router parameter, for both the server and the in-process router")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--horizon", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    params = dict(p.split("=", 1) for p in args.param)
    env = Bernoulli([0.5] + [0.4] * 9, shuffle=True)
    T = args.horizon
    print(f"{args.router} over REST vs in-process: {env.describe()}; {args.seeds} seeds x {T} steps, seed {args.seed}")
    print(f"{'seed':>4}  {'REST regret':>11}  {'in-process':>10}  {'same decisions':>14}  {'REST steps/s':>12}")
    rest, local, same = [], [], []
    for rep in range(args.seeds):
        stream = env.sample(T, args.seed, rep)
        seed = policy_seed(args.seed, rep)
        server = Server(args.router, {**params, "n_branches": env.n_arms, "seed": seed})
        try:
            started = time.perf_counter()
            over_rest = run_policy(RestRouter(server.http_port), stream, label=f"{args.router} over REST")
            rate = T / (time.perf_counter() - started)
        finally:
            server.stop()
        router = Policy(args.router, dict(params)).make(env.n_arms, seed)
        in_process = run_policy(router, stream, label=args.router)
        rest.append(stream.pseudo_regret(over_rest).sum())
        local.append(stream.pseudo_regret(in_process).sum())
        same.append(float(np.mean(over_rest == in_process)))
        print(f"{rep:>4}  {rest[-1]:>11.1f}  {local[-1]:>10.1f}  {same[-1]:>13.1%}  {rate:>12.0f}", flush=True)
    (rm, rse), (lm, lse) = mean_se(rest), mean_se(local)
    dm, dse = mean_se(np.subtract(rest, local))
    identical = all(s == 1.0 for s in same)
    agree = identical or abs(dm) <= 2 * dse
    print(f"\nregret at T={T}: REST {rm:.1f} ± {rse:.1f}, in-process {lm:.1f} ± {lse:.1f}; "
          f"paired difference {dm:+.1f} ± {dse:.1f}")
    verdict = ("identical decisions at every step" if identical
               else f"{np.mean(same):.1%} of decisions identical; difference within 2 SE: {'yes' if agree else 'no'}")
    print(f"{'PASS' if agree else 'FAIL'}  REST and in-process agree: {verdict}")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
