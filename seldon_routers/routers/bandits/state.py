"""A bandit's learned state: what it exports (GET /state, file snapshots), restores, and
shares (the AdditiveState protocol of seldon_routers/additive.py).

What a bandit learns is additive: sums over feedbacks (and counts of routes). So a
snapshot restores by assignment, and replicas merge by adding their increments.
"""

from __future__ import annotations

import math
from typing import Optional

from ...additive import AdditiveState
from ...errors import ConfigError

STATE_VERSION = 1


def _finite_numbers(values, n: int) -> bool:
    return isinstance(values, list) and len(values) == n and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values)


class BanditState(AdditiveState):
    """Mixed into Bandit (which keeps pulls, successes, routes, lock, name, branch_names)."""

    def state(self) -> dict:
        with self.lock:
            return {"version": STATE_VERSION, "policy": self.name, "arms": list(self.branch_names),
                    "pulls": list(self.pulls), "successes": list(self.successes),
                    "routes": list(self.routes), "duplicates": self.duplicates, **self._extra_state()}

    def _extra_state(self) -> dict:
        return {}

    def stats(self) -> dict:
        """The additive statistics, by name, each a flat list of floats."""
        return {"pulls": list(self.pulls), "successes": list(self.successes), "routes": [float(r) for r in self.routes]}

    def route_counts(self) -> list:
        return self.routes

    def _set_stats(self, stats: dict) -> None:
        self.pulls, self.successes = list(stats["pulls"]), list(stats["successes"])
        self.routes = [int(round(r)) for r in stats["routes"]]

    def _rebuild(self) -> None:
        """Recompute what is derived from the statistics (means, posteriors, best arms)."""

    def set_stats(self, stats: dict, pending=None) -> None:
        mine = self.stats()
        for name, values in stats.items():
            if name not in mine:
                raise ConfigError(f"state: {self.name} keeps no statistic {name!r}")
            # A list first: a number or a string in a snapshot was a TypeError (a traceback at
            # start-up, not a refusal naming the field); bool is no count either.
            if not _finite_numbers(values, len(mine[name])):
                raise ConfigError(f"state.{name}: expected a list of {len(mine[name])} finite numbers")
        with self.lock:
            merged = {**mine, **{name: list(values) for name, values in stats.items()}}
            for delta in pending() if pending else ():
                for name, changes in delta.items():
                    for i, amount in changes.items():
                        merged[name][i] += amount
            self._set_stats(merged)
            self._rebuild()

    def delta(self, arm: int, successes: float, trials: float, context) -> dict:
        """What one update adds to the statistics: {name: {index: amount}}."""
        return {"pulls": {arm: trials}, "successes": {arm: successes}}

    def not_additive(self) -> Optional[str]:
        if self.discount is not None and self.discount < 1:
            return "discount: multiplies all past statistics at every update, so increments do not add up"
        if self.window is not None:
            return "window: forgets each replica's own oldest feedback, so increments do not add up"
        return None

    def share_updates(self, callback) -> None:
        self._on_update = callback
        self._plain = False  # every update must now be forwarded: no fast path

    def check_state(self, state: dict) -> None:
        """Refuse (ConfigError naming the field) a snapshot that is not this router's."""
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
            version = state.get("version") if isinstance(state, dict) else None
            raise ConfigError(f"state.version: {version!r}; this version of {self.name} reads version {STATE_VERSION}")
        # One field per message: "state: it is the state of ..." named neither policy nor arms.
        if state.get("policy") != self.name:
            raise ConfigError(f"state.policy: {state.get('policy')!r}, this router is {self.name!r}")
        if state.get("arms") != list(self.branch_names):
            raise ConfigError(f"state.arms: {state.get('arms')!r}, this router has {list(self.branch_names)!r}")

    def load_state(self, state: dict) -> None:
        """Restore from what `state()` returned (a snapshot); refuses another router's."""
        self.check_state(state)
        names = self.stats()
        missing = [n for n in names if n not in state]
        if missing:
            raise ConfigError(f"state.{missing[0]}: missing")
        # Checked before set_stats changes anything: int("x") or int(inf) after it left the
        # statistics restored and raised ValueError/OverflowError instead of refusing.
        duplicates = state.get("duplicates", 0)
        if not (isinstance(duplicates, (int, float)) and not isinstance(duplicates, bool)
                and math.isfinite(duplicates) and duplicates >= 0):
            raise ConfigError(f"state.duplicates: expected a count, got {duplicates!r}")
        for name in ("pulls", "routes"):  # counts: a hand-edited negative one would break routing later
            if isinstance(state[name], list) and any(isinstance(v, (int, float)) and v < 0 for v in state[name]):
                raise ConfigError(f"state.{name}: counts cannot be negative")
        if self.reward_range == (0.0, 1.0) and isinstance(state["successes"], list) \
                and isinstance(state["pulls"], list) and any(
                isinstance(s, (int, float)) and isinstance(n, (int, float)) and not -1e-9 <= s <= n * (1 + 1e-9) + 1e-9
                for s, n in zip(state["successes"], state["pulls"])):
            raise ConfigError("state.successes: must be within [0, pulls] for rewards in [0, 1]")
        self.set_stats({n: state[n] for n in names})
        self.duplicates = int(duplicates)
