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
        self.choice = WeightedChoice(range(self.n_children), parsed)
        self.weights = self.choice.weights
        self.sticky = None if sticky_key is None else StickyKey(sticky_key)
        self.sticky_salt = "ab-test:" + ":".join(self.branch_names) if sticky_salt is None else sticky_salt
        self.seed = optional(integer, seed, "seed")
        self.rng = np.random.default_rng(self.seed)
        # Ready-made tags per child (never mutated): the draw is the only per-request work.
        self._tags = [{"route": i, "branch": name, "propensity": w}
                      for i, (name, w) in enumerate(zip(self.branch_names, self.weights))]
        self._sticky_tags = [{**tags, "sticky": True} for tags in self._tags]

    def decide(self, request: Request) -> Decision:
        if self.sticky is not None:
            u = self.sticky.fraction(request, self.sticky_salt)
            if u is not None:
                child = self.choice.pick(u)
                return Decision(child, self._sticky_tags[child])
        child = self.choice.pick(self.rng.random())
        return Decision(child, self._tags[child])

    def state(self) -> dict:
        out = {"weights": dict(zip(self.branch_names, self.weights))}
        if self.sticky is not None:
            out["sticky_key"] = self.sticky.spec
        return out
