"""`seldon-router serve --workers N`: a supervisor and N worker processes.

Each worker is `seldon-router serve` itself (the same arguments, run again as a child
process, never forked: gRPC does not survive a fork): one event loop with REST and gRPC,
as one process has. The workers listen on the same ports with SO_REUSEPORT, so the kernel
balances connections across them, and they share one learned state through the state
store (which must be shared: `--state redis://...`).

The supervisor (the process started) checks the ports, starts the workers, serves the
Prometheus port for all of them (prometheus_client's multiprocess mode, in a temporary
directory it removes at exit), restarts a worker that dies (at most once a second per
worker), and on SIGTERM/SIGINT passes SIGTERM to every worker, waits for them to drain,
and exits 0 when they all did. A worker that fails during start-up stops the lot, with its
exit status (2 for a configuration error); so does one failing with status 2 on a restart.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Optional

from .app import Settings, listen_socket, metrics_app, _uvicorn

log = logging.getLogger("seldon_routers")

STOP_MARGIN = 5.0  # seconds beyond the graceful timeout before a worker still running is killed
RESTART_EVERY = 1.0  # seconds, at least, between two starts of one worker
POLL = 0.1  # seconds between checks of the workers


def log_as_worker(index: int) -> None:
    """Every log record of this process (ours, uvicorn's, the router's) names the worker."""
    make = logging.getLogRecordFactory()
    prefix = f"[worker {index}] "

    def factory(*args, **kwargs):
        record = make(*args, **kwargs)
        if isinstance(record.msg, str):
            record.msg = prefix + record.msg
        return record

    logging.setLogRecordFactory(factory)


class WorkerLink:
    """A worker's side of the supervisor: says when it is ready, notices when the
    supervisor is gone (so a killed supervisor leaves no worker behind)."""

    def __init__(self, index: int, ready_fd: Optional[int]):
        self.index = index
        self.ready_fd = ready_fd
        self.parent = os.getppid()

    def ready(self) -> None:
        if self.ready_fd is None:
            return
        try:
            os.write(self.ready_fd, b"ready\n")
            os.close(self.ready_fd)
        except OSError:  # the supervisor is gone: orphaned() stops this worker
            pass
        self.ready_fd = None

    async def orphaned(self) -> None:
        while os.getppid() == self.parent:
            await asyncio.sleep(1.0)


@dataclass
class _Slot:
    index: int
    proc: Optional[subprocess.Popen] = None
    ready: bool = False
    started: float = float("-inf")  # time.monotonic() of the last start
    killed: bool = False  # by the supervisor, after the graceful timeout


def _status(code: int) -> str:
    if code < 0:
        try:
            return f"signal {signal.Signals(-code).name}"
        except ValueError:
            return f"signal {-code}"
    return f"status {code}"


class Supervisor:
    def __init__(self, argv: list, settings: Settings, workers: int):
        self.argv = list(argv)
        self.settings = settings
        self.slots = [_Slot(i) for i in range(workers)]
        self.stopping: Optional[asyncio.Event] = None
        self.failure: Optional[int] = None  # the exit status when a worker could not start
        self.all_started = False
        self.metrics_dir = ""

    # --- start-up (before any worker) -----------------------------------------------------

    def check_ports(self):
        """The REST and gRPC ports must be free (the workers share them with each other
        only); returns the bound metrics socket, which this process serves."""
        s = self.settings
        for port, flag in ((s.http_port, "--http-port"), (s.grpc_port, "--grpc-port")):
            listen_socket(s.host, port, flag).close()
        return listen_socket(s.host, s.metrics_port, "--metrics-port")

    def run(self) -> int:
        metrics_sock = self.check_ports()
        self.metrics_dir = tempfile.mkdtemp(prefix="seldon-router-metrics-")
        try:
            return asyncio.run(self._main(metrics_sock))
        finally:
            metrics_sock.close()
            shutil.rmtree(self.metrics_dir, ignore_errors=True)

    # --- workers ---------------------------------------------------------------------------

    def _spawn(self, slot: _Slot) -> None:
        read_fd, write_fd = os.pipe()
        # argparse keeps the last of a repeated option: these override the user's --workers.
        cmd = [sys.executable, "-m", "seldon_routers.cli", *self.argv, "--workers", "1",
               "--worker-index", str(slot.index), "--ready-fd", str(write_fd)]
        env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": self.metrics_dir}
        try:
            slot.proc = subprocess.Popen(cmd, env=env, pass_fds=(write_fd,))
        finally:
            os.close(write_fd)
        slot.ready, slot.killed, slot.started = False, False, time.monotonic()
        log.info("supervisor: worker %d started (pid %d)", slot.index, slot.proc.pid)
        loop = asyncio.get_running_loop()
        loop.add_reader(read_fd, self._on_ready, slot, slot.proc, read_fd)

    def _on_ready(self, slot: _Slot, proc: subprocess.Popen, read_fd: int) -> None:
        try:
            said = os.read(read_fd, 64)
        except OSError:
            said = b""
        asyncio.get_running_loop().remove_reader(read_fd)
        os.close(read_fd)
        if said and slot.proc is proc:
            slot.ready = True
            if not self.all_started and all(s.ready for s in self.slots):
                self.all_started = True
                log.info("supervisor: %d workers ready", len(self.slots))

    def _reap(self, slot: _Slot, code: int) -> None:
        pid = slot.proc.pid
        try:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(pid, self.metrics_dir)  # its live gauges go; its counts stay
        except OSError:
            pass
        if not slot.ready and (code == 2 or not self.all_started):
            what = "a configuration error" if code == 2 else _status(code)
            log.error("supervisor: worker %d (pid %d) failed during start-up (%s): stopping", slot.index, pid, what)
            self.failure = code if code > 0 else 1
            self.stopping.set()
            return
        log.error("supervisor: worker %d (pid %d) exited unexpectedly with %s: restarting it", slot.index, pid,
                  _status(code))
        slot.proc = None

    async def _watch(self) -> None:
        while not self.stopping.is_set():
            now = time.monotonic()
            for slot in self.slots:
                if self.stopping.is_set():
                    break
                if slot.proc is None:
                    if now - slot.started >= RESTART_EVERY:
                        self._spawn(slot)
                    continue
                code = slot.proc.poll()
                if code is not None:
                    self._reap(slot, code)
            try:
                await asyncio.wait_for(self.stopping.wait(), POLL)
            except asyncio.TimeoutError:
                pass

    async def _stop_workers(self) -> bool:
        """SIGTERM to every worker, SIGKILL to those still running after the graceful
        timeout and a margin; True when every worker stopped cleanly."""
        running = [s for s in self.slots if s.proc is not None and s.proc.poll() is None]
        for slot in running:
            try:
                slot.proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + self.settings.graceful_timeout + STOP_MARGIN
        while any(s.proc.poll() is None for s in running) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        clean = True
        for slot in self.slots:
            if slot.proc is None:
                continue
            if slot.proc.poll() is None:
                log.error("supervisor: worker %d (pid %d) still running %ss after SIGTERM: killing it",
                          slot.index, slot.proc.pid, self.settings.graceful_timeout + STOP_MARGIN)
                slot.proc.kill()
                slot.proc.wait()
                slot.killed = True
            code = slot.proc.returncode
            # SIGTERM's default action: a worker stopped before it set up its handlers.
            if slot.killed or code not in (0, -signal.SIGTERM):
                if slot in running:
                    log.error("supervisor: worker %d (pid %d) exited with %s", slot.index, slot.proc.pid,
                              _status(code))
                clean = False
        return clean

    async def _main(self, metrics_sock) -> int:
        from prometheus_client import CollectorRegistry
        from prometheus_client.multiprocess import MultiProcessCollector

        self.stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stopping.set)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self.metrics_dir)
        s = self.settings
        metrics = _uvicorn(metrics_app(registry, s.metrics_path), s.host, s.metrics_port, s)
        metrics_task = asyncio.ensure_future(metrics.serve(sockets=[metrics_sock]))
        log.info("supervisor (pid %d): %d workers on REST :%d and gRPC :%d, metrics :%d%s", os.getpid(),
                 len(self.slots), s.http_port, s.grpc_port, s.metrics_port, s.metrics_path)
        try:
            await self._watch()
            if self.failure is None:
                log.info("supervisor: stopping the workers (each drains up to %ss)", s.graceful_timeout)
            clean = await self._stop_workers()
        finally:
            metrics.should_exit = True
            await asyncio.gather(metrics_task, return_exceptions=True)
        if self.failure is not None:
            return self.failure
        log.info("supervisor: all workers stopped%s", "" if clean else " (not all cleanly)")
        return 0 if clean else 1


def supervise(argv: list, settings: Settings, workers: int) -> int:
    """Runs `workers` worker processes of `seldon-router serve ARGV`; returns the exit status."""
    return Supervisor(argv, settings, workers).run()
