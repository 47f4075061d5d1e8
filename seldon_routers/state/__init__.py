"""Where a router's learned state lives: `memory` (the default: this process only),
`file:PATH` (snapshots, restored at start-up) or `redis://host:port/db` (shared by every
worker and replica of a unit). Selected by `--state` or $SELDON_ROUTER_STATE.

A store wraps a router from outside: the router itself never does I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ..errors import ConfigError


@dataclass
class StoreOptions:
    snapshot_interval: float = 10.0  # file: seconds between snapshots
    discard_bad: bool = False  # file: keep a bad snapshot aside and start fresh instead of refusing
    sync_interval: float = 0.1  # redis: seconds between refreshes of the local copy
    namespace: str = ""  # redis: key prefix; default from SELDON_DEPLOYMENT_ID, PREDICTOR_ID, unit id
    buffer: int = 100_000  # redis: feedbacks held while Redis is unreachable
    required: bool = False  # /ready fails while the store is unreachable
    fail_fast: bool = False  # refuse to start when the store is unreachable
    dedupe_ttl: int = 86_400  # redis: seconds a feedback puid is remembered across replicas


class Store:
    """The memory store, and the interface of the others. The server calls `start` after
    the router has loaded, `admit` before applying a feedback, `committed` after it (a
    feedback is acknowledged once its store has it), and `stop` after draining."""

    kind = "memory"
    shared = False  # one state for many processes (so --workers may exceed 1)
    required = False

    async def start(self, router, metrics=None, unit_id: str = "0") -> None:
        self.router = router

    def admit(self) -> None:
        """Raise StoreUnavailable when a feedback cannot be taken now."""

    async def committed(self) -> None:
        """Return once the feedbacks applied so far are as durable as this store makes them."""

    async def persist(self) -> None:
        """Make the router's state as it is now durable (an admin action's change)."""

    def healthy(self) -> bool:
        return True

    def describe(self) -> dict:
        return {"kind": self.kind}

    async def stop(self) -> None:
        pass


def open_store(spec: str, options: Optional[StoreOptions] = None) -> Store:
    """A store from its --state spec; a bad spec is a ConfigError naming it."""
    options = options or StoreOptions()
    spec = (spec or "memory").strip()
    if spec == "memory":
        return Store()
    if spec.startswith("file:"):
        from .file import FileStore

        path = spec[len("file:"):]
        if not path:
            raise ConfigError("--state: file: needs a path, e.g. file:/var/lib/router/state.json")
        return FileStore(path, options)
    if spec.startswith(("redis://", "rediss://", "unix://")):
        from .redis import RedisStore

        return RedisStore(spec, options)
    raise ConfigError(f"--state: {spec!r} is not memory, file:PATH or redis://host:port/db")
