"""`redis://host:port/db`: one learned state for every worker and replica of a unit.

Each process routes from a local copy and applies its own feedback to it at once. The
increments (what each update adds to the additive statistics) go to Redis in batches, one
Lua script per batch that adds them with HINCRBYFLOAT, so concurrent replicas lose nothing
and Python never reads-modifies-writes. Each increment carries an id (the feedback's puid,
else a random one) that the script remembers with SET NX and a TTL: a duplicate puid from
any replica, or a batch retried after a lost reply, is applied once. Every sync interval
the local copy is replaced by Redis' sums plus the increments Redis has not yet taken.

While Redis is unreachable, routing goes on from the local copy and feedback is buffered
(bounded); it is flushed, exactly once, when Redis is back.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from collections import deque

from ..additive import AdditiveState
from ..errors import ConfigError, StoreUnavailable
from ..adapter import class_name
from ..routers._params import number, positive_int
from . import Store, StoreOptions
from .redis_keys import APPLY, KEY_VERSION, SEED, default_namespace, unit_keys

log = logging.getLogger("seldon_routers")

MAX_BATCH = 2_000  # increments per script call: keeps one call short for Redis' single thread
NO_PUID_TTL = 3_600  # seconds a random id is kept: long enough for any retry


def redacted(url: str) -> str:
    """The URL with its password (redis://user:PASSWORD@host) shown as ***."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = f"{parts.username}:" if parts.username else ":"
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{user}***@{host}").geturl()


def client_for(url: str):
    """The store's Redis client. No retries inside it: the caller retries (the sync loop with
    its own backoff; an LLM route is a 503) and must learn at once, within the 1 s timeouts,
    that Redis is unreachable."""
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    return aioredis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0, health_check_interval=5,
                             retry=Retry(NoBackoff(), 0))


