"""What the learning routers (bandits, canary) share about feedback: its reward checked
one way, and exactly-once application per puid (the last N puids seen, oldest forgotten
first)."""

from __future__ import annotations

import math
import numbers
from collections import OrderedDict
from typing import Optional

from ..errors import BadRequest, quote
from ._params import integer


def checked_reward(reward, reward_range: Optional[tuple], meaning: str) -> float:
    """A feedback's reward: a finite number, within reward_range (lo, hi) unless that is
    None; else a BadRequest naming `reward` and, in `meaning`, what the range is."""
    if isinstance(reward, bool) or not isinstance(reward, numbers.Real) or not math.isfinite(reward):
        raise BadRequest(f"reward: must be a finite number, got {quote(reward)}")
    if reward_range is not None and not reward_range[0] <= reward <= reward_range[1]:
        raise BadRequest(f"reward: must be within [{reward_range[0]:g}, {reward_range[1]:g}] ({meaning}), "
                         f"got {quote(reward)}")
    return float(reward)


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
