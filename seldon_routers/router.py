"""The base class: the contract every router keeps.

The signatures of `route` and `send_feedback` are exactly those of Seldon's python
wrapper, so a subclass also runs unchanged under `seldon-core-microservice`. This module
imports nothing beyond the standard library and its siblings: a router must stay loadable
in Seldon's own environment (numpy<2, protobuf<4, Flask<3).
"""

from __future__ import annotations

import inspect
from typing import Any, Awaitable, Mapping, NamedTuple, Optional, Union

from .request import Feedback, Request

ALL_CHILDREN = -1  # send the request to every child
NO_CHILDREN = -2  # send it to none: the request itself is the response


class Decision(NamedTuple):
    """A route plus the tags that explain it (chosen arm, its name, its probability...).
    A tuple, because one is made per request."""

    child: int
    tags: Optional[Mapping[str, Any]] = None


class Router:
    """Subclass and write `route`; write `send_feedback` too if the router learns.

    Class attributes a router may set:
      n_children: how many children it routes over; when set, the server rejects any
        decision outside [-2, n_children) as a router failure instead of sending it on.
      reads_features: see below.
    """

    n_children: int | None = None
    name: str = ""  # shown in tags, errors and metadata; defaults to the class name
    # False for a router that never looks at the request's tensor data: the server then
    # skips decoding it. True (the default) decodes it before `route` runs, so a malformed
    # tensor is refused before the router can change any state.
    reads_features: bool = True

    # How to call `route`, worked out once per class from its signature.
    _route_takes_meta = False
    _route_takes_request = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        params = inspect.signature(cls.route).parameters
        var_kw = any(p.kind is p.VAR_KEYWORD for p in params.values())
        cls._route_takes_meta = var_kw or "meta" in params
        cls._route_takes_request = var_kw or "request" in params

    # --- what users write -------------------------------------------------------------

    def route(self, features, feature_names, **kwargs) -> int:
        """Return the index of the child to serve this request, ALL_CHILDREN or NO_CHILDREN."""
        raise NotImplementedError(f"{type(self).__name__} must implement route()")

    def send_feedback(self, features, feature_names, reward, truth, routing=None, **kwargs):
        """Learn from a reward for a request this router sent to child `routing`."""
        return None

    # --- optional hooks (no-ops by default) ---------------------------------------------

    def load(self) -> None:
        """Called once after construction, before the first request."""

    def tags(self) -> dict:
        """Extra tags for every reply (the Seldon wrapper calls this too)."""
        return {}

    def metrics(self) -> list:
        """Custom metrics, Seldon style: [{"type": "COUNTER"|"GAUGE"|"TIMER", "key", "value"}]."""
        return []

    def register_metrics(self, metrics) -> None:
        """The server calls this once with its unit's metrics: a router with metrics of its
        own creates them with `metrics.histogram(name, documentation, buckets)`, which returns
        an object with `observe(value)` (so a router never imports prometheus_client). Seldon's
        wrapper does not call it; `metrics()` is the portable way."""

    def state(self) -> dict:
        """The learned state as a JSON-serialisable value (served by GET /state)."""
        return {}

    def load_state(self, state: dict) -> None:
        """Restore what `state()` returned (the file store calls it at start-up). A router
        that keeps learned state writes both; raise ConfigError for a state it cannot use."""
        raise NotImplementedError(f"{type(self).__name__} does not restore state")

    # --- what the server calls ----------------------------------------------------------

    @property
    def learns(self) -> bool:
        """True when the router overrides send_feedback: feedback must then name a child."""
        return type(self).send_feedback is not Router.send_feedback

    def decide(self, request: Request) -> Union[Decision, int, Awaitable]:
        """The server's entry point. Built-ins override this to return tagged Decisions;
        the default calls `route` with the keywords its signature accepts."""
        kwargs = {}
        if self._route_takes_meta:
            kwargs["meta"] = request.meta
        if self._route_takes_request:
            kwargs["request"] = request
        return self.route(request.features, request.feature_names, **kwargs)

    def learn(self, feedback: Feedback):
        """The server's entry point for feedback: calls `send_feedback`."""
        req = feedback.request
        return self.send_feedback(
            req.features, req.feature_names, feedback.reward, feedback.truth, routing=feedback.routing
        )

    def describe(self) -> str:
        return self.name or type(self).__name__
