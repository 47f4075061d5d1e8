"""The adapter that serves a plain Seldon wrapper class (route/send_feedback and optional
hooks, no Router base) as a Router, so the server and the stores see one contract."""

from __future__ import annotations

import inspect
from typing import Any

from .router import Router

_SELDON_HOOKS = ("load", "close", "tags", "metrics", "health_status", "init_metadata", "state", "load_state")


class SeldonStyle(Router):
    """A plain Seldon wrapper class (route/send_feedback and optional hooks, no Router
    base) served as it is: each call and hook goes to it, a hook only if it defines it."""

    def __init__(self, inner: Any):
        self.inner = inner
        self.n_children = getattr(inner, "n_children", None)
        self.branch_names = getattr(inner, "branch_names", None)
        self.name = type(inner).__name__
        params = inspect.signature(inner.route).parameters
        self._takes_meta = any(p.kind is p.VAR_KEYWORD for p in params.values()) or "meta" in params

    def route(self, features, feature_names, **kwargs) -> int:
        if self._takes_meta and "meta" in kwargs:
            return self.inner.route(features, feature_names, meta=kwargs["meta"])
        return self.inner.route(features, feature_names)

    def send_feedback(self, features, feature_names, reward, truth, routing=None, **kwargs):
        if self.learns:
            return self.inner.send_feedback(features, feature_names, reward, truth, routing=routing)
        return None

    @property
    def learns(self) -> bool:
        return hasattr(self.inner, "send_feedback")

    def has_hook(self, name: str) -> bool:
        return name in _SELDON_HOOKS and callable(getattr(self.inner, name, None))

    def _call(self, name: str, *args, default=None):
        hook = getattr(self.inner, name, None)
        return hook(*args) if callable(hook) else default

    def load(self):
        self._call("load")

    def close(self):
        self._call("close")

    def tags(self):
        return self._call("tags", default={})

    def metrics(self):
        return self._call("metrics", default=[])

    def health_status(self):
        return self._call("health_status")

    def init_metadata(self):
        return self._call("init_metadata", default={})

    def state(self):
        return self._call("state", default={})

    def load_state(self, state):
        if not self.has_hook("load_state"):
            super().load_state(state)
        self.inner.load_state(state)


def class_name(router: Router) -> str:
    """The user's class behind a router (the adapted one for a plain Seldon-style class)."""
    return type(router.inner).__name__ if isinstance(router, SeldonStyle) else type(router).__name__


def as_router(obj: Any) -> Router:
    """A Router as it is; any other object with `route` through the Seldon-style adapter."""
    return obj if isinstance(obj, Router) else SeldonStyle(obj)
