"""Helpers that drive the real Seldon peers from the tests: commands run with the Seldon
venv's python, and `seldon-core-microservice` run as a process group."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import requests

from servers import RouterProcess, free_port
from support import wait_until

SELDON_SIDE = Path(__file__).resolve().parent / "seldon_side.py"
REPO = Path(__file__).resolve().parents[2]


def peer_env(**extra: str) -> dict:
    # Our own environment's PYTHONPATH must not leak numpy 2 / protobuf 5 into the venv.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(extra)
    return env


def seldon_side(python: Path, *args: str, timeout: float = 120):
    """Runs seldon_side.py in the Seldon venv and returns the JSON it prints."""
    proc = subprocess.run([str(python), str(SELDON_SIDE), *args], capture_output=True, text=True,
                          timeout=timeout, env=peer_env(), cwd=tempfile.gettempdir())
    assert proc.returncode == 0, f"seldon_side.py {args} failed:\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)  # anyone left in the group?
    except ProcessLookupError:
        return False
    return True


def route_value(message: dict) -> int:
    """The route in a SeldonMessage dict, read the way the executor reads it: first value
    of data.ndarray ([[N]] or [N]) or of data.tensor.values."""
    data = message["data"]
    if "ndarray" in data:
        first = data["ndarray"][0]
        value = first[0] if isinstance(first, list) else first
    else:
        value = data["tensor"]["values"][0]
    assert float(value).is_integer(), f"route {value!r} is not an integer"
    return int(value)


@dataclass
class Microservice(RouterProcess):
    log_path: Path = Path("/dev/null")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def stop(self, timeout: float = 15) -> None:
        """Stops the whole group: gunicorn master and workers, metrics server, gRPC process."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout)
        with contextlib.suppress(TimeoutError):
            wait_until(lambda: not _group_alive(self.proc.pid), timeout, 0.1, "the process group gone")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


@contextlib.contextmanager
def seldon_microservice(venv: Path, interface: str, parameters: list, unit_id: str = "router",
                        service_type: str = "ROUTER", ready_timeout: float = 60, modules: dict | None = None):
    """`seldon-core-microservice INTERFACE --service-type ROUTER` on free ports, ready when
    /health/ping answers. The wrapper reads the unit's name (the key of meta.routing in
    feedback) from PREDICTIVE_UNIT_ID when it is imported, so that is set in its env.
    `modules` ({file name: source}) are written to its working directory, where the wrapper
    imports a user's class from, as in a user's image."""
    http, grpc_, metrics = free_port(), free_port(), free_port()
    with tempfile.TemporaryDirectory() as tmp:
        for name, source in (modules or {}).items():
            Path(tmp, name).write_text(source)
        log_path = Path(tmp) / "microservice.log"
        cmd = [str(venv / "bin" / "seldon-core-microservice"), interface,
               "--service-type", service_type, "--parameters", json.dumps(parameters),
               "--http-port", str(http), "--grpc-port", str(grpc_), "--metrics-port", str(metrics)]
        with open(log_path, "wb") as log:
            # A log file, not a pipe: nobody reads a pipe while the test runs, and a full
            # one would block the server. The cwd is empty because the wrapper appends the
            # cwd to sys.path: the installed package must be what it imports, not the checkout.
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=tmp,
                                    env=peer_env(PREDICTIVE_UNIT_ID=unit_id),
                                    start_new_session=True)
        ms = Microservice(proc, http, grpc_, metrics, log_path)
        try:
            def ready() -> bool:
                if proc.poll() is not None:
                    raise RuntimeError(f"seldon-core-microservice exited with {proc.returncode}:\n{ms.log()}")
                try:
                    return requests.get(ms.url + "/health/ping", timeout=1).status_code == 200
                except requests.RequestException:
                    return False

            try:
                wait_until(ready, ready_timeout, 0.2, "seldon-core-microservice answering /health/ping")
            except TimeoutError as exc:
                raise TimeoutError(f"{exc}:\n{ms.log()}") from None
            yield ms
        finally:
            ms.stop()
