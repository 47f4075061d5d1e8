"""The graph runner as its users run it: `seldon-router graph run FILE` in a process of its
own, on a free port, with its units (real `seldon-router serve` routers, the stub model, or
the test doubles of doubles.py given by --unit NAME=URL)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import requests
import yaml

from servers import free_port, wait_http

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
INJECT = {"SELDON_ENABLE_ROUTING_INJECTION": "1"}


class Runner:
    def __init__(self, deployment, units: dict | None = None, env: dict | None = None, args=()):
        self.dir = Path(tempfile.mkdtemp(prefix="graph-test-"))
        if isinstance(deployment, dict):
            path = self.dir / "seldondeployment.yaml"
            path.write_text(yaml.safe_dump(deployment))
        else:
            path = Path(deployment)
        self.port = free_port()
        self.http = requests.Session()  # keep-alive: hundreds of calls in a test
        cmd = [sys.executable, "-m", "seldon_routers.cli", "graph", "run", str(path), "--port", str(self.port),
               "--log-dir", str(self.dir), "--log-level", "warning", *args]
        for name, spec in (units or {}).items():
            cmd += ["--unit", f"{name}={spec}"]
        self.log = self.dir / "runner.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_http(self.url + "/ready", self.proc, timeout=120, output=self.output)
        except BaseException:
            self.stop()
            raise

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        logs = [p.read_text(errors="replace") for p in sorted(self.dir.glob("*.log"))]
        return "\n".join(logs)[-6000:]

    def units(self) -> dict:
        return self.http.get(self.url + "/graph", timeout=10).json()["units"]

    def predict(self, message: dict, headers: dict | None = None) -> requests.Response:
        return self.http.post(self.url + "/api/v1.0/predictions", json=message, headers=headers or {}, timeout=30)

    def feedback(self, feedback: dict, headers: dict | None = None) -> requests.Response:
        return self.http.post(self.url + "/api/v1.0/feedback", json=feedback, headers=headers or {}, timeout=30)

    def stop(self, sig=signal.SIGTERM) -> int:
        self.http.close()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        return self.proc.returncode


def deployment(graph: dict, name: str = "test-graph", annotations: dict | None = None,
               containers: list | None = None) -> dict:
    """A SeldonDeployment with one predictor `default` around `graph`."""
    predictor = {"name": "default", "graph": graph,
                 "componentSpecs": [{"spec": {"containers": containers or []}}]}
    if annotations:
        predictor["annotations"] = annotations
    return {"apiVersion": "machinelearning.seldon.io/v1", "kind": "SeldonDeployment",
            "metadata": {"name": name}, "spec": {"name": name, "predictors": [predictor]}}


def unit(name: str, type_: str, *children, **extra) -> dict:
    return {"name": name, "type": type_, "endpoint": {"type": "REST"}, "children": list(children), **extra}
