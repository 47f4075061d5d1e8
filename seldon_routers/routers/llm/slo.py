"""The `slo` strategy (heterogeneous GPUs): the cheapest pod predicted to meet the
objective (slo_ttft seconds to the first token, slo_tpot seconds per output token) at its
current load, the requests it has in flight.

Each pod carries a GPU type, a cost per hour and a profile measured offline (the
benchmark's calibration run writes one, bench/llm_fleet/calibrate.py):

    profile:
      load: [0, 2, 4, 8, 16, 32]           # requests in flight when a request arrives
      ttft: [0.06, 0.07, 0.09, 0.14, 0.3, 1.2]    # seconds to first token at that load
      tpot: [0.002, 0.002, 0.0022, 0.0025, 0.003, 0.003]  # seconds per output token
      throughput: [...]                    # optional: output tokens/s at that load (shown in state)

The prediction at a load between two points is interpolated linearly, past the last point
extrapolated from the last two (a queue grows linearly). When no pod is predicted to meet
the objective, slo_miss says what to answer: best-effort (the pod with the best predicted
margin, tagged slo=miss) or 429 / 503 (errors.NoCapacity, nothing counted).
"""

from __future__ import annotations

import math
from bisect import bisect_right

from ...errors import ConfigError, NoCapacity
from .._params import optional, real
from .scorers import Scorer, lower_is_better

PROFILE_KEYS = ("load", "ttft", "tpot", "throughput")
MISS = ("best-effort", "429", "503")


def _numbers(value, field: str, n: int | None) -> list[float]:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{field}: expected a non-empty list of numbers, got {value!r}")
    out = [real(v, f"{field}[{i}]", 0.0) for i, v in enumerate(value)]
    if n is not None and len(out) != n:
        raise ConfigError(f"{field}: expected {n} values (one per load point), got {len(out)}")
    return out


class Profile:
    """A pod's measured TTFT and TPOT by load, read and checked once."""

    def __init__(self, spec, where: str, needs: tuple):
        if not isinstance(spec, dict):
            raise ConfigError(f"{where}: the slo strategy needs a profile (load, ttft, tpot), got {spec!r}")
        unknown = sorted(set(spec) - set(PROFILE_KEYS))
        if unknown:
            raise ConfigError(f"{where}.{unknown[0]}: unknown field; a profile has {', '.join(PROFILE_KEYS)}")
        if "load" not in spec:
            raise ConfigError(f"{where}.load: missing (the in-flight counts the profile was measured at)")
        self.load = _numbers(spec["load"], f"{where}.load", None)
        if any(b <= a for a, b in zip(self.load, self.load[1:])):
            raise ConfigError(f"{where}.load: must increase, got {spec['load']!r}")
        self.curves = {}
        for key in ("ttft", "tpot", "throughput"):
            if key in spec:
                self.curves[key] = _numbers(spec[key], f"{where}.{key}", len(self.load))
            elif key in needs:
                raise ConfigError(f"{where}.{key}: missing (slo_{key} is set)")

    @classmethod
    def optional(cls, spec, where: str):
        """A pod's profile where a strategy may use one (least-latency): None without one."""
        if not isinstance(spec, dict) or "load" not in spec:
            return None
        return cls(spec, where, ())

    def at(self, key: str, load: float):
        """predict(), or None when the profile has no such curve."""
        return self.predict(key, load) if key in self.curves else None

    def predict(self, key: str, load: float) -> float:
        xs, ys = self.load, self.curves[key]
        if len(xs) == 1 or load <= xs[0]:
            return ys[0]
        i = min(bisect_right(xs, load), len(xs) - 1)  # the segment [i-1, i], the last one past the end
        x0, x1, y0, y1 = xs[i - 1], xs[i], ys[i - 1], ys[i]
        return max(0.0, y0 + (y1 - y0) * (load - x0) / (x1 - x0))

    def state(self) -> dict:
        return {"load": self.load, **self.curves}


