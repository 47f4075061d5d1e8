"""The base class: the contract every router keeps, built-ins and users' alike.

A router writes one entry point per call, in either form, and the base class bridges to
the other, so one class serves under this project's server (which calls the rich form)
and, unchanged, under Seldon's `seldon-core-microservice` (which calls Seldon's form):

    route:     decide(request) -> Decision | int     or   route(features, feature_names, **kwargs) -> int
    feedback:  learn(feedback)                        or   send_feedback(features, feature_names, reward, truth, routing)

This module imports nothing beyond the standard library and its siblings: a router must
stay loadable in Seldon's own environment (numpy<2, protobuf<4, Flask<3).
"""

from __future__ import annotations

import asyncio
import inspect
import numbers
from collections.abc import Mapping
from typing import Any, Awaitable, NamedTuple, Optional, Union

from .errors import RouterError, RouterFailed, quote
from .request import Feedback, Request

ALL_CHILDREN = -1  # send the request to every child
NO_CHILDREN = -2  # send it to none: the request itself is the response


class Decision(NamedTuple):
    """A route plus the tags that explain it (chosen arm, its name, its probability...).
    A tuple, because one is made per request."""

    child: int
    tags: Optional[Mapping[str, Any]] = None


def check_decision(decision, name: str, n_children: Optional[int]) -> tuple[int, Any]:
    """A router's answer as (child, tags): an integer within [-2, n_children), or a Decision
    holding one; anything else is the router's failure (RouterFailed naming it)."""
    tags = None
    if type(decision) is Decision:
        decision, tags = decision.child, decision.tags
        if tags is not None and not isinstance(tags, Mapping):
            raise RouterFailed(f"router {name} returned tags {quote(tags)}; Decision.tags must be a mapping")
    if type(decision) is not int and (isinstance(decision, bool) or not isinstance(decision, numbers.Integral)):
        raise RouterFailed(f"router {name} returned {quote(decision)} ({type(decision).__name__}); "
                           "a route must be an integer")
    child = int(decision)  # a numpy integer too: Seldon's wrapper refuses anything but int
    if child < NO_CHILDREN or (n_children is not None and child >= n_children):
        valid = f"-2..{n_children - 1}" if n_children is not None else ">= -2"
        raise RouterFailed(f"router {name} returned route {child}, outside {valid}")
    return child, tags


def _wrote(cls: type, name: str) -> bool:
    """Whether `cls` (or a base between it and Router) defines `name` itself."""
    for klass in cls.__mro__:
        if name in klass.__dict__:
            return klass is not Router
    return False


class optional_hook:
    """A hook Router declares as a no-op, absent from instances whose class does not write it.

    Seldon's wrapper asks `hasattr(model, "metrics")` (likewise tags, health_status,
    init_metadata) and, when true, does per-call work a plain class never pays for: a second
    round trip to its metrics Manager process on every route (about a third of its
    throughput), or a different health and metadata reply. So the no-op is documented here,
    reachable through `super()` from an override, and invisible to hasattr() otherwise;
    this project's server asks `Router.has_hook` instead.
    """

    def __init__(self, func):
        self.func = func
        self.__doc__ = func.__doc__

    def __set_name__(self, owner, name: str) -> None:
        self.name = name

    def __get__(self, obj, objtype=None):
        if obj is None:
            return self.func
        if _wrote(type(obj), self.name):  # reached through super() from the class's own hook
            return self.func.__get__(obj, objtype)
        raise AttributeError(f"{type(obj).__name__} has no {self.name}() hook")


def _resolve(result, what: str):
    """An awaitable from the rich form, awaited for Seldon's (synchronous) form."""
    if not inspect.isawaitable(result):
        return result
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        async def wait():
            return await result
        return asyncio.run(wait())
    close = getattr(result, "close", None)
    if close is not None:
        close()  # never awaited: say so now, not as a warning at garbage collection
    raise RouterError(f"{what} returned an awaitable inside a running event loop: await the rich form instead")


