"""The unit processes of a graph: each with the environment Seldon's operator gives its
container, on free local ports, stopped with the runner (SIGTERM to each process group,
then SIGKILL; on Linux they also get SIGTERM if the runner itself dies).

ROUTER units run this checkout's `seldon-router serve` (whatever their `image:`), named by
the container's ROUTER or MODEL_NAME (default ab-test, as this project's image). Other
units that the executor calls run stub_model (a stub, or `--unit NAME=module.Class`). A unit
given as `--unit NAME=http://host:port` is called there and not started.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import seldon_routers

from ..errors import ConfigError
from .deployment import Predictor, Unit, parameters_json

CHECKOUT = str(Path(seldon_routers.__file__).resolve().parent.parent)
IMAGE_WORKDIR = "/app"
# A unit's own variables (Seldon's operator sets them per container, this project's serve and
# the stub read them): never inherited from the runner's shell, only from the unit's container
# and the operator's values below.
UNIT_VARIABLES = frozenset({"MODEL_NAME", "ROUTER", "SERVICE_TYPE", "PERSISTENCE", "API_TYPE",
                            "SELDON_DEPLOYMENT_ID", "PREDICTOR_ID", "PREDICTOR_LABELS"})
UNIT_PREFIXES = ("PREDICTIVE_UNIT_", "SELDON_ROUTER_")


def inherited_env(environ=None) -> dict:
    """The runner's environment less the unit variables (UNIT_VARIABLES, UNIT_PREFIXES)."""
    environ = os.environ if environ is None else environ
    return {k: v for k, v in environ.items() if k not in UNIT_VARIABLES and not k.startswith(UNIT_PREFIXES)}  # this project's image's WORKDIR: container paths under it are the checkout's


@dataclass
class Running:
    unit: Unit
    url: str
    proc: Optional[subprocess.Popen] = None
    log: Optional[Path] = None
    ready: str = ""  # the path that answers 200 once it serves

    def output(self, last: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-last:] if self.log else ""


