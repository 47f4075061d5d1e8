"""What the gateway-beside-its-peers benchmarks share (bench/gateway_peers.py,
bench/gateway_prefix.py): child processes with their output in a file, readiness, starting our
gateway or a peer router (sglang-router, vllm-router, litellm, each in /work/peers/<name>, see
bench/setup_peers.sh) over a list of pod ports, and the re-exec in a loopback-only network
namespace, so that nothing the peers try to fetch leaves the machine.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from typing import Callable, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEERS = os.environ.get("PEERS_DIR", "/work/peers")
PY = sys.executable
GATEWAY_PORT, PEER_PORT, PROM_PORT = 18888, 18900, 18990
BODY = {"model": "llama", "messages": [{"role": "user", "content": "Say hi"}], "max_tokens": 8}
LITELLM_KEY = "sk-bench"  # litellm's proxy refuses to start without a master key; clients send it as bearer
AUTH = {"authorization": f"Bearer {LITELLM_KEY}"}  # harmless to the routers that ignore it
_NETNS = "BENCH_NETNS"


class Proc:
    """A child process, its output in a file (read back when it misbehaves)."""

    def __init__(self, name: str, cmd: list, env: dict | None = None):
        self.name = name
        self.log = tempfile.NamedTemporaryFile("w+", prefix=f"{name.replace(' ', '_')}-", suffix=".log", delete=False)
        self.p = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
                                  start_new_session=True)

    def tail(self, n: int = 15) -> str:
        self.log.flush()
        with open(self.log.name, errors="replace") as f:
            return "".join(f.readlines()[-n:])

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


def wait_ready(url: str, proc: Proc, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.p.poll() is not None:
            raise RuntimeError(f"{proc.name} exited {proc.p.returncode}:\n{proc.tail()}")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status < 400:
                    return
        except OSError:  # not up yet
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{proc.name} not ready after {timeout:g} s:\n{proc.tail()}")


def start_pods(ports, command: Callable[[int], list]) -> list:
    """One pod process a port (command(port): its argv), each answering /health."""
    pods = [Proc(f"pod-{p}", command(p)) for p in ports]
    try:
        for port, pod in zip(ports, pods):
            wait_ready(f"http://127.0.0.1:{port}/health", pod)
    except RuntimeError:
        for pod in pods:
            pod.stop()
        raise
    return pods


def _config_file(doc: dict) -> str:
    cfg = tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False)
    json.dump(doc, cfg)  # JSON is YAML
    cfg.close()
    return cfg.name


def start_router(kind: str, policy: str, ports, log_level: str = "warning",
                 parameters: Optional[dict] = None) -> tuple[Proc, str]:
    """Our gateway (kind "gateway", policy its strategy, parameters the router's), sglang-router,
    vllm-router (policy theirs) or litellm (policy its routing_strategy) over the pods on
    `ports`; (its process, its base URL) once it answers a real chat request."""
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    timeout = 30.0
    if kind == "gateway":
        doc = {"port": GATEWAY_PORT, "strategy": policy, "log_requests": False,
               "pods": [{"name": chr(97 + i), "url": u, "models": ["llama"]} for i, u in enumerate(urls)]}
        if parameters:
            doc["parameters"] = parameters
        proc = Proc(f"gateway {policy}", [PY, "-m", "seldon_routers.cli", "gateway", "--config", _config_file(doc),
                                          "--log-level", log_level], env={"PYTHONPATH": ROOT})
        port = GATEWAY_PORT
    elif kind == "litellm":
        exe = os.path.join(PEERS, "litellm", "bin", "litellm")
        if not os.path.exists(exe):
            raise RuntimeError(f"not installed ({exe}): run bash bench/setup_peers.sh litellm")
        doc = {"model_list": [{"model_name": "llama",
                               "litellm_params": {"model": "openai/llama", "api_base": u + "/v1", "api_key": "x",
                                                  "rpm": 1_000_000, "tpm": 1_000_000_000}} for u in urls],
               "router_settings": {"routing_strategy": policy}, "litellm_settings": {"telemetry": False},
               "general_settings": {"master_key": LITELLM_KEY}}
        # the local cost map: no price list fetched at import
        proc = Proc(f"litellm {policy}", [exe, "--config", _config_file(doc), "--host", "127.0.0.1", "--port",
                                          str(PEER_PORT)],
                    env={"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR"})
        port, timeout = PEER_PORT, 90.0  # 7-11 s to import on 2 idle cores
    else:
        venv = os.path.join(PEERS, f"{kind}-router")
        if kind == "vllm":
            cmd = [os.path.join(venv, "bin", "vllm-router"), "--log-level", "warning"]
        else:
            cmd = [os.path.join(venv, "bin", "python"), "-m", "sglang_router.launch_router", "--log-level", "warn"]
        if not os.path.exists(cmd[0]):
            raise RuntimeError(f"not installed ({cmd[0]}): run bash bench/setup_peers.sh")
        cmd += ["--host", "127.0.0.1", "--port", str(PEER_PORT), "--worker-urls", *urls, "--policy", policy,
                "--prometheus-host", "127.0.0.1", "--prometheus-port", str(PROM_PORT)]
        # sglang-router fetches a tokenizer unless the hub points at a closed port
        proc = Proc(f"{kind}-router {policy}", cmd, env={"HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_OFFLINE": "1"})
        port = PEER_PORT
    return proc, answering(proc, port, timeout)


def answering(proc: Proc, port: int, timeout: float) -> str:
    """The router's base URL once it answers a real request (its workers registered, not just
    its port open); stopped and a RuntimeError if it does not within `timeout` s."""
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        try:
            post(base + "/v1/chat/completions", BODY)
            return base
        except Exception as exc:  # noqa: BLE001
            if proc.p.poll() is not None or time.monotonic() > deadline:
                proc.stop()
                raise RuntimeError(f"{proc.name} not serving ({exc}):\n{proc.tail()}") from None
            time.sleep(0.2)


def post(url: str, body: dict) -> bytes:
    req = urllib.request.Request(url, json.dumps(body).encode(), {"content-type": "application/json", **AUTH})
    with urllib.request.urlopen(req, timeout=5) as r:
        return r.read()


def pct(xs: list, q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else float("nan")


def in_netns(script: str, argv: Optional[list], args) -> Optional[int]:
    """Runs `script` again inside a loopback-only network namespace (pods, routers and load on a
    loopback that leads nowhere) and returns its exit status; None when already inside one, or
    when args.no_netns."""
    if os.environ.get(_NETNS) == "1" or args.no_netns:
        return None
    if shutil.which("unshare") is None:
        print("unshare not found: pass --no-netns", file=sys.stderr)
        return 2
    cmd = ["unshare", "-n", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", PY, os.path.abspath(script),
           *(argv if argv is not None else sys.argv[1:])]
    return subprocess.call(cmd, env={**os.environ, _NETNS: "1"})


class Checks(list):
    """The verdicts against a benchmark's targets, each printed as it comes: PASS, FAIL, or n/a
    (ok None: what it compares did not run)."""

    def __call__(self, label: str, ok: Optional[bool], detail: str) -> None:
        verdict = "n/a " if ok is None else ("PASS" if ok else "FAIL")
        print(f"  {verdict} {label}: {detail}")
        self.append({"check": label, "pass": ok, "detail": detail})


def common_args(ap) -> None:
    """The options every side-by-side benchmark has."""
    ap.add_argument("--only", action="append", help="run the targets whose name contains this (repeatable)")
    ap.add_argument("--log-level", default="warning", help="the gateway's")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results"))
    ap.add_argument("--no-netns", action="store_true", help="do not re-exec in a loopback-only namespace")


def pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def write_results(out: str, stem: str, summary: dict, plot: Callable[[str], None]) -> int:
    """<out>/<stem>.json and, when matplotlib imports, plot(<out>/<stem>.png); the exit status
    (1 if a check failed)."""
    os.makedirs(out, exist_ok=True)
    path = os.path.join(out, f"{stem}.json")
    with open(path, "w") as f:
        json.dump(summary, f, indent=1, default=str)
    print(f"\n{summary['seconds']:.0f} s; wrote {path}")
    try:
        plot(os.path.join(out, f"{stem}.png"))
        print(f"wrote {os.path.join(out, f'{stem}.png')}")
    except ImportError:
        print("(no plot: matplotlib is not installed)")
    return 1 if any(c["pass"] is False for c in summary.get("checks", ())) else 0
