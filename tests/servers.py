"""Real router servers for tests: a `seldon-router serve` process on free ports, and the
same server's parts in this process (InProcessServer) where a process adds nothing."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
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


class Addresses:
    """Where a test server listens: its http_port and grpc_port, on 127.0.0.1."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"


@dataclass
class RouterProcess(Addresses):
    proc: subprocess.Popen
    http_port: int
    grpc_port: int
    metrics_port: int
    log: Optional[Path] = None  # stdout and stderr, together

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
    cmd = ["serve", *args, "--host", "127.0.0.1",
           "--http-port", str(http), "--grpc-port", str(grpc_), "--metrics-port", str(metrics)]
    return _spawn(cmd, (http, grpc_, metrics), env, cwd, ready)


def start_gateway(config: dict, *args: str, env: dict | None = None) -> RouterProcess:
    """Runs `seldon-router gateway` with `config` (written to a file) on a free port, until /ready."""
    import yaml

    http = free_port()
    fd, name = tempfile.mkstemp(prefix="gateway-", suffix=".yaml", dir=_LOGS)
    with open(fd, "w") as f:
        yaml.safe_dump(config, f)
    cmd = ["gateway", "--config", name, "--host", "127.0.0.1", "--port", str(http), *args]
    return _spawn(cmd, (http, 0, 0), env, None, "/ready")


def _spawn(args: list, ports: tuple, env, cwd, ready: str) -> RouterProcess:
    cmd = [sys.executable, "-m", "seldon_routers.cli", *args]
    fd, name = tempfile.mkstemp(prefix=f"{args[0]}-", suffix=".log", dir=_LOGS)
    log = Path(name)
    with open(fd, "wb") as out:
        proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, cwd=cwd, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    rp = RouterProcess(proc, *ports, log)
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


# --- in process ----------------------------------------------------------------------------

_loop: Optional[asyncio.AbstractEventLoop] = None
_loop_lock = threading.Lock()


def _event_loop() -> asyncio.AbstractEventLoop:
    """One event loop, on a daemon thread of its own, for every in-process server: each
    serves there as `seldon-router serve` serves on its main loop."""
    global _loop
    with _loop_lock:
        if _loop is None:
            try:  # as `serve` runs: uvloop where it is installed (with asyncio's own loop, a
                # keep-alive client here waits ~40 ms on every request)
                import uvloop
            except ImportError:
                uvloop = None
            _loop = uvloop.new_event_loop() if uvloop is not None else asyncio.new_event_loop()
            thread = threading.Thread(target=_loop.run_forever, name="in-process-servers", daemon=True)
            thread.start()

            def close():
                _loop.call_soon_threadsafe(_loop.stop)
                thread.join(10)
                _loop.close()

            atexit.register(close)
        return _loop


class InProcessServer(Addresses):
    """A router served in this process by the server's own parts: its DataPlane, RestApp on
    uvicorn (httptools, as `serve` runs it), the grpc.aio servicers and health service, and
    the metrics app, each on a free 127.0.0.1 port. It has a RouterProcess's url,
    grpc_target and metrics_port, so a test calls it the same way; what only a process has
    (signals, workers, the command line, environment variables) is tested with processes."""

    def __init__(self, router, unit_id: str = "0", name: Optional[str] = None, max_body_size: Optional[int] = None,
                 max_in_flight: int = 0, store=None):
        from seldon_routers.server.dataplane import DataPlane
        from seldon_routers.server.rest import DEFAULT_MAX_BODY

        self.dp = DataPlane(router, unit_id, name, max_in_flight, store=store)
        self.max_body_size = max_body_size or DEFAULT_MAX_BODY
        self._servers: list = []
        self._tasks: list = []
        self.grpc_server = self.health = None
        self.loop = _event_loop()
        try:
            self._call(self._start())
        except BaseException:
            self.stop()
            raise

    def _call(self, coro, timeout: float = 60):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    async def _uvicorn(self, app) -> int:
        import uvicorn

        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        config = uvicorn.Config(app, http="httptools", lifespan="off", access_log=False, log_level="warning")
        server = uvicorn.Server(config)
        self._servers.append(server)
        self._tasks.append(asyncio.ensure_future(server.serve(sockets=[sock])))
        while not server.started:  # up in a few loop turns
            if self._tasks[-1].done():
                self._tasks[-1].result()  # raises what stopped it
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.005)
        return sock.getsockname()[1]

    async def _start(self) -> None:
        from seldon_routers.errors import ConfigError
        from seldon_routers.server import grpc as grpc_transport
        from seldon_routers.server.app import metrics_app
        from seldon_routers.server.rest import RestApp

        await self.dp.start()
        self.http_port = await self._uvicorn(RestApp(self.dp, self.max_body_size))
        self.metrics_port = await self._uvicorn(metrics_app(self.dp.metrics.registry, "/metrics"))
        for attempt in range(3):  # a port found free can be taken before gRPC binds it
            self.grpc_port = free_port()
            try:
                self.grpc_server, self.health = await grpc_transport.start(
                    self.dp, "127.0.0.1", self.grpc_port, self.max_body_size)
                break
            except ConfigError:
                if attempt == 2:
                    raise
        await grpc_transport.set_serving(self.health, True)

    async def _stop(self) -> None:
        self.dp.ready = False
        for server in self._servers:
            server.should_exit = True
        if self.grpc_server is not None:
            await self.grpc_server.stop(None)
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.dp.stop()  # as `serve` ends: the store's last flush, then the router's close()

    def stop(self) -> None:
        self._call(self._stop())


@contextlib.contextmanager
def in_process(router, **kwargs):
    """An InProcessServer for the block (InProcessServer's arguments)."""
    server = InProcessServer(router, **kwargs)
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def serving(spec: str, *pairs: str, unit_id: str = "0", **kwargs):
    """A router built as `seldon-router serve SPEC --param PAIR...` builds it (a built-in name
    or an import path; name=value parameters, coerced to its arguments' types), served in
    process (InProcessServer's other arguments)."""
    from seldon_routers import params, registry

    cls = registry.resolve(spec)
    router = params.build(cls, params.from_pairs(pairs))
    name = (router.name if registry.is_router(cls) else "") or registry.builtin_name(cls)
    with in_process(router, unit_id=unit_id, name=name, **kwargs) as server:
        yield server


# --- worker processes (--workers N) ---------------------------------------------------

def children(pid: int) -> set:
    """Live (not zombie) processes whose parent is pid."""
    out = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == pid and state != "Z":
            out.add(int(entry))
    return out


def state_pid(rp: RouterProcess) -> tuple:
    """(pid, state) of whichever worker a fresh connection reaches."""
    body = requests.get(rp.url + "/state", timeout=5).json()  # no session: a new connection each time
    return body["pid"], body["state"]


def pids_seen(rp: RouterProcess, want: set, tries: int = 50) -> set:
    """The worker pids fresh connections reach, until all of `want` have answered."""
    seen = set()
    for _ in range(tries):  # each fresh connection lands on a worker at random
        seen.add(state_pid(rp)[0])
        if want <= seen:
            break
    return seen


def workers_of(rp: RouterProcess, n: int = 2) -> set:
    """The n worker pids, once each has answered over REST (a worker listens once ready)."""
    pids = wait_until(lambda: (lambda c: c if len(c) == n else None)(children(rp.proc.pid)), what=f"{n} workers")
    wait_until(lambda: pids_seen(rp, pids) == pids, what=f"REST connections reaching each of {pids}")
    return pids
