"""`ab-test`: static weights over n children (A/B/C... testing), random or sticky per key."""

from __future__ import annotations

from typing import Optional, Union

import numpy as np

from ..errors import ConfigError
from ..request import Request
from ..router import Decision, Router
from ._params import children, fraction, integer, items, optional
from ._weights import StickyKey, WeightedChoice


class ABTest(Router):
    """Sends each request to child i with probability weights[i].

    n_branches: number of children (default: len(weights), else 2).
    weights: relative weights, '0.5:0.3:0.2' or a JSON list (default: equal).
    ratioA: Seldon's RANDOM_ABTEST parameter: two children, A with this probability.
    seed: seeds this instance's own generator (0 is a seed like any other).
    branch_names: names of the children, 'a:b:c', shown in tags.
    sticky_key: header:NAME or tag:NAME (e.g. header:x-user-id): a request carrying the key
      always gets the same child, on every replica and across restarts, while the split
      holds over many keys; a request without it gets a random child.
    sticky_salt: mixed into the key's hash (default: the branch names), so two sticky
      experiments on the same users split them independently; give two routers the same
      salt to split them alike. Under Seldon's wrapper a tag:NAME key works (it passes
      meta); a header:NAME one sees no headers there and draws at random.
    """

    name = "ab-test"
    reads_features = False  # static weights: the request's data never matters

    def __init__(self, n_branches: Optional[int] = None, weights: Union[str, list, None] = None,
                 seed: Optional[int] = None, branch_names: Union[str, list, None] = None,
                 ratioA: Optional[float] = None, sticky_key: Optional[str] = None,
                 sticky_salt: Optional[str] = None):
        if ratioA is not None:
            if weights is not None:
                raise ConfigError("ratioA: give either ratioA or weights, not both")
            ratioA = fraction(ratioA, "ratioA")
            weights = [ratioA, 1 - ratioA]
        parsed = optional(items, weights, "weights", float)
        if n_branches is None and parsed is None and branch_names is None:
            n_branches = 2
        if n_branches is None and parsed is not None:
            n_branches = len(parsed)
        self.branch_names = children(n_branches, branch_names)
        self.n_children = len(self.branch_names)
        self._use(WeightedChoice(range(self.n_children), parsed))
        self.sticky = None if sticky_key is None else StickyKey(sticky_key)
        self.sticky_salt = "ab-test:" + ":".join(self.branch_names) if sticky_salt is None else sticky_salt
        self.seed = optional(integer, seed, "seed")
        self.rng = np.random.default_rng(self.seed)

    def _use(self, choice: WeightedChoice) -> None:
        # Ready-made tags per child (never mutated): the draw is the only per-request work.
        # One tuple, swapped whole, so a route during set_weights reads old or new, never a mix.
        tags = [{"route": i, "branch": name, "propensity": w}
                for i, (name, w) in enumerate(zip(self.branch_names, choice.weights))]
        self._routing = (choice, tags, [{**t, "sticky": True} for t in tags])
        self.choice, self.weights = choice, choice.weights

    def set_weights(self, weights) -> None:
        """New weights, as the `weights` parameter takes them, or {branch: weight} with every
        branch named (an admin action: docs/security.md). Checked whole before any change."""
        if isinstance(weights, dict):
            unknown = sorted(set(map(str, weights)) - set(self.branch_names))
            if unknown or len(weights) != self.n_children:
                raise ConfigError(f"weights: name every branch once ({', '.join(self.branch_names)}), "
                                  f"got {', '.join(map(str, weights)) or 'none'}")
            weights = [weights[name] for name in self.branch_names]
        self._use(WeightedChoice(range(self.n_children), items(weights, "weights", float)))

    def decide(self, request: Request) -> Decision:
        choice, tags, sticky_tags = self._routing
        if self.sticky is not None:
            u = self.sticky.fraction(request, self.sticky_salt)
            if u is not None:
                child = choice.pick(u)
                return Decision(child, sticky_tags[child])
        child = choice.pick(self.rng.random())
        return Decision(child, tags[child])

    def state(self) -> dict:
        out = {"weights": dict(zip(self.branch_names, self.weights))}
        if self.sticky is not None:
            out["sticky_key"] = self.sticky.spec
        return out
