"""What `least-latency` predicts from a pod's profile, when the pod has one: its measured
seconds to the first token (ttft) and per output token (tpot) at a load, in the format the
`slo` strategy reads (slo.py; bench/llm_fleet/calibrate.py writes one):

    profile: {load: [0, 4, 16], ttft: [0.06, 0.09, 0.3], tpot: [0.002, 0.0022, 0.003]}

Linear between two points, past the last one extrapolated from the last two (a queue grows
linearly), never below 0. Either curve may be missing: the learned estimate stands in.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import Optional

from ...errors import ConfigError


def _numbers(value, field: str) -> list:
    if not isinstance(value, list) or not value or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 for v in value):
        raise ConfigError(f"{field}: expected a non-empty list of numbers >= 0, got {value!r}")
    return [float(v) for v in value]


class Curves:
    """A pod's ttft and tpot by load; `of(None, where)` is None (no profile, or one without `load`)."""

    def __init__(self, load: list, curves: dict):
        self.load, self.curves = load, curves

    @classmethod
    def of(cls, profile, where: str) -> Optional["Curves"]:
        if not isinstance(profile, dict) or "load" not in profile:
            return None
        load = _numbers(profile["load"], f"{where}.load")
        if any(b <= a for a, b in zip(load, load[1:])):
            raise ConfigError(f"{where}.load: must increase, got {profile['load']!r}")
        curves = {}
        for key in ("ttft", "tpot"):
            if key in profile:
                curves[key] = _numbers(profile[key], f"{where}.{key}")
                if len(curves[key]) != len(load):
                    raise ConfigError(f"{where}.{key}: expected {len(load)} values (one per load point), "
                                      f"got {len(curves[key])}")
        return cls(load, curves)

    def at(self, key: str, load: float) -> Optional[float]:
        ys = self.curves.get(key)
        if ys is None:
            return None
        xs = self.load
        if len(xs) == 1 or load <= xs[0]:
            return ys[0]
        i = min(bisect_right(xs, load), len(xs) - 1)
        x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
        return max(0.0, y0 + (y1 - y0) * (load - x0) / (x1 - x0))
