"""The protocol a shared store (`--state redis://...`) needs from a router: learned state
that is a set of sums, so that replicas merge by adding what each one learned.

A router whose state is additive subclasses AdditiveState next to Router and writes these
methods; the redis store checks `isinstance(router, AdditiveState)` at start-up and refuses
any other router with a message naming it. (Snapshots need less: `Router.state()` and
`load_state()`, see `Router.restores`.)

Statistics are named flat lists of floats, each a sum over feedbacks (pulls, rewards,
sums of x x', ...) or over routes (`routes`). A store keeps the totals; every process
routes from a local copy, adds its own updates to it at once, and sends each update's
delta for the others to add.
"""

from __future__ import annotations

from typing import Callable, Optional

Delta = dict  # {statistic name: {index: amount}}: what one update adds


class AdditiveState:
    def stats(self) -> dict:
        """The statistics now: {name: [float, ...]}, `routes` among them when the router
        counts routes (see route_counts)."""
        raise NotImplementedError

    def set_stats(self, stats: dict, pending: Optional[Callable[[], list]] = None) -> None:
        """Replace the statistics with `stats` (checked first: a ConfigError naming the field
        changes nothing), then add the deltas `pending()` returns, called under the router's
        lock: the updates made here that the store had not yet counted when it read `stats`."""
        raise NotImplementedError

    def share_updates(self, callback: Callable[[Delta, Optional[str]], None]) -> None:
        """From now on, call `callback(delta, puid)` under the lock after every update (the
        puid: the feedback's, for exactly-once application across replicas; None if it had none)."""
        raise NotImplementedError

    def route_counts(self) -> list:
        """Routes made here per child (the `routes` statistic, counted locally): the store
        reads and merges them every sync, so routing itself never calls out."""
        return []

    def not_additive(self) -> Optional[str]:
        """Why this configuration's state cannot be merged by adding deltas (a discount
        or a window forgets each replica's own past), or None when it can."""
        return None

    def state_identity(self) -> dict:
        """What must match between replicas sharing one namespace: the policy and its arms."""
        return {"policy": getattr(self, "name", type(self).__name__),
                "arms": list(getattr(self, "branch_names", None) or [])}
