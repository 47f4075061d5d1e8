"""`rules`: ordered, Envoy-style match rules over headers, query, path, tags and JSON
payload fields; the first rule that matches picks a child (or a weighted, optionally
sticky, choice of children); no match goes to `fallback`, else a 404 NO_ROUTE."""

from __future__ import annotations

from typing import Optional, Union

import numpy as np

from ...errors import NoRoute, quote
from ...request import Request
from ...router import Decision, Router
from .._params import integer, items, optional
from .config import NOT_HONOURED, load


class RuleRouter(Router):
    """Routes by the first matching rule (docs/rules.md).

    config: the rules, inline JSON or YAML (YAML needs the `rules` extra: PyYAML).
    config_file: a path to the same document (.json, .yaml); give one of the two.
    branch_names: the children's names, 'a:b:c', in the graph's order (or `children` in the config).
    n_branches: the number of children, when rules name children by index only.
    seed: seeds this instance's own generator for weighted choices (0 is a seed).

    Under Seldon's wrapper, rules on tags and jsonData work (it passes meta); header, query
    and path conditions see nothing there.
    """

    name = "rules"
    reads_features = False  # rules read headers, path, query, tags and jsonData, never tensors

    def __init__(self, config: Union[str, dict, None] = None, config_file: Optional[str] = None,
                 branch_names: Union[str, list, None] = None, n_branches: Optional[int] = None,
                 seed: Optional[int] = None):
        names = optional(items, branch_names, "branch_names")
        self.config = load(config, config_file, names, n_branches)
        self.branch_names = self.config.children
        self.n_children = len(self.branch_names)
        self.rules = self.config.rules
        self.fallback = self.config.fallback
        self.seed = optional(integer, seed, "seed")
        self.rng = np.random.default_rng(self.seed)
        # Ready-made tags (never mutated) for every (rule, child) and every sticky decision.
        self._tags = {}
        for rule in self.rules:
            for child in set(rule.choice.children):
                base = {"rule": rule.label, "route": child, "branch": self.branch_names[child],
                        "propensity": rule.choice.probability(child), **rule.policies.get(child, {})}
                self._tags[rule.index, child, False] = base
                self._tags[rule.index, child, True] = {**base, "sticky": True}
        if self.fallback is not None:
            self._fallback = Decision(self.fallback, {"route": self.fallback, "branch": self.branch_names[self.fallback],
                                                      "propensity": 1.0, "fallback": True})

    def decide(self, request: Request) -> Decision:
        for rule in self.rules:
            if rule.matches(request):
                choice, sticky = rule.choice, False
                if len(choice.children) == 1:
                    child = choice.children[0]
                else:
                    u = rule.sticky.fraction(request, str(rule.label)) if rule.sticky is not None else None
                    sticky = u is not None
                    child = choice.pick(u if sticky else self.rng.random())
                return Decision(child, self._tags[rule.index, child, sticky])
        if self.fallback is not None:
            return self._fallback
        raise NoRoute(f"router {self.describe()}: no rule matches the request and no fallback child is "
                      f"configured ({len(self.rules)} rules; path {quote(request.path or '-')})")

    def state(self) -> dict:
        rules = []
        for rule in self.rules:
            entry = {"rule": rule.label, "to": {self.branch_names[c]: w for c, w in
                                                 zip(rule.choice.children, rule.choice.weights)}}
            if rule.sticky is not None:
                entry["sticky_key"] = rule.sticky.spec
            if rule.policies:
                entry["not_enforced"] = {self.branch_names[c]: p for c, p in rule.policies.items()}
            rules.append(entry)
        out = {"format": self.config.source, "children": self.branch_names, "rules": rules,
               "fallback": None if self.fallback is None else self.branch_names[self.fallback], **self.config.report}
        if any(rule.policies for rule in self.rules):
            out["note"] = (f"{'/'.join(NOT_HONOURED)} are reported, not applied: the graph engine or "
                           "gateway must enforce them")
        return out