class Router:
    """Subclass and write `decide` or `route`; write `learn` or `send_feedback` too if the
    router learns. Every other method is an optional hook with a no-op default.

    Class attributes a router may set:
      n_children: how many children it routes over; when set, any decision outside
        [-2, n_children) is a router failure instead of being sent on, and feedback must
        name one of them.
      branch_names: the children's names, in the graph's order (tags, state, metadata).
      reads_features: see below.
    """

    n_children: int | None = None
    branch_names: list | None = None
    name: str = ""  # shown in tags, errors and metadata; defaults to the class name
    # False for a router that never looks at the request's tensor data: the server then
    # skips decoding it on Route. True (the default) decodes it before the router runs, so
    # a malformed tensor is refused before the router can change any state.
    reads_features: bool = True

    # Worked out once per class: which form of each call it writes, and what `route` takes.
    _writes_decide = _writes_route = _writes_learn = _writes_send_feedback = False
    _route_takes_meta = False
    _route_takes_request = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for form in ("decide", "route", "learn", "send_feedback"):
            setattr(cls, f"_writes_{form}", _wrote(cls, form))
        params = inspect.signature(cls.route).parameters
        var_kw = any(p.kind is p.VAR_KEYWORD for p in params.values())
        cls._route_takes_meta = cls._writes_route and (var_kw or "meta" in params)
        cls._route_takes_request = cls._writes_route and (var_kw or "request" in params)

    # --- routing: write one of the two ---------------------------------------------------

    def decide(self, request: Request) -> Union[Decision, int, Awaitable]:
        """The rich form: the child for this request (a Decision with tags, or an int), or
        an awaitable of one. By default, calls `route` with the keywords its signature takes."""
        if not self._writes_route:
            raise NotImplementedError(f"{type(self).__name__} must implement decide(request) or route()")
        kwargs = {}
        if self._route_takes_meta:
            kwargs["meta"] = request.meta
        if self._route_takes_request:
            kwargs["request"] = request
        return self.route(request.features, request.feature_names, **kwargs)

    def route(self, features, feature_names, **kwargs) -> int:
        """Seldon's form: the index of the child to serve this request, ALL_CHILDREN or
        NO_CHILDREN. By default, calls `decide` on the request view of these arguments
        (Seldon's wrapper passes `meta`; it carries no headers, path or query)."""
        if not self._writes_decide:
            raise NotImplementedError(f"{type(self).__name__} must implement decide(request) or route()")
        decision = self.decide(Request.from_seldon(features, feature_names, kwargs.get("meta")))
        if type(decision) is not Decision and type(decision) is not int:
            decision = _resolve(decision, f"{self.describe()}.decide")
        return check_decision(decision, self.describe(), self.n_children)[0]

    # --- feedback: write one of the two if the router learns --------------------------

    def learn(self, feedback: Feedback):
        """The rich form: learn from a reward for a request this router sent to child
        `feedback.routing` (may return an awaitable). By default, calls `send_feedback`."""
        if not self._writes_send_feedback:
            return None
        req = feedback.request
        return self.send_feedback(req.features, req.feature_names, feedback.reward, feedback.truth,
                                  routing=feedback.routing)

    def send_feedback(self, features, feature_names, reward, truth, routing=None, **kwargs):
        """Seldon's form (`routing`: response.meta.routing[unit], None when absent). By
        default, calls `learn` with the feedback view of these arguments."""
        if not self._writes_learn:
            return None
        return _resolve(self.learn(Feedback.from_seldon(features, feature_names, reward, truth, routing)),
                        f"{self.describe()}.learn")

    @property
    def learns(self) -> bool:
        """True when the router writes learn or send_feedback: feedback must then name a child."""
        return self._writes_learn or self._writes_send_feedback

    # --- optional hooks (no-ops) ------------------------------------------------------

    def load(self) -> None:
        """Called once after construction, before the first request (both servers call it)."""

    def close(self) -> None:
        """Called once at shutdown, after the last call has drained (threads, files, models)."""

    @optional_hook
    def tags(self) -> dict:
        """Extra tags for every reply (the Seldon wrapper calls this too)."""
        return {}

    @optional_hook
    def metrics(self) -> list:
        """Custom metrics, Seldon style: [{"type": "COUNTER"|"GAUGE"|"TIMER", "key", "value"}]
        (TIMER in milliseconds), reported after every call."""
        return []

    @optional_hook
    def health_status(self):
        """What GET /health/status reports as jsonData (default: a SUCCESS status)."""
        return None

    @optional_hook
    def init_metadata(self) -> dict:
        """What GET /metadata answers (default: the router's name, type and children)."""
        return {}

    def register_metrics(self, metrics) -> None:
        """The server calls this once with its metrics (server/metrics.py: `histogram(name,
        documentation, buckets)` makes a Prometheus histogram in this unit's registry), for
        a router with metrics of its own. Seldon's wrapper does not; `metrics()` is the
        portable way."""

    def state(self) -> dict:
        """The learned state as a JSON-serialisable value (served by GET /state)."""
        return {}

    def load_state(self, state: dict) -> None:
        """Restore what `state()` returned. A router that keeps learned state writes both
        (see `restores`); raise ConfigError for a state it cannot use, changing nothing."""
        raise NotImplementedError(f"{type(self).__name__} does not restore state")

    # --- what the server asks ---------------------------------------------------------

    def has_hook(self, name: str) -> bool:
        """Whether this router writes the hook `name` (the server calls only those)."""
        return _wrote(type(self), name)

    @property
    def restores(self) -> bool:
        """The snapshot protocol (state/file.py): True when `load_state` restores `state()`."""
        return self.has_hook("load_state")

    def describe(self) -> str:
        return self.name or type(self).__name__
