"""The `time-of-day` schedule: windows of local wall-clock time on chosen weekdays in one
IANA time zone, validated once at start-up. Every error names the window (index and name)
and the field, as the rules configuration does.

A window's `days` are the days it STARTS on (as cron reads them): a Friday 22:00-06:00
window also covers Saturday until 06:00, and Saturday's early hours are not covered by a
window whose days leave Friday out. Times are wall-clock times in the zone: in the autumn's
repeated hour both occurrences of a wall time are in a window that contains it, and the
wall times that spring skips never occur.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Optional
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ...errors import ConfigError
from .._config import child_names, named_entries, read_document, targets
from .._config import sticky_key as read_sticky_key
from .._weights import WeightedChoice

TOP_KEYS = ("timezone", "children", "default", "sticky_key", "windows")
WINDOW_KEYS = ("name", "days", "start", "end", "to")
DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
DAY = 86400
_TIME = re.compile(r"([0-9]{1,2}):([0-9]{2})(?::([0-9]{2}))?")


@dataclass
class Window:
    index: int
    label: Any  # the name if given, else the index: what tags and /state show
    days: frozenset  # weekdays it starts on, Monday = 0
    start: int  # seconds after local midnight
    end: int  # exclusive; <= start: the window runs past midnight into the next day
    choice: WeightedChoice

    def covers(self, weekday: int, second: int) -> bool:
        if self.start < self.end:
            return weekday in self.days and self.start <= second < self.end
        # past midnight: the evening belongs to today, the early hours to the day before
        return (second >= self.start and weekday in self.days) or (
            second < self.end and (weekday - 1) % 7 in self.days)


@dataclass
class Schedule:
    children: list
    zone: ZoneInfo
    windows: list
    default: Optional[WeightedChoice]
    sticky: Any  # a StickyKey, or None

    def local(self, t: float) -> datetime:
        return datetime.fromtimestamp(t, self.zone)

    def active(self, t: int) -> Optional[Window]:
        """The first window that covers POSIX second t, or None (the default applies)."""
        local = self.local(t)
        weekday, second = local.weekday(), local.hour * 3600 + local.minute * 60 + local.second
        for window in self.windows:
            if window.covers(weekday, second):
                return window
        return None

    def next_change(self, now: int, horizon_days: int = 8) -> Optional[int]:
        """The first POSIX second after `now` whose window differs from now's; None when
        none does within the horizon. A window changes only where the wall clock reaches an
        edge (a start or an end) or where it jumps (a change of UTC offset), so only those
        instants are tried."""
        current = self.active(now)
        edges = {w.start for w in self.windows} | {w.end % DAY for w in self.windows}
        midnight = self.local(now).replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
        candidates = set(self._offset_changes(now, now + (horizon_days + 1) * DAY))
        for day in range(-1, horizon_days + 1):
            for edge in edges:
                wall = midnight + timedelta(days=day, seconds=edge)
                for fold in (0, 1):  # both occurrences of a repeated wall time
                    candidates.add(int(wall.replace(tzinfo=self.zone, fold=fold).timestamp()))
        for t in sorted(c for c in candidates if c > now):
            if self.active(t) is not current:
                return t
        return None

    def _offset_changes(self, start: int, stop: int, step: int = 6 * 3600) -> list:
        """The first seconds of new UTC offsets in (start, stop], by bisection."""
        def offset(t):
            return self.local(t).utcoffset()
        found = []
        for lo in range(start, stop, step):
            hi, before = lo + step, offset(lo)
            if offset(hi) != before:
                while hi - lo > 1:
                    mid = (lo + hi) // 2
                    lo, hi = (mid, hi) if offset(mid) == before else (lo, mid)
                found.append(hi)
        return found


def zone(name: Any, field: str = "timezone") -> ZoneInfo:
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{field}: expected an IANA time zone name such as Europe/London, got {name!r}")
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a folder (America), a name too long
        raise ConfigError(f"{field}: unknown time zone {name!r} (an IANA name such as Europe/London; "
                          "where the system has no zone database, pip install tzdata)") from None


def parse_time(value: Any, where: str, is_end: bool = False) -> int:
    """'HH:MM' or 'HH:MM:SS' to seconds after midnight; '24:00' only as an end."""
    if isinstance(value, int) and not isinstance(value, bool):
        raise ConfigError(f"{where}: expected \"HH:MM\", got the number {value}: quote times in YAML "
                          "(unquoted, YAML 1.1 reads 17:30 as 1050)")
    match = _TIME.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ConfigError(f"{where}: expected \"HH:MM\" or \"HH:MM:SS\", got {value!r}")
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if minutes > 59 or seconds > 59 or total > DAY or (total == DAY and not is_end):
        raise ConfigError(f"{where}: {value!r} is not a time of day (00:00 to 23:59:59"
                          f"{', or 24:00 as an end' if is_end else ''})")
    return total


def _day(name: str, where: str) -> int:
    text = name.strip().lower()
    for i, full in enumerate(DAY_NAMES):
        if text in (full, full[:3]):
            return i
    raise ConfigError(f"{where}: unknown day {name!r} (mon..sun or monday..sunday, or a range like mon-fri)")


def parse_days(value: Any, where: str) -> frozenset:
    """A list of days and ranges ('mon-fri', 'fri-mon' wraps), or one such string."""
    if value is None:
        return frozenset(range(7))
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(i, str) for i in items):
        raise ConfigError(f"{where}: expected a list of days like [mon, tue] or a range like mon-fri, got {value!r}")
    days = set()
    for item in items:
        first, dash, last = item.partition("-")
        lo = _day(first, where)
        hi = _day(last, where) if dash else lo
        days.update((lo + i) % 7 for i in range((hi - lo) % 7 + 1))
    return frozenset(days)


def day_names(days: frozenset) -> list:
    return [DAY_NAMES[d][:3] for d in sorted(days)]


def format_time(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    return f"{hours:02d}:{rest // 60:02d}" + (f":{rest % 60:02d}" if rest % 60 else "")



def load(config: Any, config_file: Optional[str], branch_names: Optional[list], n_branches: Optional[int],
         timezone: Optional[str] = None, sticky_key: Optional[str] = None) -> Schedule:
    """The document (inline or a file) to a Schedule, validated; the parameters name the
    children and override the document's timezone and sticky_key."""
    doc = read_document(config, config_file)
    if not isinstance(doc, dict):
        raise ConfigError(f"config: expected a map with {', '.join(TOP_KEYS)}, got {type(doc).__name__}")
    unknown = sorted(set(doc) - set(TOP_KEYS))
    if unknown:
        raise ConfigError(f"config: unknown key {unknown[0]!r} (one of {', '.join(TOP_KEYS)})")
    names = child_names(doc.get("children"), branch_names, n_branches)
    tz = zone(timezone, "timezone (parameter)") if timezone is not None else zone(doc.get("timezone", "UTC"))
    sticky = read_sticky_key(sticky_key if sticky_key is not None else doc.get("sticky_key"), "sticky_key")
    default = None if doc.get("default") is None else targets(doc["default"], names, "default")[0]
    specs = doc.get("windows")
    if not isinstance(specs, list):
        raise ConfigError(f"windows: expected a list of windows, got {specs!r}")
    if not specs and default is None:
        raise ConfigError("windows: no windows and no default: every request would be refused")
    windows = []
    for i, label, where, spec in named_entries(specs, "windows", WINDOW_KEYS, "window"):
        for key in ("start", "end", "to"):
            if key not in spec:
                raise ConfigError(f"{where}.{key}: missing")
        windows.append(Window(i, label, parse_days(spec.get("days"), f"{where}.days"),
                              parse_time(spec["start"], f"{where}.start"),
                              parse_time(spec["end"], f"{where}.end", is_end=True),
                              targets(spec["to"], names, f"{where}.to")[0]))
    return Schedule(names, tz, windows, default, sticky)
