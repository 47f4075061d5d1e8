"""`time-of-day`: windows of local wall-clock time (and weekdays) in a named time zone,
each to a child or a weighted (optionally sticky) choice of children; outside every window
to `default`, else a 404 NO_ROUTE. The schedule's semantics live in schedule.py."""

from __future__ import annotations

import math
import time
from typing import Callable, Optional, Union

import numpy as np

from ...errors import NoRoute
from ...request import Request
from ...router import Decision, Router
from .._params import integer, items, optional
from .schedule import day_names, format_time, load


class _Slot:
    """What one window (or the default) decides, its Decisions made once (never mutated)."""

    __slots__ = ("choice", "salt", "single", "drawn", "sticky")

    def __init__(self, choice, names: list, salt: str, head: dict, tail: dict):
        self.choice, self.salt = choice, salt
        self.drawn, self.sticky = {}, {}
        for child in set(choice.children):
            tags = {**head, "route": child, "branch": names[child], "propensity": choice.probability(child), **tail}
            self.drawn[child] = Decision(child, tags)
            self.sticky[child] = Decision(child, {**tags, "sticky": True})
        self.single = self.drawn[choice.children[0]] if len(choice.children) == 1 else None


class TimeOfDay(Router):
    """Routes by the first window that holds the current local time (docs/time-of-day.md).

    config: the schedule, inline JSON or YAML (YAML needs the `rules` extra: PyYAML).
    config_file: a path to the same document (.json, .yaml); give one of the two.
    branch_names: the children's names, 'a:b:c', in the graph's order (or `children` in the config).
    n_branches: the number of children, when windows name children by index only.
    timezone: an IANA zone name; overrides the config's `timezone` (default UTC).
    seed: seeds this instance's own generator for weighted choices (0 is a seed).
    sticky_key: header:NAME or tag:NAME; overrides the config's: the same key, the same child.
    clock: returns the time now as POSIX seconds (default time.time); for tests, not Seldon.

    Under Seldon's wrapper the clock decides as here; a tag:NAME sticky key works (it passes
    meta), a header:NAME one sees no headers and draws at random.
    """

    name = "time-of-day"
    reads_features = False  # the clock decides, never the request's data

    def __init__(self, config: Union[str, dict, None] = None, config_file: Optional[str] = None,
                 branch_names: Union[str, list, None] = None, n_branches: Optional[int] = None,
                 timezone: Optional[str] = None, seed: Optional[int] = None, sticky_key: Optional[str] = None,
                 clock: Optional[Callable[[], float]] = None):
        names = optional(items, branch_names, "branch_names")
        self.schedule = load(config, config_file, names, n_branches, timezone, sticky_key)
        self.branch_names = self.schedule.children
        self.n_children = len(self.branch_names)
        self.windows = self.schedule.windows
        self.seed = optional(integer, seed, "seed")
        self.rng = np.random.default_rng(self.seed)
        self.clock = time.time if clock is None else clock
        self._slots = [_Slot(w.choice, self.branch_names, str(w.label), {"window": w.label}, {}) for w in self.windows]
        default = self.schedule.default
        self._default = None if default is None else _Slot(default, self.branch_names, "default", {}, {"default": True})
        # (POSIX second, its slot): the decision only changes at whole local seconds, so
        # the zone conversion runs once per second of the clock, not once per request.
        self._cached = (None, None)

    def _slot_at(self, second: int) -> Optional[_Slot]:
        window = self.schedule.active(second)
        return self._default if window is None else self._slots[window.index]

    def decide(self, request: Request) -> Decision:
        second = math.floor(self.clock())
        cached = self._cached
        if cached[0] != second:
            cached = self._cached = (second, self._slot_at(second))  # one assignment: thread-safe
        slot = cached[1]
        if slot is None:
            raise NoRoute(f"router {self.describe()}: {self.schedule.local(second).isoformat()} "
                          f"({self.schedule.zone.key}) is outside every window and no default child is configured")
        if slot.single is not None:
            return slot.single
        u = None if self.schedule.sticky is None else self.schedule.sticky.fraction(request, slot.salt)
        if u is None:
            return slot.drawn[slot.choice.pick(self.rng.random())]
        return slot.sticky[slot.choice.pick(u)]

    def _weights(self, choice) -> dict:
        return {self.branch_names[c]: w for c, w in zip(choice.children, choice.weights)}

    def state(self) -> dict:
        schedule, now = self.schedule, math.floor(self.clock())
        active, change = schedule.active(now), schedule.next_change(now)
        windows = [{"window": w.label, "days": day_names(w.days), "start": format_time(w.start),
                    "end": format_time(w.end), "to": self._weights(w.choice)} for w in self.windows]
        return {"timezone": schedule.zone.key, "children": self.branch_names, "windows": windows,
                "default": None if schedule.default is None else self._weights(schedule.default),
                "sticky_key": None if schedule.sticky is None else schedule.sticky.spec,
                "now": schedule.local(now).isoformat(), "active": None if active is None else active.label,
                "next_change": None if change is None else schedule.local(change).isoformat()}
