"""Exactly-once feedback per puid, shared by the learning routers (bandits, canary): the
last N puids seen, oldest forgotten first."""

from __future__ import annotations

from collections import OrderedDict
from typing import Optional

from ._params import integer


class SeenPuids:
    """Not locked itself: call `first` under the router's lock, so two copies of one
    feedback racing in two threads never both pass."""

    __slots__ = ("size", "_seen")

    def __init__(self, size: int, field: str = "dedupe"):
        self.size = integer(size, field)
        self._seen: OrderedDict = OrderedDict()

    def first(self, puid: Optional[str]) -> bool:
        """False for a puid seen among the last `size`; True otherwise (and always for an
        empty puid, or with size 0: nothing to tell copies apart by)."""
        if not puid or not self.size:
            return True
        if puid in self._seen:
            return False
        self._seen[puid] = None
        if len(self._seen) > self.size:
            self._seen.popitem(last=False)
        return True

    def __len__(self) -> int:
        return len(self._seen)
