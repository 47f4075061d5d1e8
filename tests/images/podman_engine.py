"""Real podman for the image tests: the engine (scripts/container_engine.sh), builds, and
containers on the host network with free ports (so that a test never collides with anything
else listening here)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests

from servers import Addresses, free_port
from support import IMAGES, unavailable, wait_until

ROOT = Path(__file__).resolve().parents[2]
BASE = os.environ.get("SELDON_ROUTERS_BASE_IMAGE", "localhost/base-python:bookworm")
HINT = "bash scripts/container_engine.sh installs podman and bootstraps the base (Debian/Ubuntu, as root)"


def engine_env() -> dict:
    """The environment podman runs in here: CONTAINERS_CONF from the engine script. Skips
    (fails where SELDON_ROUTERS_REQUIRE_IMAGES=1) when there is no working engine."""
    if shutil.which("podman") is None:
        unavailable(f"podman is not on PATH: {HINT}", IMAGES)
    env = dict(os.environ)
    if not env.get("CONTAINERS_CONF"):  # set: a podman configured already (yours, or .ci/run's)
        # Installs nothing: writes the containers.conf, bootstraps the base once if it is missing.
        done = subprocess.run(["bash", str(ROOT / "scripts" / "container_engine.sh")], env={**env, "NO_INSTALL": "1"},
                              capture_output=True, text=True)
        if done.returncode != 0:
            unavailable(f"scripts/container_engine.sh failed: {done.stderr.strip()[-2000:]}: {HINT}", IMAGES)
        env["CONTAINERS_CONF"] = done.stdout.strip().splitlines()[-1]
    return env


class Podman:
    def __init__(self, env: dict):
        self.env = env

    def __call__(self, *args: str, check: bool = True, timeout: float = 900, **kw) -> subprocess.CompletedProcess:
        done = subprocess.run(["podman", *args], env=self.env, capture_output=True, text=True, timeout=timeout, **kw)
        if check and done.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)} -> {done.returncode}:\n{done.stdout[-3000:]}\n"
                                 f"{done.stderr[-3000:]}")
        return done

    def build(self, tag: str, dockerfile: str, *args: str, context: Path = ROOT) -> str:
        """Builds in the docker format (OCI drops HEALTHCHECK); the layer cache makes a rebuild cheap."""
        self("build", "--format", "docker", "-f", dockerfile, "-t", tag,
             "--build-arg", f"BASE_IMAGE={BASE}", *args, str(context))
        return tag

    def size_mb(self, image: str) -> float:
        return int(self("image", "inspect", image, "--format", "{{.Size}}").stdout.strip()) / 1e6

    def run(self, image: str, *args: str, env: dict | None = None, ready: str = "/ready") -> Container:
        """Starts `image` detached on the host network, its three ports free ones (Seldon's
        PREDICTIVE_UNIT_*_PORT variables), and waits until GET `ready` answers 200."""
        c = Container(self, free_port(), free_port(), free_port())
        ports = {"PREDICTIVE_UNIT_HTTP_SERVICE_PORT": c.http_port, "PREDICTIVE_UNIT_GRPC_SERVICE_PORT": c.grpc_port,
                 "PREDICTIVE_UNIT_METRICS_SERVICE_PORT": c.metrics_port}
        flags = [f"--env={k}={v}" for k, v in {**ports, **(env or {})}.items()]
        c.id = self("run", "-d", "--network=host", *flags, *args, image).stdout.strip()
        if ready:
            try:
                c.wait_ready(ready)
            except BaseException:
                c.remove()
                raise
        return c


@dataclass
class Container(Addresses):
    podman: Podman
    http_port: int
    grpc_port: int
    metrics_port: int
    id: str = ""
    stopped_in: float = field(default=0.0)

    def logs(self) -> str:
        done = self.podman("logs", self.id, check=False)
        return done.stdout + done.stderr

    def state(self) -> dict:
        out = self.podman("inspect", self.id, "--format", "{{.State.Status}} {{.State.ExitCode}}").stdout.split()
        return {"status": out[0], "exit_code": int(out[1])}

    def wait_ready(self, path: str = "/ready", timeout: float = 60) -> None:
        def up():
            if self.state()["status"] == "exited":
                raise RuntimeError(f"container exited {self.state()['exit_code']}:\n{self.logs()[-3000:]}")
            try:
                return requests.get(self.url + path, timeout=1).status_code == 200
            except requests.RequestException:
                return False
        wait_until(up, timeout, 0.2, f"{self.url}{path} answering 200")

    def exec(self, *cmd: str) -> str:
        return self.podman("exec", self.id, *cmd).stdout

    def stop(self, grace: int = 10) -> int:
        """podman stop: SIGTERM, then SIGKILL after `grace` s; returns the exit code."""
        start = time.monotonic()
        self.podman("stop", "-t", str(grace), self.id)
        self.stopped_in = time.monotonic() - start
        return self.state()["exit_code"]

    def remove(self) -> None:
        self.podman("rm", "-f", "-t", "2", self.id, check=False)


def wait_exit(container: Container, timeout: float = 60) -> dict:
    """The container's state once it has exited on its own."""
    return wait_until(lambda: (s := container.state())["status"] == "exited" and s, timeout, 0.2, "container exit")
