"""A real redis-server of the test's own on a free port (never a shared one on 6379), which a
test can stop and start again on the same port. Without `redis-server` on PATH the tests
that need one skip, saying why; with SELDON_ROUTERS_REQUIRE_REDIS=1 (CI) they fail instead."""

from __future__ import annotations

import select
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

from support import REDIS, on_path, require, wait_until


def need_redis():
    """redis-server and the redis client, or skip (fail under SELDON_ROUTERS_REQUIRE_REDIS=1)."""
    require(on_path("redis-server"), REDIS, "scripts/install_redis.sh installs it")
    require("redis", REDIS, "pip install -e '.[test]'")


class RedisServer:
    """One redis-server on 127.0.0.1:port. `persist`: append-only file in `directory`, so
    a stop and start keeps the data (as a production Redis with AOF would); else it keeps
    nothing on disk and starts empty each time."""

    def __init__(self, port: int, directory: Path, persist: bool = False):
        self.port, self.directory, self.persist = port, directory, persist
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10) -> "RedisServer":
        assert self.proc is None or self.proc.poll() is not None, "already running"
        cmd = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "yes" if self.persist else "no", "--dir", str(self.directory)]
        if self.persist:
            cmd += ["--appendfsync", "always"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self._up, timeout, 0.02, f"redis-server on port {self.port} up")
        return self

    def _up(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"redis-server on port {self.port} exited with {self.proc.returncode}")
        try:
            with self.client() as client:
                return client.ping()
        except Exception:  # noqa: BLE001  not listening (or loading its file) yet
            return False

    def stop(self, sig=signal.SIGTERM) -> None:
        """SIGTERM: Redis' own clean shutdown (with `persist`, the append-only file is complete)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def client(self, timeout: float = 2):
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=timeout, socket_connect_timeout=timeout)

    def stall(self, seconds: float) -> threading.Thread:
        """Keep Redis busy (a script spinning) for `seconds`: every other client's command
        waits meanwhile. Returns once it has begun; join the thread to see it end."""
        spin = "local t0 = redis.call('TIME') repeat local t = redis.call('TIME') " \
               "until (t[1] - t0[1]) + (t[2] - t0[2]) / 1e6 >= tonumber(ARGV[1]) return 1"
        thread = threading.Thread(target=lambda: self.client(timeout=seconds + 10).eval(spin, 0, seconds))
        thread.start()
        # A bare socket: the client retries a command that timed out, which would hide the stall.
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as probe:
            while thread.is_alive():
                probe.sendall(b"PING\r\n")
                if not select.select([probe], [], [], 0.05)[0]:
                    return thread  # no answer: spinning
                assert probe.recv(64) == b"+PONG\r\n"
                time.sleep(0.005)
        raise RuntimeError("the stall ended before it was seen")