class RedisStore(Store):
    kind = "redis"
    shared = True

    def __init__(self, url: str, options: StoreOptions):
        try:
            import redis.asyncio  # noqa: F401  (the redis extra)
        except ImportError:
            raise ConfigError("--state redis: needs the redis extra: pip install 'seldon-routers[redis]'") from None
        number(options.sync_interval, "--sync-interval", 0.0, lo_open=True)
        positive_int(options.buffer, "--state-buffer")
        self.url, self.options, self.required = url, options, options.required
        self.shown = redacted(url)  # what logs and errors say: never the password
        self.namespace = options.namespace
        self._pending: deque = deque()  # (id, ttl, delta), applied locally, not yet in Redis
        self._seq = self._flushed = 0  # increments enqueued / known to be in Redis (or buffered)
        self._waiters: list = []
        self.up = False
        self.last_sync = 0.0  # time.time() of the last successful sync
        self.refused = 0
        self.duplicates = 0  # feedbacks whose puid another replica (or a retry) had already applied
        self._task = None
        self._closing = False
        self.llm = None  # an LLM router's shared ledger and limits (state/llm_redis.py)

    # --- start-up -----------------------------------------------------------------------

    async def start(self, router, metrics=None, unit_id: str = "0") -> None:
        self.router, self.metrics = router, metrics
        if callable(getattr(router, "use_ledger", None)):  # an LLM router: in-flight counts and limits
            from .llm_redis import SharedLLMState

            self.llm = SharedLLMState(self, router, self.namespace or default_namespace(unit_id))
            return await self.llm.start()
        own = router
        if not isinstance(own, AdditiveState):
            raise ConfigError(f"--state redis: {class_name(own)} has no additive state to share (it is no "
                              "seldon_routers.AdditiveState); serve it with --state memory or file:PATH")
        reason = own.not_additive()
        if reason:
            raise ConfigError(f"--state redis: cannot share this router's state: {reason}. "
                              "Use --state file:PATH, or drop that parameter")
        self.own = own
        self.schema = {name: len(values) for name, values in own.stats().items()}
        ns = self.namespace or default_namespace(unit_id)
        self.keys = unit_keys(ns)
        identity = own.state_identity()
        self.identity = {"version": str(KEY_VERSION), "policy": str(identity["policy"]),
                         "arms": json.dumps(identity["arms"]), "schema": json.dumps(self.schema, sort_keys=True)}
        self._routes_base = [0.0] * self.schema.get("routes", 0)
        self._loop, self._thread = asyncio.get_running_loop(), threading.get_ident()
        self._wake = asyncio.Event()
        self.client = client_for(self.url)
        self._apply = self.client.register_script(APPLY)
        self._seed = self.client.register_script(SEED)
        self._last_totals: dict = {}  # Redis' sums as last read
        own.share_updates(self._on_update)
        try:
            await self._check_identity()
            await self._sync()
        except ConfigError:
            raise
        except Exception as exc:  # unreachable: ConnectionError, TimeoutError, OSError...
            if self.options.fail_fast:
                raise ConfigError(f"--state {self.shown}: unreachable at start-up ({exc}); "
                                  "without --state-fail-fast the router would start from local state") from None
            self._down(exc)
        self._task = asyncio.ensure_future(self._run())

    async def _check_identity(self) -> None:
        """The namespace must hold this router's kind of state, or none yet. An empty one
        is claimed; if it was emptied while this process synced with it (Redis restarted
        without persistence), the first replica back seeds it with the sums it last read,
        so what the deployment learned is not lost with Redis' memory."""
        key = self.keys["meta"]
        stored = {k.decode(): v.decode() for k, v in (await self.client.hgetall(key)).items()}
        if not stored:
            args = [len(self.identity)] + [x for pair in self.identity.items() for x in pair]
            args += [x for name, values in self._last_totals.items() for i, v in enumerate(values) if v
                     for x in (f"{name}.{i}", repr(float(v)))]
            if await self._seed(keys=[key, self.keys["stats"]], args=args):
                if any(any(v) for v in self._last_totals.values()):
                    log.warning("state store %s had lost this unit's state (restarted without persistence?); "
                                "seeded it again from the sums last read here", self.shown)
                return
            stored = {k.decode(): v.decode() for k, v in (await self.client.hgetall(key)).items()}
        for field, mine in self.identity.items():
            if stored.get(field) != mine:
                raise ConfigError(
                    f"--state {self.shown}: namespace {self.keys['meta']} holds the state of another router "
                    f"({field} {stored.get(field)!r}, this one has {mine!r}); give this unit its own "
                    "--state-namespace, or delete the keys to start over")

    # --- feedback ----------------------------------------------------------------------

    def _on_update(self, delta: dict, puid) -> None:
        """Called by the router under its lock after each update."""
        ident, ttl = (f"p:{puid}", self.options.dedupe_ttl) if puid else (f"r:{uuid.uuid4().hex}", NO_PUID_TTL)
        self._pending.append((ident, ttl, delta))
        self._seq += 1
        if threading.get_ident() == self._thread:
            self._wake.set()
        else:  # a router called from a thread (Seldon-style sync code): wake the loop safely
            self._loop.call_soon_threadsafe(self._wake.set)

    def admit(self) -> None:
        if len(self._pending) >= self.options.buffer:
            self.refused += 1
            if self.metrics is not None:
                self.metrics.state_refused()
            if self.refused == 1 or self.refused % 1000 == 0:
                log.error("state store %s unreachable and %d feedbacks buffered (the bound): refusing feedback "
                          "(%d so far) until it is back", self.shown, len(self._pending), self.refused)
            raise StoreUnavailable(f"state store unreachable and {len(self._pending)} feedbacks already buffered; "
                                   "retry later")

    async def committed(self) -> None:
        """Wait until Redis has the feedbacks applied so far; at once while it is down
        (they stay buffered and are flushed when it is back)."""
        seq = self._seq
        if not self.up or self._flushed >= seq:
            return
        future = self._loop.create_future()
        self._waiters.append((seq, future))
        self._wake.set()
        await future

    def _release(self, everyone: bool = False) -> None:
        keep = []
        for seq, future in self._waiters:
            if everyone or seq <= self._flushed:
                if not future.done():
                    future.set_result(None)
            else:
                keep.append((seq, future))
        self._waiters = keep

    # --- the sync loop -------------------------------------------------------------------

    async def _run(self) -> None:
        backoff = self.options.sync_interval
        while not self._closing:
            try:
                await asyncio.wait_for(self._wake.wait(), backoff)
            except asyncio.TimeoutError:
                pass
            self._wake.clear()
            try:
                if not self.up:
                    await self._check_identity()
                await self._sync()
                backoff = self.options.sync_interval
            except ConfigError as exc:
                log.error("%s", exc.message)
                self._down(exc)
                backoff = 5.0
            except Exception as exc:
                self._down(exc)
                backoff = min(max(backoff * 2, 0.1), 1.0)

    async def _sync(self) -> None:
        """Send what Redis has not got (routes counted here too), read the sums back, and
        make the local copy those sums plus what is still unsent."""
        own = self.own
        if self._routes_base:
            unsent = {i: r - b for i, (r, b) in enumerate(zip(own.route_counts(), self._routes_base)) if r != b}
            if unsent and self.up:  # while down they stay counted locally: no buffer slot per retry
                self._routes_base = [float(r) for r in own.route_counts()]
                self._pending.append((f"r:{uuid.uuid4().hex}", NO_PUID_TTL, {"routes": unsent}))
                self._seq += 1
        batch = [self._pending[i] for i in range(min(len(self._pending), MAX_BATCH))]
        seq = self._seq - len(self._pending) + len(batch)
        started = time.perf_counter()
        pipe = self.client.pipeline(transaction=False)
        pipe.exists(self.keys["meta"])
        if batch:
            args = []
            for ident, ttl, delta in batch:
                fields = [(f"{name}.{i}", repr(float(v))) for name, changes in delta.items() for i, v in changes.items()]
                args += [ident, ttl, len(fields)]
                for field in fields:
                    args += field
            await self._apply(keys=[self.keys["stats"], self.keys["seen"]], args=args, client=pipe)
        pipe.hgetall(self.keys["stats"])
        results = await pipe.execute()
        for _ in batch:
            self._pending.popleft()
        self._flushed = max(self._flushed, seq)
        if not results[0]:  # the namespace was emptied under us: claim it (and seed it) first
            await self._check_identity()
            self._wake.set()  # read the sums again at once
            return
        totals = {name: [0.0] * n for name, n in self.schema.items()}
        for field, value in results[-1].items():
            name, _, index = field.decode().rpartition(".")
            if name == "duplicates":
                self.duplicates = int(float(value))
            elif name in totals and index.isdigit() and int(index) < len(totals[name]):
                totals[name][int(index)] = float(value)
        routes_since = {}

        def unsent():  # under the router's lock: increments Redis has not seen yet
            out = [delta for _, _, delta in self._pending]
            if self._routes_base:  # routes counted since this sync began stay counted
                routes_since.update({i: r - b for i, (r, b) in enumerate(zip(own.route_counts(), self._routes_base))
                                     if r != b})
                out.append({"routes": routes_since})
            return out

        own.set_stats(totals, unsent)
        self._last_totals = totals
        if self._routes_base:
            self._routes_base = [float(r) - routes_since.get(i, 0.0) for i, r in enumerate(own.route_counts())]
        if not self.up:
            log.info("state store %s reachable: %d buffered feedbacks flushed", self.shown, len(batch))
        self.up = True
        self.last_sync = time.time()
        self._release()
        if self.metrics is not None:
            self.metrics.state_synced(time.perf_counter() - started, len(self._pending), True)
        if self._pending or self._waiters:
            self._wake.set()  # more to send (a batch was full): go again at once

    def _down(self, exc) -> None:
        if self.up or self.last_sync == 0.0:
            log.warning("state store %s unreachable (%s: %s): routing from the local copy, buffering feedback "
                        "(up to %d)", self.shown, type(exc).__name__, exc, self.options.buffer)
            self.last_sync = self.last_sync or -1.0
        self.up = False
        self._release(everyone=True)  # acknowledged as buffered
        if self.metrics is not None:
            self.metrics.state_synced(None, len(self._pending), False)

    # --- introspection and shutdown ----------------------------------------------------

    def healthy(self) -> bool:
        return self.llm.up if self.llm is not None else self.up

    async def refresh(self) -> None:
        if self.llm is not None:
            await self.llm.refresh()

    def describe(self) -> dict:
        if self.llm is not None:
            return self.llm.describe()
        return {"kind": self.kind, "up": self.up, "namespace": self.keys["stats"] if hasattr(self, "keys") else None,
                "buffered": len(self._pending), "refused": self.refused, "duplicates": self.duplicates,
                "last_sync": self.last_sync if self.last_sync > 0 else None,
                "sync_interval": self.options.sync_interval}

    async def stop(self) -> None:
        if self.llm is not None:
            return await self.llm.stop()
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        for _ in range(3):  # a last flush of what is buffered
            if not self._pending and not any(r != b for r, b in zip(self.own.route_counts(), self._routes_base)):
                break
            try:
                await self._sync()
            except Exception as exc:
                log.error("state store %s unreachable at shutdown: %d feedbacks not flushed are lost (%s)",
                          self.shown, len(self._pending), exc)
                break
        self._release(everyone=True)
        await self.client.aclose()
