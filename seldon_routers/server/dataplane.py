"""The one place both transports call: decode, decide, validate, encode, count, map errors.

Transports hand over raw input (JSON bytes or a protobuf message) and get reply bytes or
a reply message back; every rule about what a valid call and a valid decision are lives
here, so REST and gRPC cannot drift apart.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import time
from typing import Any

from ..adapter import as_router
from ..codec import from_json, from_proto, replies
from ..errors import BadRequest, NotReady, RouterError, RouterFailed, TooManyRequests, clip, quote
from ..request import Feedback, Request
from ..router import Decision, check_decision
from ..state import Store
from .metrics import Metrics

log = logging.getLogger("seldon_routers")


class DataPlane:
    def __init__(self, router: Any, unit_id: str = "0", router_name: str | None = None,
                 max_in_flight: int = 0, metrics: Metrics | None = None, store: Store | None = None):
        self.router = as_router(router)
        self.store = store or Store()
        self.unit_id = unit_id
        self.name = router_name or self.router.describe()
        self.max_in_flight = max_in_flight
        self.metrics = metrics or Metrics()
        self.ready = False  # what /ready says: loaded, and not shutting down
        self.loaded = False
        self.in_flight = 0
        self.admin = None  # server/admin.py's Admin, when admin actions are on
        # Shutting down (server/app.py): not ready at once, calls served a moment more, then
        # refused (503 / UNAVAILABLE) while the last ones drain.
        self.draining = False
        self._proto_replies = replies.ProtoRouteReplies()
        self._hooks()
        self.router.register_metrics(self.metrics)  # a router's own Prometheus metrics, in this unit's registry

    def _hooks(self) -> None:
        # Hooks that cost a call per request only when the router writes them.
        self._has_tags = self.router.has_hook("tags")
        self._has_metrics = self.router.has_hook("metrics")

    def replace_router(self, router: Any) -> None:
        """A reloaded router in place of this one (admin reload-config), loaded first; the
        calls in flight finish on the old one."""
        new = as_router(router)
        new.load()
        old, self.router = self.router, new
        self._hooks()
        self.store.router = new
        old.close()

    def load(self) -> None:
        self.router.load()
        self.ready = self.loaded = True

    async def start(self) -> None:
        """Load the router (in a thread: /live answers meanwhile), then its state."""
        await asyncio.get_running_loop().run_in_executor(None, self.router.load)
        await self.store.start(self.router, self.metrics, self.unit_id)
        self.ready = self.loaded = True

    async def stop(self) -> None:
        """After the last call drained: the store's final snapshot or flush, then the router's close()."""
        try:
            await self.store.stop()
        finally:
            self.router.close()

    def serving_ready(self) -> bool:
        """What /ready says: loaded, and the state store reachable if it is required."""
        return self.ready and (not self.store.required or self.store.healthy())

    # --- the two calls ------------------------------------------------------------------

    async def route(self, request: Request) -> replies.Routed:
        """Decides, validates the decision, and returns what the reply needs."""
        child, decision_tags = await self.decide(request)
        # The decision's tags go under this unit's id, so routers in one graph never collide.
        tags = {self.unit_id: decision_tags or {"route": child}}
        if self._has_tags:
            tags = {**self.router_tags(), **tags}
            decision_tags = replies.UNCACHED  # tags() may change from call to call
        return replies.Routed(child, self.unit_id, tags, request.puid, self._router_metrics(), decision_tags)

    async def decide(self, request: Request) -> tuple:
        """The router's checked decision, (child, its tags or None), counted: what the
        gateway needs, without the Seldon reply around it."""
        if self.router.reads_features:
            request.features  # decode now: a malformed tensor is a 400 before the router runs
        try:
            decision = self.router.decide(request)
            if type(decision) is not Decision and inspect.isawaitable(decision):
                decision = await decision
        except RouterError:
            raise
        except Exception as exc:
            log.exception("router %s failed in route", self.name)
            raise RouterFailed(f"router {self.name} failed in route: {type(exc).__name__}: {clip(str(exc))}") from exc
        child, decision_tags = check_decision(decision, self.name, self.router.n_children)
        self.metrics.routed(child)
        return child, decision_tags

    async def feedback(self, fb: Feedback) -> dict:
        """Checks the feedback (all of it, first), applies it, then counts it: once the router
        has applied it, nothing may fail the call, or a client's retry would apply it twice."""
        n = self.router.n_children
        if self.router.learns:
            if fb.routing is None:
                raise BadRequest(f"response.meta.routing: no entry for unit {quote(self.unit_id)}; router "
                                 f"{self.name} learns and cannot attribute this reward to a child")
            if fb.routing < 0 or (n is not None and fb.routing >= n):
                raise BadRequest(f"response.meta.routing.{self.unit_id}: {fb.routing} is not one of "
                                 f"this router's children (0..{'' if n is None else n - 1})")
        elif fb.routing is not None and (fb.routing < -2 or (n is not None and fb.routing >= n)):
            # No route this router could have made: refused, as it would label a metric series.
            raise BadRequest(f"response.meta.routing.{self.unit_id}: {fb.routing} is not a route of this router "
                             f"(-2..{'' if n is None else n - 1}: none, all, or one of its children)")
        fb.request.features  # decoded for every router: a malformed tensor is a 400 before anything applies
        await self.apply(fb)
        return self._applied(fb)

    async def apply(self, fb: Feedback) -> None:
        """The router learns a checked feedback, acknowledged once the store has it (the
        gateway calls this directly when a request ends: it made the feedback itself)."""
        self.store.admit()  # a feedback the store cannot keep is refused before it changes anything
        try:
            result = self.router.learn(fb)
            if inspect.isawaitable(result):
                await result
            await self.store.committed()  # acknowledged once the store has it
        except RouterError:
            raise
        except Exception as exc:
            log.exception("router %s failed in send_feedback", self.name)
            raise RouterFailed(f"router {self.name} failed in send_feedback: {type(exc).__name__}: "
                               f"{clip(str(exc))}") from exc

    def _applied(self, fb: Feedback) -> dict:
        """Metrics and the reply of an applied feedback: a failure here is logged, never the
        call's (the router's tags and metrics are then left out of the reply)."""
        try:
            self.metrics.fed_back(fb.routing, fb.reward if fb.reward_given else None, self.router.n_children)
        except Exception:
            log.exception("router %s: feedback applied, but recording its metrics failed", self.name)
        try:
            return replies.reply_meta(fb.request.puid, self.router_tags(), None, self._router_metrics())
        except Exception:
            log.exception("router %s: feedback applied, but its tags() or metrics() failed", self.name)
            return replies.reply_meta(fb.request.puid, {})

    def router_tags(self) -> dict:
        if not self._has_tags:
            return {}
        tags = self.router.tags()
        if not isinstance(tags, dict):
            raise RouterFailed(f"router {self.name}: tags() must return a dict")
        return tags

    def _router_metrics(self) -> list:
        return self.metrics.custom(self.router.metrics()) if self._has_metrics else []

    # --- transport entry points: raw in, raw out -----------------------------------------

    def _admit(self) -> None:
        if self.draining:
            raise NotReady("shutting down: retry on another replica")
        if self.max_in_flight and self.in_flight >= self.max_in_flight:
            raise TooManyRequests(f"more than {self.max_in_flight} requests in flight; retry later")

    async def serve(self, endpoint: str, transport: str, decoded, act, encode):
        """Runs one call: admission, timing, error counting. `decoded` is a thunk that
        decodes the input, `act` the dataplane step, `encode` makes the reply."""
        if not self.loaded:
            raise NotReady(f"router {self.name} is not ready (loading)")
        self._admit()
        self.in_flight += 1
        start = time.perf_counter()
        try:
            return encode(await act(decoded()))
        except RouterError as exc:
            self.metrics.failed(endpoint, exc.http_status)
            raise
        except Exception as exc:  # a bug of ours: still a clean 500, never a dropped call
            log.exception("internal error in %s", endpoint)
            self.metrics.failed(endpoint, 500)
            raise RouterFailed(f"internal error: {type(exc).__name__}: {clip(str(exc))}") from exc
        finally:
            self.in_flight -= 1
            self.metrics.timer(endpoint, transport).observe(time.perf_counter() - start)

    def route_json(self, message: object, headers=None, path: str = "", query=None):
        return self.serve("route", "rest", lambda: from_json.request(message, headers, path, query),
                           self.route, replies.route_json)

    def feedback_json(self, message: object, headers=None, path: str = "", query=None):
        return self.serve("feedback", "rest", lambda: from_json.feedback(message, self.unit_id, headers, path, query),
                           self.feedback, replies.feedback_json)

    def route_proto(self, msg, headers=None, path: str = "", query=None):
        return self.serve("route", "grpc", lambda: from_proto.request(msg, headers, path, query), self.route,
                           self._proto_replies.route)

    def feedback_proto(self, msg, headers=None, path: str = "", query=None):
        return self.serve("feedback", "grpc", lambda: from_proto.feedback(msg, self.unit_id, headers, path, query),
                           self.feedback, replies.empty_data_proto_bytes)

    # --- introspection -----------------------------------------------------------------

    def state_json(self) -> bytes:
        return replies.dumps({"router": self.name, "unit": self.unit_id, "state": self.router.state(),
                              "store": self.store.describe(), "pid": os.getpid()})  # pid: which worker answered

    def metadata(self) -> dict:
        if self.router.has_hook("init_metadata"):
            return self.router.init_metadata()
        # custom values are strings, as Seldon's metadata schema (and SeldonModelMetadata) has them
        n = self.router.n_children
        return {"name": self.name, "versions": [], "platform": "seldon-routers", "inputs": [], "outputs": [],
                "custom": {"type": "ROUTER", "unit": self.unit_id, "n_children": "" if n is None else str(n)}}

    def health_status(self) -> bytes:
        return replies.health_json(self.router.health_status() if self.router.has_hook("health_status") else None)
