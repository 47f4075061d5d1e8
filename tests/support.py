"""What many test modules need, written once: gating on an optional dependency (skip on a
user's machine, fail in CI), polling until a condition holds, and reading Prometheus'
text exposition. Importable from every test folder (pyproject's `pythonpath`)."""

from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import threading
import time
from typing import Callable, Optional, Union

import pytest

# Where one of these is "1" (CI, see .ci/run), what it guards must be there: a missing
# dependency fails the test instead of skipping it, so CI is never green by skipping.
PEERS = "SELDON_ROUTERS_REQUIRE_PEERS"  # Seldon's own client and wrapper, the protobuf-runtime venvs
REDIS = "SELDON_ROUTERS_REQUIRE_REDIS"  # redis-server and the redis client
MODELS = "SELDON_ROUTERS_REQUIRE_MODELS"  # torch, onnxruntime, scikit-learn, the prompt-router encoder
IMAGES = "SELDON_ROUTERS_REQUIRE_IMAGES"  # podman and the Debian base (scripts/container_engine.sh)


def required(env: str) -> bool:
    return os.environ.get(env) == "1"


def unavailable(reason: str, env: str):
    """Skips the test saying why, or fails it where `env` is 1."""
    if required(env):
        pytest.fail(f"{reason} ({env}=1: this is required here)", pytrace=False)
    pytest.skip(reason)


Check = Callable[[], Optional[str]]  # None when what it checks is there, else why not


def on_path(program: str) -> Check:
    """A check that `program` is on PATH."""
    return lambda: None if shutil.which(program) else f"{program} is not on PATH"


def installed(*modules: str) -> Check:
    """A check that `modules` can be imported, without importing them (some are slow to)."""
    def check():
        missing = [m for m in modules if importlib.util.find_spec(m) is None]
        return f"{', '.join(missing)} not installed" if missing else None
    return check


def require(what: Union[str, Check], env: str, hint: str):
    """A module name: the module, imported. A check (on_path, installed, any callable
    returning None or a reason): None. Either way, when it is not there the test skips
    with `hint` (how to install it), or fails where `env` is 1."""
    if isinstance(what, str):
        try:
            return importlib.import_module(what)
        except ImportError as exc:
            unavailable(f"{what} is not installed ({exc}): {hint}", env)
    reason = what()
    if reason:
        unavailable(f"{reason}: {hint}", env)
    return None


def wait_until(predicate: Callable, timeout: float = 30, interval: float = 0.05, what: str = "condition"):
    """Calls `predicate` until it returns a true value, and returns that value; raises
    TimeoutError, with the last value seen, after `timeout` seconds. The timeout is a
    safety net against a hang, never a performance bound: keep it generous."""
    deadline = time.monotonic() + timeout
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what}: not within {timeout}s (last: {last!r})")
        time.sleep(interval)


class Samples(dict):
    """Prometheus samples: {(name, frozenset(labels.items())): value}."""

    def value(self, name: str, **labels) -> float:
        """The sample with exactly these labels; 0.0 when there is none (not yet counted)."""
        return self.get((name, frozenset((k, str(v)) for k, v in labels.items())), 0.0)

    def total(self, name: str) -> float:
        """The sum of a sample's values over all its label sets."""
        return sum(v for (n, _), v in self.items() if n == name)

    def names(self) -> set:
        return {n for n, _ in self}


def scrape(source) -> Samples:
    """Samples from Prometheus' text format: `source` is that text, a URL to GET, or a
    served router (anything with a `metrics_port`: its /metrics)."""
    from prometheus_client.parser import text_string_to_metric_families

    if hasattr(source, "metrics_port"):
        source = f"http://127.0.0.1:{source.metrics_port}/metrics"
    if source.startswith(("http://", "https://")):
        import requests

        r = requests.get(source, timeout=10)
        assert r.status_code == 200, (source, r.status_code, r.text)
        source = r.text
    return Samples({(s.name, frozenset(s.labels.items())): s.value
                    for family in text_string_to_metric_families(source) for s in family.samples})


class ClientThreads:
    """Load from client threads, as a context manager: a subclass sets `self.threads` (daemon
    threads that run until `self.stop` is set); leaving stops and joins them."""

    def __init__(self):
        self.stop = threading.Event()
        self.threads: list = []

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(30)
