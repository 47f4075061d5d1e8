"""Start real router servers for tests: a `seldon-router serve` process on free ports."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import requests

from support import wait_until

# What the processes print goes to a file each, not a pipe: nobody reads a pipe while a test
# runs (a full one blocks the server), and a file can be read after the process is gone.
_LOGS = Path(tempfile.mkdtemp(prefix="seldon-router-tests-"))
atexit.register(shutil.rmtree, _LOGS, ignore_errors=True)


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
    log: Optional[Path] = None  # stdout and stderr, together

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    def output(self) -> str:
        """What the process has printed so far (stdout and stderr)."""
        return self.log.read_text(errors="replace") if self.log is not None else ""

    def stop(self, sig=signal.SIGTERM, timeout=15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode


def wait_http(url: str, proc: subprocess.Popen | None = None, timeout: float = 30, output=None) -> None:
    """Until GET url answers 200; RuntimeError, with what it printed (`output()`), if
    `proc` exits first."""

    def answers() -> bool:
        if proc is not None and proc.poll() is not None:
            printed = output() if output is not None else ""
            raise RuntimeError(f"server exited with {proc.returncode}: {printed}")
        try:
            return requests.get(url, timeout=1).status_code == 200
        except requests.RequestException:
            return False

    wait_until(answers, timeout, 0.1, f"{url} answering 200")


def start_router(*args: str, env: dict | None = None, cwd: str | None = None,
                 ready: str = "/ready") -> RouterProcess:
    """Runs `seldon-router serve ARGS...` on free ports and waits until `ready` answers 200
    (/live for a router that is up but rightly not ready)."""
    http, grpc_, metrics = free_port(), free_port(), free_port()
    cmd = [sys.executable, "-m", "seldon_routers.cli", "serve", *args, "--host", "127.0.0.1",
           "--http-port", str(http), "--grpc-port", str(grpc_), "--metrics-port", str(metrics)]
    fd, name = tempfile.mkstemp(prefix="serve-", suffix=".log", dir=_LOGS)
    log = Path(name)
    with open(fd, "wb") as out:
        proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, cwd=cwd, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    rp = RouterProcess(proc, http, grpc_, metrics, log)
    try:
        wait_http(rp.url + ready, proc, output=rp.output)
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