class SLO(Scorer):
    name = "slo"
    judges_alone = True

    def __init__(self, router):
        super().__init__(router)
        options = router.options
        self.ttft = optional(real, options.get("slo_ttft"), "slo_ttft", 0.0, lo_open=True)
        self.tpot = optional(real, options.get("slo_tpot"), "slo_tpot", 0.0, lo_open=True)
        if self.ttft is None and self.tpot is None:
            raise ConfigError("slo_ttft: the slo strategy needs an objective: slo_ttft (seconds to the first "
                              "token) and/or slo_tpot (seconds per output token)")
        miss = str(options.get("slo_miss", "best-effort")).strip().lower()
        if miss not in MISS:
            raise ConfigError(f"slo_miss: expected one of {', '.join(MISS)}, got {options.get('slo_miss')!r}")
        self.miss = miss
        needs = tuple(k for k, v in (("ttft", self.ttft), ("tpot", self.tpot)) if v is not None)
        self.profiles, self.costs = [], []
        for i, pod in enumerate(router.pods):
            if pod.cost_per_hour is None:
                raise ConfigError(f"pods[{i}].cost_per_hour: the slo strategy picks the cheapest pod; "
                                  f"{pod.name} has no cost")
            self.costs.append(pod.cost_per_hour)
            self.profiles.append(Profile(pod.profile, f"pods[{i}].profile", needs))
        self.missed = 0  # requests no pod was predicted to meet

    def margin(self, pod: int, load: int) -> tuple[float, dict]:
        """The predicted share of the objective used (<= 1 meets it) and the predictions."""
        profile, predicted, worst = self.profiles[pod], {}, 0.0
        for key, objective in (("ttft", self.ttft), ("tpot", self.tpot)):
            if objective is not None:
                predicted[key] = profile.predict(key, load)
                worst = max(worst, predicted[key] / objective)
        return worst, predicted

    def score(self, call, pods):
        counts = call.counts
        margins = [self.margin(p, counts[p] if counts else 0) for p in pods]
        meets = [i for i, (m, _) in enumerate(margins) if m <= 1.0]
        out = [0.0] * len(pods)
        if meets:
            # Cheapest first; among equally cheap pods, the one with the most room.
            cheap = lower_is_better([self.costs[pods[i]] for i in meets])
            for i, c in zip(meets, cheap):
                out[i] = 0.5 + 0.45 * c + 0.05 * (1.0 - margins[i][0])
        else:
            self.missed += 1
            if self.miss != "best-effort":
                best = min(range(len(pods)), key=lambda i: margins[i][0])
                name = self.router.branch_names[pods[best]]
                raise NoCapacity(f"slo: no pod serving {call.model or 'the request'} is predicted to meet "
                                 f"{self._objective()} at its load (best: {name}, "
                                 f"{self._describe(margins[best][1])})", int(self.miss),
                                 {"retry-after": "1"} if self.miss == "429" else None)
            for i, (m, _) in enumerate(margins):  # the best margin scores highest, all below any that meets
                out[i] = 0.5 / (1.0 + m) if math.isfinite(m) else 0.0
        call.tags["_slo"] = {pods[i]: margins[i] for i in range(len(pods))}
        return out

    def routed(self, call, pod):
        margins = call.tags.pop("_slo", None)
        if margins and pod in margins:
            margin, predicted = margins[pod]
            call.tags["slo"] = "met" if margin <= 1.0 else "miss"
            call.tags["slo_predicted"] = {k: round(v, 6) for k, v in predicted.items()}

    def _objective(self) -> str:
        parts = [f"{k} <= {v:g} s" for k, v in (("ttft", self.ttft), ("tpot", self.tpot)) if v is not None]
        return " and ".join(parts)

    @staticmethod
    def _describe(predicted: dict) -> str:
        return ", ".join(f"{k} {v:.3g} s" for k, v in predicted.items())

    def state(self) -> dict:
        return {"objective": {"ttft": self.ttft, "tpot": self.tpot}, "miss": self.miss, "missed": self.missed,
                "pods": {self.router.branch_names[i]: {"gpu": self.router.pods[i].gpu, "cost_per_hour": c,
                                                       "profile": p.state()}
                         for i, (p, c) in enumerate(zip(self.profiles, self.costs))}}
