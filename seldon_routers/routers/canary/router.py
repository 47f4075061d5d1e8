"""`canary`: a Flagger-style progressive rollout from a stable child to a candidate,
driven by feedback (docs/canary.md)."""

from __future__ import annotations

import math
import threading
from typing import Callable, Optional, Union

import numpy as np

from ...errors import BadRequest, ConfigError, quote
from ...params import FALSE_WORDS, TRUE_WORDS
from ...request import Feedback, Request
from ...router import Decision, Router
from .._feedback import SeenPuids, checked_reward
from .._params import arguments
from .._weights import WeightedChoice
from .config import read as read_config
from .analysis import Tally
from .rollout import INITIALIZED, Rollout, log

STATE_VERSION = 1
_ERROR_WORDS = TRUE_WORDS | FALSE_WORDS | {""}  # an empty error tag reads as no error


def _error_flag(tags, field: str) -> bool:
    """A feedback's `error` tag: true, 1, "true" (and yes/on) count an error."""
    value = tags.get("error") if isinstance(tags, dict) else None
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, (int, float)) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _ERROR_WORDS:
        return value.strip().lower() in TRUE_WORDS
    raise BadRequest(f"{field}.error: expected true or false (or 1/0), got {quote(value)}")


class Canary(Router):
    """Moves traffic from `stable` to `candidate` step by step while the candidate's
    feedback passes its checks; promotes it, or rolls back after `threshold` failed checks.

    stable, candidate: children by name (from branch_names) or index (default 0 and 1).
    branch_names, n_branches: the children (default: two, named stable and candidate).
    interval: time between checks, seconds or a duration such as 30s or 5m. step_weight / step_weights ('5:10:25:50' or a JSON
      list): the candidate's traffic percentages; max_weight: the top before promotion.
    threshold: failed checks that roll back. min_samples: candidate feedbacks a check needs;
      max_insufficient_checks: checks with fewer allowed before each counts as failed.
    min_reward, max_error_rate, margin/min_probability: the criteria (at least one).
    reward_range: LO:HI, the rewards a feedback may carry (default 0:1, success fractions);
      min_reward lies within it; with margin it lies within [0, 1].
    seed: this instance's generator; sticky_key: header:NAME or tag:NAME keeps a user on one child.
    dedupe: feedback puids remembered so a duplicate counts once. revision: a label of this
      rollout (e.g. the candidate's version); a snapshot of another revision is not restored.
    config / config_file: a MatrixInfer ModelRoute (inline or a path) whose spec.canary sets
      stable, candidate, the first weight, interval and max_error_rate (docs/canary.md).
    clock: POSIX seconds (default time.time); for tests, not a Seldon parameter.

    Under Seldon's wrapper feedback carries a reward only (no error tags, no puid), so the
    criteria there are min_reward and margin.
    """

    name = "canary"
    reads_features = False  # routes by weight (and a sticky key), never by the request's data

    def __init__(self, stable: Union[str, int] = "0", candidate: Union[str, int] = "1",
                 branch_names: Union[str, list, None] = None, n_branches: Optional[int] = None,
                 interval: Union[float, str] = 60.0, step_weight: float = 10, step_weights: Union[str, list, None] = None,
                 max_weight: float = 50, threshold: int = 5, min_samples: int = 20,
                 max_insufficient_checks: int = 3, min_reward: Optional[float] = None,
                 max_error_rate: Optional[float] = None, margin: Optional[float] = None,
                 min_probability: float = 0.95, seed: Optional[int] = None, sticky_key: Optional[str] = None,
                 dedupe: int = 100_000, revision: Optional[str] = None,
                 config: Union[str, dict, None] = None, config_file: Optional[str] = None,
                 clock: Optional[Callable[[], float]] = None, reward_range: Union[str, list, None] = None):
        settings = read_config(**arguments(locals()))
        self.branch_names, self.stable, self.candidate = settings.children, settings.stable, settings.candidate
        self.n_children = len(self.branch_names)
        self.criteria, self.reward_range = settings.criteria, settings.reward_range
        self.rollout = Rollout(settings.steps, self.criteria, settings.interval, settings.threshold,
                               settings.max_insufficient_checks,
                               f"canary {self.branch_names[self.stable]} -> {self.branch_names[self.candidate]}")
        self.sticky, self.revision, self.seed, self.clock = settings.sticky, settings.revision, settings.seed, settings.clock
        self.not_enforced = settings.not_enforced  # what a ModelRoute asked that a canary does not apply
        # The candidate's name (and the revision) salt the sticky hash: a user's fraction is
        # fixed for the rollout, so one on the candidate stays on it as the weight grows.
        self._salt = f"canary:{self.branch_names[self.candidate]}:{self.revision or ''}"
        self.rng = np.random.default_rng(self.seed)
        self.lock = threading.Lock()
        self.totals = {child: Tally() for child in (self.stable, self.candidate)}  # every feedback, any phase
        self._seen = SeenPuids(settings.dedupe)
        self.duplicates = 0
        self._rebuild()

    # --- routing ---------------------------------------------------------------------

    def _rebuild(self) -> None:
        """The choice and ready-made tags for the current phase and weight (under the lock,
        or before any request): replaced whole, so a route reads one consistent snapshot."""
        r, w = self.rollout, self.rollout.weight
        choice = WeightedChoice([self.candidate, self.stable], [w, 100.0 - w])
        tags = {}
        for child in (self.stable, self.candidate):
            base = {"route": child, "branch": self.branch_names[child], "propensity": choice.probability(child),
                    "phase": r.phase, "weight": w, "failed_checks": r.failed_checks}
            tags[child, False], tags[child, True] = base, {**base, "sticky": True}
        self._routing = (choice, tags, self._due())

    def _due(self) -> float:
        """When a route must take the slow path: at once while Initialized (it starts the
        rollout), else when the next check is due (never, in a terminal phase)."""
        return -math.inf if self.rollout.phase == INITIALIZED else self.rollout.next_check

    def decide(self, request: Request) -> Decision:
        choice, tags, due = self._routing
        if due <= self.clock():  # the first request, or a check is due: rarely taken
            self._advance(start=True)
            choice, tags, _ = self._routing
        u = self.sticky.fraction(request, self._salt) if self.sticky is not None else None
        child = choice.pick(self.rng.random() if u is None else u)
        return Decision(child, tags[child, u is not None])

    def _advance(self, start: bool = False) -> None:
        with self.lock:
            now = self.clock()
            changed = self.rollout.tick(now)
            if start and self.rollout.phase == INITIALIZED:
                self.rollout.start(now)
                changed = True
            if changed:
                self._rebuild()
            else:  # an insufficient check: same tags, the next check later
                self._routing = (*self._routing[:2], self._due())

    def _tick(self) -> None:
        """A feedback or a state call runs a check that is due (but starts no rollout)."""
        if self.rollout.phase != INITIALIZED and self._routing[2] <= self.clock():
            self._advance()

    def promote(self, reason: str = "promoted by an operator") -> bool:
        """Candidate 100% now (an admin action: docs/security.md); False if already promoted."""
        return self._decide_now(True, reason)

    def rollback(self, reason: str = "rolled back by an operator") -> bool:
        """Stable 100% now; False if already rolled back."""
        return self._decide_now(False, reason)

    def _decide_now(self, promote: bool, reason: str) -> bool:
        with self.lock:
            changed = self.rollout.decide_now(self.clock(), promote, reason)
            if changed:
                self._rebuild()
            return changed

    # --- feedback ----------------------------------------------------------------------

    def _check(self, routing, reward) -> tuple[int, float]:
        if isinstance(routing, bool) or not isinstance(routing, (int, np.integer)) \
                or routing not in (self.stable, self.candidate):
            raise BadRequest(f"response.meta.routing: {quote(routing)} is neither the stable child ({self.stable}) nor "
                             f"the candidate ({self.candidate}); a canary learns from those two only")
        return int(routing), checked_reward(reward, self.reward_range, "reward_range; by default a success fraction")

    def learn(self, feedback: Feedback):
        """This server's entry point: an `error` tag in response.meta.tags (or the request's
        meta.tags) counts an error; a missing reward then reads 0; exactly once per puid."""
        request = feedback.request
        error = _error_flag(feedback.response_meta.get("tags"), "response.meta.tags") \
            or _error_flag(request.meta.get("tags"), "request.meta.tags")
        if not feedback.reward_given and not error:
            raise BadRequest("reward: missing; a canary feedback needs a reward, or an error tag "
                             "(response.meta.tags.error: true)")
        child, value = self._check(feedback.routing, feedback.reward if feedback.reward_given else 0.0)
        self._count(child, value, error, feedback.response_meta.get("puid") or request.puid)

    def _count(self, child: int, reward: float, error: bool, puid: str) -> None:
        self._tick()  # an interval that ended before this feedback came is judged without it
        with self.lock:
            if not self._seen.first(puid):
                self.duplicates += 1
                return
            self.totals[child].add(reward, error)
            self.rollout.record(child == self.candidate, reward, error)

    # --- state -------------------------------------------------------------------------

    def state(self) -> dict:
        """What /state shows and a file snapshot saves. It runs no check: checks run on
        traffic only, so an idle canary behaves alike whatever the store (a file snapshot
        calls this every few seconds) and its snapshot does not change while idle."""
        with self.lock:
            names = self.branch_names
            return {"version": STATE_VERSION, "router": self.name, "revision": self.revision,
                    "stable": names[self.stable], "candidate": names[self.candidate],
                    "interval": self.rollout.interval, "max_weight": self.rollout.steps.top,
                    **self.rollout.to_json(self.clock()),
                    "totals": {names[c]: t.to_json() for c, t in self.totals.items()},
                    "duplicates": self.duplicates, **({"not_enforced": self.not_enforced} if self.not_enforced else {})}

    def load_state(self, state: dict) -> None:
        """Restore a snapshot of this rollout (ConfigError naming the field, nothing changed,
        for one that is not); a snapshot of another `revision` is left: a new rollout starts."""
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
            version = state.get("version") if isinstance(state, dict) else None
            raise ConfigError(f"state.version: {version!r}; this version of canary reads version {STATE_VERSION}")
        if state.get("router") != self.name:
            raise ConfigError(f"state.router: {state.get('router')!r}, this router is {self.name!r}")
        if state.get("revision") != self.revision:
            log.info("canary: the state snapshot is of revision %r, this rollout is %r: starting afresh",
                     state.get("revision"), self.revision)
            return
        for field in ("stable", "candidate"):
            mine = self.branch_names[getattr(self, field)]
            if state.get(field) != mine:
                raise ConfigError(f"state.{field}: {state.get(field)!r}, this router's {field} is {mine!r}")
        totals = state.get("totals")
        if not isinstance(totals, dict):
            raise ConfigError("state.totals: expected an object by child name")
        restored = {c: Tally.from_json(totals.get(self.branch_names[c], {"n": 0, "reward_sum": 0, "errors": 0}),
                                       f"state.totals.{self.branch_names[c]}", self.reward_range) for c in self.totals}
        duplicates = state.get("duplicates", 0)
        if isinstance(duplicates, bool) or not isinstance(duplicates, int) or duplicates < 0:
            raise ConfigError(f"state.duplicates: expected a count, got {duplicates!r}")
        with self.lock:
            self.rollout.restore(state, self.clock(), self.reward_range)  # checks everything first, then assigns
            self.totals, self.duplicates = restored, duplicates
            self._rebuild()