def free_port(reserved=()) -> int:
    """A port free now and not in `reserved` (the runner's own, which it binds only after
    the units are up: a unit must not take it meanwhile)."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in reserved:
            return port


def _die_with_parent() -> None:
    try:  # PR_SET_PDEATHSIG (Linux): no orphan even when the runner is SIGKILLed
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


class Launcher:
    def __init__(self, predictor: Predictor, overrides: dict, workdir: str = ".", log_dir: Optional[str] = None,
                 start_timeout: float = 60.0, reserved=()):
        unknown = sorted(set(overrides) - {u.name for u in predictor.units()})
        if unknown:
            raise ConfigError(f"--unit: the graph has no unit {unknown[0]!r} "
                              f"(it has {[u.name for u in predictor.units()]})")
        self.predictor, self.overrides = predictor, overrides
        self.workdir = os.path.abspath(workdir)
        self.log_dir = Path(log_dir or tempfile.mkdtemp(prefix="seldon-graph-"))
        self.state_dir = Path(tempfile.mkdtemp(prefix="state-", dir=self.log_dir))
        self.start_timeout = start_timeout
        self.reserved = frozenset(reserved)
        self.running: list[Running] = []

    def pids(self) -> dict:
        return {r.unit.name: r.proc.pid for r in self.running if r.proc is not None}

    def urls(self) -> dict:
        return {r.unit.name: r.url for r in self.running}

    def start(self) -> dict:
        """Starts every unit the executor calls, waits until each is ready; {name: url}."""
        try:
            for unit in self.predictor.units():
                if unit.needs_server:
                    self.running.append(self._start(unit))
            for i, r in enumerate(self.running):
                for attempt in range(3):
                    try:
                        self._wait(r)
                        break
                    except ConfigError:
                        # A port found free can be taken before the unit binds it: new ports.
                        if attempt == 2 or "address already in use" not in r.output().lower():
                            raise
                        r = self.running[i] = self._start(r.unit)
        except BaseException:
            self.stop()
            raise
        return self.urls()

    def _start(self, unit: Unit) -> Running:
        spec = self.overrides.get(unit.name, "")
        if spec.startswith(("http://", "https://")):
            return Running(unit, spec.rstrip("/"))
        http, grpc_, metrics = (free_port(self.reserved) for _ in range(3))
        env = {**inherited_env(), **self._container_env(unit)}
        env.update({
            "PREDICTIVE_UNIT_ID": unit.name,
            "PREDICTIVE_UNIT_PARAMETERS": parameters_json(unit),
            "PREDICTIVE_UNIT_HTTP_SERVICE_PORT": str(http),
            "PREDICTIVE_UNIT_GRPC_SERVICE_PORT": str(grpc_),
            "PREDICTIVE_UNIT_METRICS_SERVICE_PORT": str(metrics),
            "PREDICTIVE_UNIT_IMAGE": unit.image,
            "SELDON_DEPLOYMENT_ID": self.predictor.deployment,
            "PREDICTOR_ID": self.predictor.name,
        })
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [CHECKOUT, env.get("PYTHONPATH", "")]))
        if unit.calls_route:
            if spec:  # --unit NAME=ROUTER: that router, whatever the container says
                env["MODEL_NAME"] = spec
            elif not env.get("MODEL_NAME") and not env.get("ROUTER"):
                env["ROUTER"] = "ab-test"
            cmd = [sys.executable, "-m", "seldon_routers.cli", "serve", "--host", "127.0.0.1"]
            ready = "/ready"
        else:
            env.pop("MODEL_NAME", None)  # a Seldon model image's class is not here: the stub
            if spec:
                env["MODEL_NAME"] = spec
            cmd = [sys.executable, "-m", "seldon_routers.graph.stub_model"]
            ready = "/health/ping"
        log = self.log_dir / f"{unit.name}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(cmd, env=env, cwd=self.workdir, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True,
                                    preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
        return Running(unit, f"http://127.0.0.1:{http}", proc, log, ready)

    def _container_env(self, unit: Unit) -> dict:
        env = dict(unit.env)
        if "PYTHONPATH" in env:  # the image's /app is this checkout (or --workdir)
            env["PYTHONPATH"] = os.pathsep.join(
                self.workdir + p[len(IMAGE_WORKDIR):] if p == IMAGE_WORKDIR or p.startswith(IMAGE_WORKDIR + "/")
                else p for p in env["PYTHONPATH"].split(os.pathsep))
        state = env.get("SELDON_ROUTER_STATE", "")
        if state.startswith("file:"):  # volumes are not mounted here: a snapshot of the run's own
            env["SELDON_ROUTER_STATE"] = f"file:{self.state_dir / (unit.name + '.json')}"
        return env

    def _wait(self, r: Running) -> None:
        if r.proc is None:
            return
        import httpx

        deadline = time.monotonic() + self.start_timeout
        while True:
            if r.proc.poll() is not None:
                raise ConfigError(f"unit {r.unit.name}: exited with status {r.proc.returncode} while starting; "
                                  f"it printed:\n{r.output()}")
            try:
                if httpx.get(r.url + r.ready, timeout=1, trust_env=False).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise ConfigError(f"unit {r.unit.name}: not ready within {self.start_timeout:.0f}s "
                                  f"({r.url}{r.ready}); it printed:\n{r.output()}")
            time.sleep(0.1)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM to every unit started, then SIGKILL to those still up after `timeout`."""
        # Every group started, its leader alive or not: a unit's workers outlive its main process.
        procs = [r.proc for r in self.running if r.proc is not None]
        for proc in procs:
            _signal(proc, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for proc in procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            while _group_alive(proc) and time.monotonic() < deadline:
                time.sleep(0.05)
            _signal(proc, signal.SIGKILL)  # what is left of the group, if anything
            proc.wait()


def _group_alive(proc: subprocess.Popen) -> bool:
    try:
        os.killpg(proc.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal(proc: subprocess.Popen, sig: int) -> None:
    try:
        os.killpg(proc.pid, sig)  # the unit and anything it started (workers)
    except ProcessLookupError:
        pass
