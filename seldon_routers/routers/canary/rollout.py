"""The canary's state machine, Flagger style, with time passed in (no clock, no lock):

    Initialized --first route--> Progressing --check passed at the top weight--> Promoting
    Progressing --check passed--> Progressing at the next step weight
    Progressing --failed_checks reaches threshold--> Failed (stable 100%, terminal)
    Promoting --next interval--> Succeeded (candidate 100%, terminal)
    any phase --an operator's promote / rollback--> Succeeded / Failed
"""

from __future__ import annotations

import logging
import math
from collections import deque
from datetime import datetime, timezone
from typing import Optional, Sequence

from ...errors import ConfigError
from .._params import integer, number, optional
from .analysis import FAILED, INSUFFICIENT, PASSED, Criteria, Tally, analyse

log = logging.getLogger("seldon_routers")

INITIALIZED, PROGRESSING, PROMOTING, SUCCEEDED, FAILED_PHASE = (
    "Initialized", "Progressing", "Promoting", "Succeeded", "Failed")
PHASES = (INITIALIZED, PROGRESSING, PROMOTING, SUCCEEDED, FAILED_PHASE)
TERMINAL = (SUCCEEDED, FAILED_PHASE)
HISTORY = 50
_EPS = 1e-9


def iso(t: float) -> str:
    """POSIX seconds as ISO 8601 UTC, to the millisecond."""
    return datetime.fromtimestamp(t, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Steps:
    """The candidate's weights (percent of traffic) along the rollout: `step_weight` added
    per passing check up to `max_weight`, or the listed `step_weights` (the last of which is
    then the top, as in Flagger)."""

    def __init__(self, step_weight: float, step_weights: Optional[Sequence[float]], max_weight: float):
        self.max_weight = number(max_weight, "max_weight (a percentage)", 0.0, 100.0, lo_open=True)
        self.step_weight = number(step_weight, "step_weight (a percentage)", 0.0, 100.0, lo_open=True)
        self.step_weights = None
        if step_weights is not None:
            weights = [float(w) for w in step_weights]
            if not weights:
                raise ConfigError("step_weights: give at least one weight")
            if any(not (0 < w <= max_weight) for w in weights):  # also refuses NaN
                raise ConfigError(f"step_weights: every weight must be within (0, max_weight={max_weight:g}], "
                                  f"got {weights}")
            if any(b <= a for a, b in zip(weights, weights[1:])):
                raise ConfigError(f"step_weights: must be strictly increasing, got {weights}")
            self.step_weights = weights
        self.top = self.step_weights[-1] if self.step_weights else self.max_weight

    def first(self) -> float:
        return self.step_weights[0] if self.step_weights else min(self.step_weight, self.max_weight)

    def after(self, weight: float) -> Optional[float]:
        """The weight after a passing check at `weight`; None at the top (time to promote)."""
        if weight >= self.top - _EPS:
            return None
        if self.step_weights:
            return next(w for w in self.step_weights if w > weight + _EPS)
        return min(round(weight + self.step_weight, 9), self.max_weight)


class Rollout:
    """Phase, weight, failed checks and the analysis window; every change goes through
    `start`, `tick` or `restore`, and is logged and kept in `history`."""

    def __init__(self, steps: Steps, criteria: Criteria, interval: float, threshold: int,
                 max_insufficient_checks: int, label: str = "canary"):
        self.steps, self.criteria, self.interval = steps, criteria, interval
        self.threshold, self.max_insufficient = threshold, max_insufficient_checks
        self.label = label
        self.phase, self.weight, self.failed_checks = INITIALIZED, 0.0, 0
        self.insufficient_checks = 0  # in a row, since the last judged check
        self.window = Tally()  # the candidate's feedback since the last judged check
        self.baseline = Tally()  # the stable child's feedback since the rollout started
        self.next_check = math.inf
        self.last_analysis: Optional[dict] = None
        self.history: deque = deque(maxlen=HISTORY)

    # --- transitions ------------------------------------------------------------------

    def start(self, now: float) -> None:
        if self.phase == INITIALIZED:
            self.next_check = now + self.interval
            self._move(now, PROGRESSING, self.steps.first(), "first request: rollout started")

    def tick(self, now: float) -> bool:
        """Run the check due at `now`, if one is (one only, however many intervals went by);
        True when it changed phase, weight or failed checks."""
        if now < self.next_check or self.phase not in (PROGRESSING, PROMOTING):
            return False
        if self.phase == PROMOTING:
            self.next_check = math.inf
            return self._move(now, SUCCEEDED, 100.0, "promotion complete")
        analysis = analyse(self.window, self.baseline, self.criteria)  # before any change: if it raises, none
        self.next_check = now + self.interval
        outcome = analysis.result
        if outcome == INSUFFICIENT:
            self.insufficient_checks += 1
            if self.insufficient_checks > self.max_insufficient:
                outcome = FAILED
                analysis.reasons.append(f"insufficient data {self.insufficient_checks} checks in a row "
                                        f"(max_insufficient_checks {self.max_insufficient}): counted as failed")
        else:  # judged: the next check looks at fresh feedback
            self.insufficient_checks, self.window = 0, Tally()
        self.last_analysis = {"at": iso(now), **analysis.to_json(), "result": outcome}
        why = f"check {outcome}: {'; '.join(analysis.reasons)}"
        if outcome == PASSED:
            weight = self.steps.after(self.weight)
            if weight is None:
                return self._move(now, PROMOTING, 100.0, why)
            return self._move(now, PROGRESSING, weight, why)
        if outcome == FAILED:
            self.failed_checks += 1
            if self.failed_checks >= self.threshold:
                self.next_check = math.inf
                return self._move(now, FAILED_PHASE, 0.0, f"{why}; {self.failed_checks} failed checks: rolled back")
            return self._move(now, self.phase, self.weight, f"{why}; {self.failed_checks} of {self.threshold} "
                                                            "failed checks")
        log.info("%s: %s at weight %g: %s", self.label, self.phase, self.weight, why)
        return False

    def decide_now(self, now: float, promote: bool, reason: str) -> bool:
        """An operator's promotion (candidate 100%) or rollback (stable 100%), from any phase:
        terminal, as if the analysis had ended so. False when already there."""
        phase, weight = (SUCCEEDED, 100.0) if promote else (FAILED_PHASE, 0.0)
        if self.phase == phase:
            return False
        self.next_check = math.inf
        return self._move(now, phase, weight, reason)

    def _move(self, now: float, phase: str, weight: float, reason: str) -> bool:
        log.info("%s: %s weight %g -> %s weight %g (failed checks %d): %s", self.label, self.phase, self.weight,
                 phase, weight, self.failed_checks, reason)
        self.phase, self.weight = phase, weight
        self.history.append({"at": iso(now), "phase": phase, "weight": weight, "failed_checks": self.failed_checks,
                             "reason": reason})
        return True

    def record(self, candidate: bool, reward: float, error: bool) -> None:
        """A feedback for the analysis (only while Progressing: elsewhere it changes nothing)."""
        if self.phase == PROGRESSING:
            (self.window if candidate else self.baseline).add(reward, error)

    # --- state ------------------------------------------------------------------------

    def to_json(self, now: float) -> dict:
        due = None if math.isinf(self.next_check) else self.next_check
        return {"phase": self.phase, "weight": self.weight, "failed_checks": self.failed_checks,
                "insufficient_checks": self.insufficient_checks,
                "next_check_at": due,
                "window": {"candidate": self.window.to_json()}, "baseline": {"stable": self.baseline.to_json()},
                "last_analysis": self.last_analysis, "history": list(self.history)}

    def restore(self, state: dict, now: float, reward_range: Optional[tuple] = None) -> None:
        """Restore what `to_json` wrote; checked in full before anything changes (the
        tallies against the rewards feedback may carry)."""
        phase = state.get("phase")
        if phase not in PHASES:
            raise ConfigError(f"state.phase: {phase!r} is not one of {', '.join(PHASES)}")
        weight = number(state.get("weight"), "state.weight (a percentage)", 0.0, 100.0)
        expected = {INITIALIZED: 0, FAILED_PHASE: 0, PROMOTING: 100, SUCCEEDED: 100}.get(phase)
        if expected is not None and weight != expected:
            raise ConfigError(f"state.weight: {weight!r} in phase {phase}, which routes {expected}% to the candidate")
        if phase == PROGRESSING and not 0 < weight <= self.steps.max_weight:
            raise ConfigError(f"state.weight: {weight!r} while Progressing; this router's max_weight is "
                              f"{self.steps.max_weight:g}")
        failed = integer(state.get("failed_checks"), "state.failed_checks")
        insufficient = integer(state.get("insufficient_checks", 0), "state.insufficient_checks")
        window = Tally.from_json(_field(state, "window").get("candidate"), "state.window.candidate", reward_range)
        baseline = Tally.from_json(_field(state, "baseline").get("stable"), "state.baseline.stable", reward_range)
        due = optional(number, state.get("next_check_at"), "state.next_check_at (POSIX seconds or null)")
        last, history = state.get("last_analysis"), state.get("history", [])
        if last is not None and not isinstance(last, dict):
            raise ConfigError(f"state.last_analysis: expected an object or null, got {type(last).__name__}")
        if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
            raise ConfigError("state.history: expected a list of objects")
        self.phase, self.weight, self.failed_checks = phase, float(weight), failed
        self.insufficient_checks, self.window, self.baseline = insufficient, window, baseline
        self.last_analysis, self.history = last, deque(history, maxlen=HISTORY)
        if phase in (PROGRESSING, PROMOTING):  # a check missed while down runs at the next call
            self.next_check = min(due if due is not None else now, now + self.interval)
        else:
            self.next_check = math.inf


def _field(state: dict, name: str) -> dict:
    """A snapshot's object field (absent: empty); anything else is refused, naming it."""
    value = state.get(name) or {}
    if not isinstance(value, dict):
        raise ConfigError(f"state.{name}: expected an object, got {value!r}")
    return value
