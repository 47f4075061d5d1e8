"""Router processes for the state-store tests, and what the tests send them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import requests

import servers

REPO = Path(__file__).resolve().parent.parent.parent
# A router's output goes to a log file (tests/servers.py): keep it small.
QUIET = ("--log-level", "warning")


def serve(*args: str, ready: str = "/ready", attempts: int = 3) -> servers.RouterProcess:
    """`seldon-router serve ARGS` on free ports (tests/servers.py), waiting for `ready`
    (/live for a router that is up but not ready); retried, since a port found free can
    be taken before the server binds it."""
    for attempt in range(attempts):
        try:
            return servers.start_router(*args, *QUIET, cwd=str(REPO), ready=ready)
        except (RuntimeError, TimeoutError) as exc:
            if "cannot listen" not in str(exc) or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def refused(*args: str, timeout: float = 20) -> subprocess.CompletedProcess:
    """`seldon-router serve ARGS` that must not start: its exit status and output."""
    cmd = [sys.executable, "-m", "seldon_routers.cli", "serve", *args, *QUIET, "--host", "127.0.0.1",
           "--http-port", str(servers.free_port()), "--grpc-port", str(servers.free_port()),
           "--metrics-port", str(servers.free_port())]
    return subprocess.run(cmd, cwd=str(REPO), capture_output=True, text=True, timeout=timeout)


def state(rp) -> dict:
    r = requests.get(rp.url + "/state", timeout=5)
    assert r.status_code == 200, r.text
    return r.json()


def route(rp, body=None, **kw) -> requests.Response:
    return requests.post(rp.url + "/route", json=body or {"data": {"ndarray": [[1.0, 2.0]]}}, timeout=10, **kw)


def send_feedback(rp, unit: str, arm: int, reward: float, puid: str = "", rows=None) -> requests.Response:
    """Feedback as Seldon's executor sends it: the request, the Route reply's meta, a reward."""
    request = {"data": {"ndarray": rows or [[1.0, 2.0]]}}
    response = {"meta": {"routing": {unit: arm}}}
    if puid:
        request["meta"] = {"puid": puid}
        response["meta"]["puid"] = puid
    return requests.post(rp.url + "/send-feedback", json={"request": request, "response": response, "reward": reward},
                         timeout=30)

