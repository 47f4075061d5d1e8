"""`--state redis://...` for the LLM routers: in-flight counts and rate-limit windows kept
in Redis, exact for every replica (and every worker) of a unit.

Unlike the additive store (state/redis.py), nothing is copied locally: each route reads
the counts, checks the user's limits and counts the request with one Lua script each
(state/llm_scripts.py), so two replicas never see different counts. Keys, under the
unit's hash tag (one Redis Cluster slot, as state/redis_keys.py):
    seldon-router:{ns}:inflight              HASH  puid -> "started tokens pod"
    seldon-router:{ns}:inflight:pod:NAME     ZSET  puid, scored by when it was routed
    seldon-router:{ns}:inflight:stats        HASH  expired (completions never reported)
    seldon-router:{ns}:limits:w:WINDOW       ZSET  one member per admission, scored by time
    seldon-router:{ns}:limits:t:WINDOW       HASH  member -> tokens charged, #total, #seq
    seldon-router:{ns}:limits:index          HASH  puid -> its window and member (settle)
    seldon-router:{ns}:limits:index-time     ZSET  puid, scored by admission (the index's purge)
Pods are keyed by name, so a replica's pod order does not matter. Time is Redis' TIME
(one clock for every replica) unless a clock is passed (tests drive it exactly).
"""

from __future__ import annotations

import logging
import time
from typing import Callable, Optional

from ..errors import StoreUnavailable, clip
from ..routers.llm.inflight import Entry
from ..routers.llm.limits import WINDOW, Policy, headers, refusal
from . import llm_scripts as scripts

log = logging.getLogger("seldon_routers")


def llm_keys(namespace: str) -> dict:
    prefix = f"seldon-router:{{{namespace}}}"
    return {"prefix": prefix, "entries": f"{prefix}:inflight", "stats": f"{prefix}:inflight:stats",
            "pod": f"{prefix}:inflight:pod:", "window": f"{prefix}:limits:w:", "tokens": f"{prefix}:limits:t:",
            "index": f"{prefix}:limits:index", "index_time": f"{prefix}:limits:index-time"}


class _Shared:
    """What the ledger and the limits share: the client, the keys, the clock, and the
    mapping of Redis' errors to a 503 (StoreUnavailable), with `up` kept for /ready."""

    def __init__(self, client, keys: dict, clock: Optional[Callable[[], float]]):
        from redis.exceptions import ConnectionError as Unreachable, TimeoutError as TimedOut

        self.client, self.keys, self.clock = client, keys, clock
        self.up = True
        self._unreachable = (Unreachable, TimedOut, OSError)  # a script's own error is a bug: a 500

    def now_arg(self) -> str:
        return "-1" if self.clock is None else repr(float(self.clock()))

    async def run(self, script, keys: list, args: list):
        return await self.guard(script(keys=keys, args=args))

    async def guard(self, pending):
        """Awaits one Redis call; unreachable Redis is a StoreUnavailable (503)."""
        try:
            result = await pending
        except self._unreachable as exc:
            if self.up:
                log.warning("state store unreachable (%s: %s): LLM routes answer 503 until it is back",
                            type(exc).__name__, exc)
            self.up = False
            raise StoreUnavailable(f"state store unreachable ({type(exc).__name__}: {clip(str(exc))}); "
                                   "retry later") from None
        self.up = True
        return result


class RedisLedger(_Shared):
    """The in-flight ledger of inflight.InFlight, in Redis (async)."""

    is_async = True

    def __init__(self, client, keys: dict, pods: list, ttl: float, clock: Optional[Callable[[], float]] = None,
                 local_clock: Callable[[], float] = time.monotonic):
        super().__init__(client, keys, clock)
        self.pods, self.ttl, self.local_clock = list(pods), ttl, local_clock
        self._keys = [keys["entries"], keys["stats"]] + [keys["pod"] + name for name in self.pods]
        self._scripts = {name: client.register_script(getattr(scripts, name))
                         for name in ("COUNTS", "ACQUIRE", "RELEASE", "RELEASE_OLDEST", "DROP_POD")}
        self.last: Optional[list] = None  # the counts as last read (describe)

    def _args(self, *more) -> list:
        return [self.now_arg(), repr(float(self.ttl)), *more]

    async def counts(self) -> list[int]:
        self.last = [int(c) for c in await self.run(self._scripts["COUNTS"], self._keys, self._args())]
        return list(self.last)

    async def acquire(self, key: str, pod: int, tokens: int = 0) -> None:
        await self.run(self._scripts["ACQUIRE"], self._keys, self._args(key, pod + 3, int(tokens), self.pods[pod]))

    def _entry(self, result) -> Optional[Entry]:
        """A released entry, its start in the local clock (its age, by Redis' clock, before
        now here): what the signals measure latency with, whichever replica routed it."""
        if not result:
            return None
        raw, now = (v.decode() if isinstance(v, bytes) else v for v in result)
        started, tokens, name = raw.split(" ", 2)
        if name not in self.pods:  # a pod another replica knows: released, nothing for this one's signals
            return None
        return Entry(self.pods.index(name), self.local_clock() - (float(now) - float(started)), int(tokens))

    async def release(self, key: str) -> Optional[Entry]:
        return self._entry(await self.run(self._scripts["RELEASE"], self._keys, self._args(key)))

    async def release_oldest(self, pod: int) -> Optional[Entry]:
        return self._entry(await self.run(self._scripts["RELEASE_OLDEST"], self._keys, self._args(pod + 3)))

    async def drop_pod(self, pod: int) -> int:
        return int(await self.run(self._scripts["DROP_POD"], self._keys, self._args(pod + 3)))

    async def expired(self) -> int:
        return int(await self.client.hget(self.keys["stats"], "expired") or 0)


