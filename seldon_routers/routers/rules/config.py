"""The `rules` configuration: read (JSON, or YAML when PyYAML is there), validated once at
start-up, compiled into Rules. Every error names the rule (index and name) and the field.

The project's format:
    children: [pool-a, pool-b, general]      # or the branch_names parameter
    fallback: general                        # optional: else an unmatched request is a 404
    sticky_key: header:x-user-id             # optional default for every rule
    rules:
      - name: llama
        match: {headers: {x-model: {prefix: llama}}, path: {glob: /v1/**}}
        any_of: [{tags: {tier: gold}}, {query: {beta: "1"}}]
        to: pool-a                           # or [{child: pool-a, weight: 9}, {child: pool-b, weight: 1}]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from ...errors import ConfigError
from .._config import child_names, named_entries, read_document, sticky_key, targets
from .._params import child
from .._weights import StickyKey, WeightedChoice
from .conditions import Predicate, compile_block

TOP_KEYS = ("children", "fallback", "sticky_key", "rules")
RULE_KEYS = ("name", "match", "any_of", "to", "sticky_key")
# Fields a gateway would apply to the call itself: accepted, reported, never enforced here.
NOT_HONOURED = ("timeout", "retries")


@dataclass
class Rule:
    index: int
    label: Any  # the name if given, else the index: what tags and /state show
    when: Predicate
    any_of: tuple
    choice: WeightedChoice
    sticky: Optional[StickyKey]
    policies: dict = field(default_factory=dict)  # child -> {timeout, retries} to report

    def matches(self, request) -> bool:
        return self.when(request) and (not self.any_of or any(p(request) for p in self.any_of))


@dataclass
class Config:
    children: list
    rules: list
    fallback: Optional[int]
    source: str  # "rules" or "ModelRoute"
    conditions: set  # the condition sources any rule reads (headers, path, ...)
    report: dict = field(default_factory=dict)  # a ModelRoute's model_route, not_enforced, notes for /state


def compile_rules(doc: Any, names: list, source: str = "rules") -> Config:
    """The project's format (a dict) to a Config, validated."""
    if not isinstance(doc, dict):
        raise ConfigError(f"config: expected a map with {', '.join(TOP_KEYS)}, got {type(doc).__name__}")
    unknown = sorted(set(doc) - set(TOP_KEYS))
    if unknown:
        raise ConfigError(f"config: unknown key {unknown[0]!r} (one of {', '.join(TOP_KEYS)})")
    rules_spec = doc.get("rules")
    if not isinstance(rules_spec, list):
        raise ConfigError(f"rules: expected a list of rules, got {rules_spec!r}")
    default_sticky = sticky_key(doc.get("sticky_key"), "sticky_key")
    fallback = None if doc.get("fallback") is None else child(doc["fallback"], names, "fallback")
    rules, reads = [], set()
    for i, label, where, spec in named_entries(rules_spec, "rules", RULE_KEYS, "rule"):
        if "to" not in spec:
            raise ConfigError(f"{where}.to: missing: name the child (or children with weights) it routes to")
        when, _ = compile_block(spec.get("match"), f"{where}.match")
        reads |= _sources(spec.get("match"))
        any_of = spec.get("any_of")
        blocks = []
        if any_of is not None:
            if not isinstance(any_of, list) or not any_of:
                raise ConfigError(f"{where}.any_of: expected a non-empty list of condition blocks")
            for j, block in enumerate(any_of):
                blocks.append(compile_block(block, f"{where}.any_of[{j}]")[0])
                reads |= _sources(block)
        choice, rule_policies = targets(spec["to"], names, f"{where}.to", NOT_HONOURED)
        sticky = sticky_key(spec["sticky_key"], f"{where}.sticky_key") if "sticky_key" in spec else default_sticky
        rules.append(Rule(i, label, when, tuple(blocks), choice, sticky, rule_policies))
    return Config(names, rules, fallback, source, reads)


def _sources(block: Any) -> set:
    return set(block) if isinstance(block, dict) else set()


def load(config: Any, config_file: Optional[str], branch_names: Optional[list],
         n_branches: Optional[int]) -> Config:
    from .modelroute import is_model_route, log_report, parse  # the second format maps onto the first
    from .modelroute_rules import to_rules

    doc = read_document(config, config_file)
    if is_model_route(doc):
        if branch_names is None:
            raise ConfigError("branch_names: a ModelRoute names model servers; give the graph's children "
                              "by those names, in the graph's order ('stable:canary')")
        model_route = parse(doc)
        rules, report = to_rules(model_route)
        config = compile_rules(rules, child_names(None, branch_names, n_branches), "ModelRoute")
        config.report = report
        log_report(report, "rules", model_route)
        return config
    if not isinstance(doc, dict):
        raise ConfigError(f"config: expected a map with {', '.join(TOP_KEYS)}, got {type(doc).__name__}")
    return compile_rules(doc, child_names(doc.get("children"), branch_names, n_branches))
