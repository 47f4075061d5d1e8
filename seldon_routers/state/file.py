"""`file:PATH`: the router's JSON state, snapshotted atomically (temp file, fsync, rename)
every snapshot interval and at shutdown, and restored at start-up. Never pickle: a
snapshot is the same JSON that GET /state shows."""

from __future__ import annotations

import asyncio
import glob
import json
import logging
import os
import threading
import time

from ..errors import ConfigError
from ..adapter import class_name
from ..routers._params import number
from . import Store, StoreOptions

log = logging.getLogger("seldon_routers")


class FileStore(Store):
    kind = "file"

    def __init__(self, path: str, options: StoreOptions):
        number(options.snapshot_interval, "--snapshot-interval", 0.0, lo_open=True)
        self.path = os.path.abspath(path)
        self.options = options
        self._written = b""
        self._task = None
        self.snapshots = 0
        self.metrics = None
        # Persistence health: a failing snapshot keeps the router serving, so say so where
        # an operator looks (GET /state, the gauge); the next good write clears it.
        self.failures = 0  # snapshots failed in a row
        self.last_error = None
        # One writer at a time: stop() cancels the periodic task, but a snapshot it has
        # started goes on in its thread, and two writers shared PATH.tmp-PID (one renamed
        # the other's file away: "cannot write the snapshot" at shutdown).
        self._writing = threading.Lock()

    async def start(self, router, metrics=None, unit_id: str = "0") -> None:
        self.router, self.metrics = router, metrics
        if not router.restores:
            raise ConfigError(f"--state file: {class_name(router)} keeps no state to restore (it defines no "
                              "load_state); serve it with --state memory")
        if os.path.exists(self.path):
            self._restore(router)
        for stale in glob.glob(glob.escape(self.path) + ".tmp-*"):  # a write cut short by a SIGKILL
            os.unlink(stale)
        directory = os.path.dirname(self.path)
        if not os.path.isdir(directory):
            raise ConfigError(f"--state file:{self.path}: directory {directory} does not exist")
        await asyncio.to_thread(self.snapshot)  # fails now, not an interval later, if unwritable
        self._task = asyncio.ensure_future(self._every_interval())

    def _restore(self, own) -> None:
        try:
            with open(self.path, "rb") as f:
                state = json.loads(f.read())
            own.load_state(state)
        except (OSError, ValueError, ConfigError) as exc:  # JSONDecodeError is a ValueError
            reason = exc.message if isinstance(exc, ConfigError) else f"{type(exc).__name__}: {exc}"
            if not self.options.discard_bad:
                raise ConfigError(f"--state file:{self.path}: cannot restore this snapshot ({reason}). Fix or "
                                  "remove it, or pass --state-discard-bad to keep it aside and start fresh") from None
            aside = base = f"{self.path}.bad-{time.strftime('%Y%m%dT%H%M%S')}"
            n = 1
            while os.path.exists(aside):  # a second bad file within the second: never over the first
                aside, n = f"{base}-{n}", n + 1
            os.replace(self.path, aside)
            log.warning("state snapshot %s cannot be restored (%s); kept aside as %s, starting fresh",
                        self.path, reason, aside)
            return
        log.info("state restored from %s", self.path)

    def snapshot(self) -> bool:
        """Write the state if it changed since the last write; True when it wrote."""
        with self._writing:
            try:
                wrote = self._snapshot()
            except Exception as exc:
                self._persisted(exc.message if isinstance(exc, ConfigError) else f"{type(exc).__name__}: {exc}")
                raise
            self._persisted(None)  # written, or unchanged since the last good write: on disk either way
            return wrote

    def _persisted(self, error) -> None:
        self.failures, self.last_error = (0, None) if error is None else (self.failures + 1, error)
        if self.metrics is not None:
            self.metrics.state_persisted(error is None)

    def _snapshot(self) -> bool:
        try:
            data = json.dumps(self.router.state(), separators=(",", ":"), allow_nan=False).encode()
        except (TypeError, ValueError) as exc:  # a router's state that JSON cannot hold: say so, by name
            raise ConfigError(f"--state file:{self.path}: the router's state is not JSON ({exc})") from None
        if data == self._written:
            return False
        tmp = f"{self.path}.tmp-{os.getpid()}"
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)  # atomic: a reader sees the old file or the new one
            dir_fd = os.open(os.path.dirname(self.path), os.O_RDONLY)
            try:
                os.fsync(dir_fd)  # the rename itself survives a crash
            finally:
                os.close(dir_fd)
        except OSError as exc:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise ConfigError(f"--state file:{self.path}: cannot write the snapshot ({exc})") from None
        self._written = data
        self.snapshots += 1
        return True

    async def _every_interval(self) -> None:
        while True:
            await asyncio.sleep(self.options.snapshot_interval)
            try:
                await asyncio.to_thread(self.snapshot)
            except ConfigError as exc:  # a full disk: keep serving, say so, try again
                log.error("%s", exc.message)
            except Exception:  # anything else too: an exception here ended the task, and every later snapshot
                log.exception("state snapshot to %s failed; trying again in %ss", self.path,
                              self.options.snapshot_interval)

    def describe(self) -> dict:
        return {"kind": self.kind, "path": self.path, "snapshot_interval": self.options.snapshot_interval,
                "snapshots": self.snapshots, "healthy": self.failures == 0, "failures": self.failures,
                "last_error": self.last_error}

    async def persist(self) -> None:
        await asyncio.to_thread(self.snapshot)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
        await asyncio.to_thread(self.snapshot)
        log.info("state snapshot written to %s", self.path)