class RedisLimits(_Shared):
    """The rate limits of limits.RateLimits, in Redis (async): the same Policy, the same
    sliding log, the same replies; one script per check."""

    is_async = True

    def __init__(self, client, keys: dict, policy: Policy, clock: Optional[Callable[[], float]] = None):
        super().__init__(client, keys, clock)
        self.policy = policy
        self._admit = client.register_script(scripts.ADMIT)
        self._settle = client.register_script(scripts.SETTLE)

    def _window_keys(self, window: str) -> list:
        return [self.keys["window"] + window, self.keys["tokens"] + window]

    async def admit_async(self, call) -> Optional[dict]:
        limit = self.policy.limit_for(call.user, call.model)
        if limit is None:  # no user, or no limit for this one: no round trip
            return None
        cost = int(call.tokens)
        keys = self._window_keys(limit.window) + [self.keys["index"], self.keys["index_time"]]
        args = [self.now_arg(), repr(WINDOW), -1 if limit.rpm is None else limit.rpm,
                -1 if limit.tpm is None else limit.tpm, cost, call.key, limit.window]
        ok, over, count, used, first, tokens_at = await self.run(self._admit, keys, args)
        first, tokens_at = float(first), float(tokens_at)
        if not ok:
            raise refusal(limit, "rpm" if over == 1 else "tpm", int(count), int(used), cost,
                          first if over == 1 else tokens_at, first, tokens_at)
        return headers(limit, int(count), int(used), first, tokens_at)

    async def settle_async(self, key: str, tokens: int) -> bool:
        where = await self.guard(self.client.hget(self.keys["index"], key))
        if where is None:
            return False
        window, member = where.decode().split("\n", 1)
        return bool(await self.run(self._settle, self._window_keys(window),
                                   [self.now_arg(), repr(WINDOW), member, int(tokens)]))

    def admit(self, call):  # the router calls the async forms with a shared ledger
        raise TypeError("RedisLimits is async: use admit_async")

    def state(self) -> dict:
        return {**self.policy.describe(), "shared": "redis"}


class SharedLLMState:
    """What RedisStore.start gives an LLM router (one with use_ledger): its ledger and
    limits in Redis, under the unit's namespace."""

    def __init__(self, store, router, namespace: str):
        self.store, self.router = store, router
        self.keys = llm_keys(namespace)

    async def start(self) -> None:
        from ..errors import ConfigError
        from .redis import client_for

        self.client = client_for(self.store.url)
        router = self.router
        self.ledger = RedisLedger(self.client, self.keys, router.branch_names, router.ledger.ttl,
                                  local_clock=router.now)
        self.limits = RedisLimits(self.client, self.keys, router.limits.policy)
        router.use_ledger(self.ledger, self.limits)
        try:
            await self.client.ping()
        except Exception as exc:
            if self.store.options.fail_fast:
                raise ConfigError(f"--state {self.store.shown}: unreachable at start-up ({exc})") from None
            log.warning("state store %s unreachable at start-up (%s): LLM routes answer 503 until it is back",
                        self.store.shown, exc)
            self.ledger.up = self.limits.up = False

    @property
    def up(self) -> bool:
        return self.ledger.up and self.limits.up

    async def refresh(self) -> None:
        """Read the shared counts now (GET /state)."""
        try:
            await self.ledger.counts()
            self.expired = await self.ledger.expired()
        except Exception:  # describe() says the store is down
            pass

    def describe(self) -> dict:
        counts = self.ledger.last
        return {"kind": "redis", "up": self.up, "namespace": self.keys["prefix"],
                "in_flight": None if counts is None else dict(zip(self.ledger.pods, counts)),
                "expired": getattr(self, "expired", None), "in_flight_ttl": self.ledger.ttl}

    async def stop(self) -> None:
        await self.client.aclose()
