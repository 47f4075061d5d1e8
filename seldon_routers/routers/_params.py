"""Typed readers for router configuration: each turns one value into what the router uses,
or raises a ConfigError naming the field, so bad configuration stops start-up."""

from __future__ import annotations

import math
import re

from ..errors import ConfigError

# Go's time.ParseDuration units, which Kubernetes' metav1.Duration (a ModelRoute's timeout,
# a canary's analysis interval) is written in: "300ms", "30s", "5m", "1h30m", "1.5h".
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_WHOLE = re.compile(rf"(?:{_PART.pattern})+")


def duration(value, field: str) -> float:
    """A duration in seconds, >= 0: a Go/Kubernetes duration string ("30s", "5m",
    "1h30m", "250ms"; "0" alone needs no unit), or a number of seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value) or value < 0:
            raise ConfigError(f"{field}: expected a duration >= 0, got {value!r}")
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if text == "0":
            return 0.0
        if _WHOLE.fullmatch(text):
            return sum(float(number) * _UNIT_SECONDS[unit] for number, unit in _PART.findall(text))
    raise ConfigError(f"{field}: expected a duration like 30s, 5m or 1h30m (units h, m, s, ms, us, ns), "
                      f"got {value!r}")
