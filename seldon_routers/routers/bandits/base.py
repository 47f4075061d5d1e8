"""What every bandit router shares: arms, a per-instance generator, reward checks,
exactly-once feedback per puid, drift handling, guard rails and a versioned state.

Rewards are the success fraction of the batch the feedback's request carried: with n
rows (1 when it has none), an update adds reward*n successes out of n trials, never
truncated (Seldon's routers did int(reward*n), so 0.9 on one row counted as a failure).
"""

from __future__ import annotations

import math
import os
import threading
import weakref
from collections import deque
from typing import Optional, Union

import numpy as np

from ...errors import BadRequest, ConfigError, quote
from ...request import MAX_ROWS, Feedback, Request, rows_of
from ...router import Decision, Router
from .._arms import resolve_arms
from .._dedupe import SeenPuids

STATE_VERSION = 1
_NO_REQUEST = Request()


_LIVE: "weakref.WeakSet[Bandit]" = weakref.WeakSet()


def _reseed_after_fork() -> None:
    for bandit in list(_LIVE):
        bandit.reseed_for_process()


# One hook for all instances (a hook per instance would pile up and is never removed).
os.register_at_fork(after_in_child=_reseed_after_fork)


class Bandit(Router):
    """Base of the bandit routers. Subclasses write `choose()` and keep their statistics
    through `_update(arm, successes, trials, request)`.

    n_branches, branch_names: the arms (Seldon's names); seed: this instance's generator
    (0 is a seed like any other; each forked worker process draws its own stream).
    discount: in (0, 1], multiplies past statistics at each update (forgets old rewards).
    window: keep only the last `window` feedbacks (an alternative to discount).
    min_share: each arm gets at least this share of routes (forced exploration).
    max_share: no arm gets more than this share of recent routes.
    dedupe: how many feedback puids to remember so a duplicate is applied once.
    """

    reads_features = False
    reward_range: Optional[tuple] = (0.0, 1.0)  # None: any finite reward (Gaussian models)

    def __init__(self, n_branches: Optional[int] = None, branch_names: Union[str, list, None] = None,
                 seed: Optional[int] = None, discount: Optional[float] = None, window: Optional[int] = None,
                 min_share: Optional[float] = None, max_share: Optional[float] = None, dedupe: int = 100_000):
        if n_branches is None and branch_names is None:
            raise ConfigError("n_branches: required (or branch_names)")
        self.branch_names = resolve_arms(n_branches, branch_names)
        k = self.n_children = len(self.branch_names)
        if discount is not None and not 0 < discount <= 1:
            raise ConfigError(f"discount: must be within (0, 1], got {discount!r}")
        if window is not None and (isinstance(window, bool) or window < 1):
            raise ConfigError(f"window: must be an integer >= 1, got {window!r}")
        if discount is not None and window is not None:
            raise ConfigError("discount: give either discount or window, not both")
        if min_share is not None and not 0 <= min_share * k <= 1:
            raise ConfigError(f"min_share: must be within [0, 1/n_branches], got {min_share!r}")
        if max_share is not None and not (1 / k <= max_share <= 1):
            raise ConfigError(f"max_share: must be within [1/n_branches, 1], got {max_share!r}")
        self.seed = seed
        self.discount = discount
        self.window = window
        self.min_share = min_share or 0.0
        self.max_share = max_share
        self.rng = np.random.default_rng(seed)
        self.lock = threading.Lock()
        # Plain lists: per-arm scalar updates are several times faster than on numpy arrays.
        self.pulls = [0.0] * k  # trials credited to each arm (rows, discounted if asked)
        self.successes = [0.0] * k  # sum of reward * rows
        self.routes = [0] * k  # decisions made
        self._recent = np.full(k, 1.0 / k)  # exponentially weighted share of recent routes
        self._window: deque = deque()
        self._seen = SeenPuids(dedupe)
        self.duplicates = 0
        # Rewards in [0, 1] and no context, drift or window to handle: send_feedback's short path.
        self._on_update = None  # see share_updates()
        self._plain = (self.reward_range == (0.0, 1.0) and not self.reads_features and window is None
                       and discount in (None, 1))
        _LIVE.add(self)

    def reseed_for_process(self) -> None:
        """A forked worker must not replay its parent's draws: mix the pid into the seed."""
        entropy = None if self.seed is None else [self.seed, os.getpid()]
        self.rng = np.random.default_rng(entropy)

    # --- routing ---------------------------------------------------------------------

    def choose(self, request: Request) -> tuple[int, float]:
        """The policy: (arm, probability this arm had of being chosen)."""
        raise NotImplementedError

    def decide(self, request: Request) -> Decision:
        if self.min_share or self.max_share is not None:
            return self._guarded(request)
        arm, p = self.choose(request)
        self.routes[arm] += 1
        return Decision(arm, {"route": arm, "branch": self.branch_names[arm], "propensity": p})

    def _guarded(self, request: Request) -> Decision:
        """decide() with the guard rails: forced exploration, then the share cap."""
        k = self.n_children
        if self.min_share and self.rng.random() < self.min_share * k:
            arm, base_p = int(self.rng.integers(k)), None
        else:
            arm, base_p = self.choose(request)
        capped = False
        if self.max_share is not None and self._recent[arm] > self.max_share:
            allowed = np.flatnonzero(self._recent <= self.max_share)
            if len(allowed):
                arm, capped = int(allowed[self.rng.integers(len(allowed))]), True
        if base_p is None:  # forced exploration drew it; its own policy may have too
            base_p = self.choose_probability(request, arm)
        p = self.min_share + (1 - self.min_share * k) * base_p
        self.routes[arm] += 1
        if self.max_share is not None:
            self._recent *= 0.999
            self._recent[arm] += 0.001
        tags = {"route": arm, "branch": self.branch_names[arm], "propensity": p}
        if capped:
            tags["capped"] = True  # max_share moved it: the propensity is the policy's, not exact
        return Decision(arm, tags)

    def choose_probability(self, request: Request, arm: int) -> float:
        """The policy's probability of `arm` (for the propensity tag); exact or estimated."""
        return 1.0 / self.n_children

    def route(self, features, feature_names, **kwargs) -> int:
        request = _NO_REQUEST if not self.reads_features else self._request(features, feature_names)
        if self.min_share or self.max_share is not None:
            return self._guarded(request).child
        arm = self.choose(request)[0]  # decide() without the tags nobody reads here
        self.routes[arm] += 1
        return arm

    def _request(self, features, feature_names) -> Request:
        """The request view for Seldon's entry points; one shared empty view for a policy
        that never reads the request (no allocation per call)."""
        if not self.reads_features:
            return _NO_REQUEST
        return Request(features, feature_names, kind="ndarray" if isinstance(features, np.ndarray) else "")

    # --- learning --------------------------------------------------------------------

    def check_reward(self, reward) -> float:
        if type(reward) is float and 0.0 <= reward <= 1.0 and self.reward_range == (0.0, 1.0):
            return reward  # the common case, checked in one line (NaN fails the comparison)
        if reward is None:
            raise BadRequest("reward: missing; a bandit needs a reward to learn from")
        if isinstance(reward, bool) or not isinstance(reward, (int, float, np.floating)) or not math.isfinite(reward):
            raise BadRequest(f"reward: must be a finite number, got {quote(reward)}")
        lo_hi = self.reward_range
        if lo_hi is not None and not lo_hi[0] <= reward <= lo_hi[1]:
            raise BadRequest(f"reward: must be within [{lo_hi[0]}, {lo_hi[1]}] (the success fraction of the "
                             f"request's rows), got {quote(reward)}")
        return float(reward)

    def check_routing(self, routing) -> int:
        if type(routing) is int and 0 <= routing < self.n_children:
            return routing
        if routing is None:
            raise BadRequest("routing: missing; feedback must say which child served the request")
        if isinstance(routing, bool) or not isinstance(routing, (int, np.integer)) \
                or not 0 <= routing < self.n_children:
            raise BadRequest(f"routing: {quote(routing)} is not one of this router's children "
                             f"(0..{self.n_children - 1})")
        return int(routing)

    def send_feedback(self, features, feature_names, reward, truth, routing=None, **kwargs):
        """Seldon's entry point (also what the simulator drives)."""
        if self._plain and type(routing) is int and 0 <= routing < self.n_children \
                and type(reward) is float and 0.0 <= reward <= 1.0:  # the hot path, checks inlined
            shape = getattr(features, "shape", None)
            rows = int(shape[0]) if shape else 1
            if 1 <= rows <= MAX_ROWS and (not shape or features.size):  # else rows_of's refusal below
                with self.lock:
                    self._update(routing, reward * rows, rows, None)
                return
        self._apply(self.check_routing(routing), self.check_reward(reward), rows_of(features),
                    self._request(features, feature_names), None)

    def learn(self, feedback: Feedback):
        """This server's entry point: the same, plus exactly-once per puid."""
        request = feedback.request
        puid = feedback.response_meta.get("puid") or request.puid
        reward = feedback.reward if feedback.reward_given else None
        self._apply(self.check_routing(feedback.routing), self.check_reward(reward), feedback.rows, request, puid)

    def _apply(self, arm: int, reward: float, rows: int, request: Request, puid: Optional[str]) -> None:
        context = self.context_of(request) if self.reads_features else None  # validated before any change
        if context is not None:
            rows = len(context)  # what the model learns from is what the counts say
        if rows < 1:
            raise BadRequest("request: the feedback's batch has no rows; there is nothing to learn")
        with self.lock:
            if not self._seen.first(puid):  # remembered under the lock: two copies never both apply
                self.duplicates += 1
                return
            if self.discount is not None and self.discount < 1:  # forget a little of the past
                self._decay(self.discount)
            self._update(arm, reward * rows, rows, context)
            if self._on_update is not None:
                self._on_update(self.delta(arm, reward * rows, rows, context), puid)
            if self.window is not None:
                self._window.append((arm, reward * rows, rows, context))
                if len(self._window) > self.window:
                    old_arm, old_s, old_n, old_ctx = self._window.popleft()
                    self._update(old_arm, -old_s, -old_n, old_ctx)

    def context_of(self, request: Request):
        """What a contextual bandit learns from (validated); None for plain bandits."""
        return None

    def _decay(self, factor: float) -> None:
        stats = self.stats()
        routes = stats.pop("routes")
        self._set_stats({name: [x * factor for x in values] for name, values in stats.items()} | {"routes": routes})
        self._rebuild()

    def _update(self, arm: int, successes: float, trials: float, context) -> None:
        self.pulls[arm] += trials
        self.successes[arm] += successes

    # --- state: export, restore, share -----------------------------------------------
    # What a bandit learns is additive: sums over feedbacks (and counts of routes). So a
    # snapshot restores by assignment, and replicas merge by adding their increments.

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

    def _set_stats(self, stats: dict) -> None:
        self.pulls, self.successes = list(stats["pulls"]), list(stats["successes"])
        self.routes = [int(round(r)) for r in stats["routes"]]

    def _rebuild(self) -> None:
        """Recompute what is derived from the statistics (means, posteriors, best arms)."""

    def set_stats(self, stats: dict, pending=None) -> None:
        """Replace the statistics (a store restoring or syncing them); checked first.
        pending: called under the lock, returns deltas (see `delta`) to add on top: the
        updates a shared store has not yet seen come back in what it read."""
        mine = self.stats()
        for name, values in stats.items():
            if name not in mine:
                raise ConfigError(f"state: {self.name} keeps no statistic {name!r}")
            # A list first: a number or a string in a snapshot was a TypeError (a traceback at
            # start-up, not a refusal naming the field); bool is no count either.
            if not isinstance(values, list) or len(values) != len(mine[name]) or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in values):
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
        """Why this configuration's state cannot be merged by adding increments (None: it can)."""
        if self.discount is not None and self.discount < 1:
            return "discount: multiplies all past statistics at every update, so increments do not add up"
        if self.window is not None:
            return "window: forgets each replica's own oldest feedback, so increments do not add up"
        return None

    def share_updates(self, callback) -> None:
        """Call `callback(delta, puid)` under the lock after every update (a shared store
        forwards them); the short feedback path is given up for it."""
        self._on_update = callback
        self._plain = False

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
        if isinstance(duplicates, bool) or not isinstance(duplicates, (int, float)) \
                or not (math.isfinite(duplicates) and duplicates >= 0):
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

    def mean(self, arm: int) -> float:
        """Observed mean reward of an arm (0 before any feedback)."""
        n = self.pulls[arm]
        return self.successes[arm] / n if n > 1e-12 else 0.0

    def means(self) -> list:
        return [self.mean(i) for i in range(self.n_children)]
