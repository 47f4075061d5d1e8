"""Weighted choices among children, random or sticky, shared by the routers that split
traffic by weights (ab-test, rules, time-of-day, canary)."""

from __future__ import annotations

import bisect
import hashlib
from typing import Optional, Sequence

from ..errors import BadRequest, ConfigError
from ..request import MAX_DEPTH, Request, too_deep
from ._params import weights as normalise

_SCALE = float(2 ** 64)


def key_fraction(key: str, salt: str = "") -> float:
    """A stable uniform number in [0, 1) for a key: the same on every replica, process and
    restart (Python's hash() is salted per process, so it cannot be used)."""
    digest = hashlib.blake2b(f"{salt}\0{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / _SCALE


class WeightedChoice:
    """Children with relative weights; `pick(u)` maps u in [0, 1) to one of them, so a
    random u gives a random split and a key's fraction gives a sticky one."""

    __slots__ = ("children", "weights", "_cumulative")

    def __init__(self, children: Sequence[int], weights: Optional[Sequence[float]] = None, field: str = "weights"):
        if not children:
            raise ConfigError(f"{field}: no children to choose from")
        if weights is None:
            weights = [1.0] * len(children)
        if len(weights) != len(children):
            raise ConfigError(f"{field}: {len(weights)} weights for {len(children)} children")
        self.children = list(children)
        self.weights = normalise(weights, field)
        cumulative, total = [], 0.0
        for w in self.weights:
            total += w
            cumulative.append(total)
        # Rounding guard: every u in [0, 1) lands on a child with weight > 0.
        last = max(i for i, w in enumerate(self.weights) if w > 0)
        cumulative[last:] = [1.0] * (len(cumulative) - last)
        self._cumulative = cumulative

    def pick(self, u: float) -> int:
        """The child for u in [0, 1)."""
        return self.children[bisect.bisect_right(self._cumulative, u)]

    def probability(self, child: int) -> float:
        return sum(w for c, w in zip(self.children, self.weights) if c == child)


class StickyKey:
    """Where a request's stickiness key comes from: `header:NAME` (or a bare NAME: a
    header) or `tag:NAME` (meta.tags). A request without the key gets a random choice."""

    __slots__ = ("source", "name", "spec")

    def __init__(self, spec: str, field: str = "sticky_key"):
        source, sep, name = spec.partition(":")
        if not sep:
            source, name = "header", spec
        if source not in ("header", "tag") or not name.strip():
            raise ConfigError(f"{field}: expected header:NAME or tag:NAME, got {spec!r}")
        self.source, self.name, self.spec = source, name.strip().lower() if source == "header" else name.strip(), spec

    def of(self, request: Request) -> Optional[str]:
        if self.source == "header":
            return request.headers.get(self.name)
        value = (request.meta.get("tags") or {}).get(self.name)
        if isinstance(value, (list, dict)) and too_deep(value):  # str() of it would recurse without end
            raise BadRequest(f"meta.tags.{self.name}: nested deeper than {MAX_DEPTH} levels; a sticky key is "
                             "a string (or a small JSON value)")
        return None if value is None else str(value)

    def fraction(self, request: Request, salt: str = "") -> Optional[float]:
        """The key's stable fraction, or None when the request has no key."""
        key = self.of(request)
        return None if key is None or key == "" else key_fraction(key, salt)
