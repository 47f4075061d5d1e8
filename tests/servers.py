"""Start real router servers for tests: a `seldon-router serve` process on free ports."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass

import requests


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RouterProcess:
    proc: subprocess.Popen
    http_port: int
    grpc_port: int
    metrics_port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def stop(self, sig=signal.SIGTERM, timeout=15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode


def wait_http(url: str, proc: subprocess.Popen | None = None, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {proc.stderr and proc.stderr.read()}")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{url} not ready after {timeout}s")


def start_router(*args: str, env: dict | None = None, cwd: str | None = None) -> RouterProcess:
    """Runs `seldon-router serve ARGS...` on free ports and waits until /ready answers."""
    http, grpc_, metrics = free_port(), free_port(), free_port()
    cmd = [sys.executable, "-m", "seldon_routers.cli", "serve", *args,
           "--host", "127.0.0.1", "--http-port", str(http), "--grpc-port", str(grpc_),
           "--metrics-port", str(metrics)]
    proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    rp = RouterProcess(proc, http, grpc_, metrics)
    try:
        wait_http(rp.url + "/ready", proc)
    except Exception:
        rp.stop(signal.SIGKILL)
        raise
    return rp


@contextlib.contextmanager
def running_router(*args: str, env: dict | None = None, cwd: str | None = None):
    rp = start_router(*args, env=env, cwd=cwd)
    try:
        yield rp
    finally:
        rp.stop()
