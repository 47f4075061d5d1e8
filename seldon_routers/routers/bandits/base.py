"""What every bandit router shares: arms, a per-instance generator, reward checks,
exactly-once feedback per puid, drift handling and guard rails. Its learned state (export,
restore, sharing across replicas) is in state.py.

Rewards are the success fraction of the batch the feedback's request carried: with n
rows (1 when it has none), an update adds reward*n successes out of n trials, never
truncated (Seldon's routers did int(reward*n), so 0.9 on one row counted as a failure).
"""

from __future__ import annotations

import os
import threading
import weakref
from collections import deque
from typing import Optional, Union

import numpy as np

from ...errors import BadRequest, quote
from ...request import Feedback, Request, rows_of
from ...router import Decision, Router
from .._feedback import SeenPuids, checked_reward
from . import config
from .state import BanditState

_LIVE: "weakref.WeakSet[Bandit]" = weakref.WeakSet()
_NO_REQUEST = Request()  # what a policy that never reads the request is given on the fast path


def _reseed_after_fork() -> None:
    for bandit in list(_LIVE):
        bandit.reseed_for_process()


# One hook for all instances (a hook per instance would pile up and is never removed).
os.register_at_fork(after_in_child=_reseed_after_fork)


class Bandit(BanditState, Router):
    """Base of the bandit routers. Subclasses write `choose()` and keep their statistics
    through `_update(arm, successes, trials, context)`.

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
        settings = config.read(n_branches, branch_names, seed, discount, window, min_share, max_share, dedupe)
        self.branch_names = settings.arms
        k = self.n_children = len(self.branch_names)
        self.seed, self.discount, self.window = settings.seed, settings.discount, settings.window
        self.min_share, self.max_share = settings.min_share, settings.max_share
        self.rng = np.random.default_rng(self.seed)
        self.lock = threading.Lock()
        # Plain lists: per-arm scalar updates are several times faster than on numpy arrays.
        self.pulls = [0.0] * k  # trials credited to each arm (rows, discounted if asked)
        self.successes = [0.0] * k  # sum of reward * rows
        self.routes = [0] * k  # decisions made
        self._recent = np.full(k, 1.0 / k)  # exponentially weighted share of recent routes
        self._window: deque = deque()
        self._seen = SeenPuids(settings.dedupe)
        self.duplicates = 0
        self._on_update = None  # see share_updates()
        # Rewards in [0, 1] and no context, drift or window to handle: send_feedback's fast path.
        self._plain = (self.reward_range == (0.0, 1.0) and not self.reads_features and self.window is None
                       and self.discount in (None, 1))
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

    # --- Seldon's forms: fast paths past the bridge ---------------------------------------
    # The base class would bridge these to decide()/learn() through the request and
    # feedback views; for a bandit that is 2-3x the cost of the decision itself
    # (bench/bandits_speed.py, and every simulated step), so the common cases go direct.

    def route(self, features, feature_names, **kwargs) -> int:
        """decide() without the tags that Seldon's wrapper never reads."""
        if self.reads_features or self.min_share or self.max_share is not None:
            return super().route(features, feature_names, **kwargs)
        arm = self.choose(_NO_REQUEST)[0]
        self.routes[arm] += 1
        return arm

    def send_feedback(self, features, feature_names, reward, truth, routing=None, **kwargs):
        """learn() for a plain bandit, a child index and a reward in [0, 1]; else learn() itself."""
        if self._plain and type(routing) is int and 0 <= routing < self.n_children \
                and type(reward) is float and 0.0 <= reward <= 1.0:  # checks inlined
            rows = rows_of(features)
            if rows >= 1:
                with self.lock:
                    self._update(routing, reward * rows, rows, None)
                return None
        return super().send_feedback(features, feature_names, reward, truth, routing, **kwargs)

    # --- learning --------------------------------------------------------------------

    def check_reward(self, reward) -> float:
        if type(reward) is float and 0.0 <= reward <= 1.0 and self.reward_range == (0.0, 1.0):
            return reward  # the common case, checked in one line (NaN fails the comparison)
        if reward is None:
            raise BadRequest("reward: missing; a bandit needs a reward to learn from")
        return checked_reward(reward, self.reward_range, "the success fraction of the request's rows")

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

    def learn(self, feedback: Feedback):
        """Both servers' entry point (Seldon's send_feedback comes here too, with no puid):
        a reward for the arm that served the request, applied once per puid."""
        request = feedback.request
        puid = feedback.response_meta.get("puid") or request.puid or None
        reward = feedback.reward if feedback.reward_given else None
        arm, reward = self.check_routing(feedback.routing), self.check_reward(reward)
        rows = feedback.rows  # from data present, within request.MAX_ROWS
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

    def mean(self, arm: int) -> float:
        """Observed mean reward of an arm (0 before any feedback)."""
        n = self.pulls[arm]
        return self.successes[arm] / n if n > 1e-12 else 0.0

    def means(self) -> list:
        return [self.mean(i) for i in range(self.n_children)]
