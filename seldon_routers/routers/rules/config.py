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

import json
from dataclasses import dataclass, field
from typing import Any, Optional

from ...errors import ConfigError
from .._weights import StickyKey, WeightedChoice
from .conditions import Predicate, compile_block

TOP_KEYS = ("children", "fallback", "sticky_key", "rules")
RULE_KEYS = ("name", "match", "any_of", "to", "sticky_key")
TARGET_KEYS = ("child", "weight", "timeout", "retries")
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


def read_document(config: Any, config_file: Optional[str]) -> Any:
    """The configuration document from exactly one of `config` (inline) and `config_file`."""
    if (config is None) == (config_file is None):
        raise ConfigError("config: give exactly one of config (inline JSON/YAML) and config_file (a path)")
    if config_file is not None:
        try:
            with open(config_file, encoding="utf-8") as f:
                text = f.read()
        except OSError as exc:
            raise ConfigError(f"config_file: cannot read {config_file!r}: {exc.strerror}") from None
        return parse_text(text, "config_file", config_file.endswith(".json"))
    if isinstance(config, str):
        return parse_text(config, "config", False)
    return config


def parse_text(text: str, field: str, is_json: bool) -> Any:
    stripped = text.strip()
    if is_json or stripped.startswith(("{", "[")):  # JSON needs nothing beyond the stdlib
        try:
            return json.loads(stripped)
        except ValueError as exc:
            raise ConfigError(f"{field}: not valid JSON: {exc}") from None
    try:
        import yaml  # lazily: PyYAML is the optional `rules` extra
    except ImportError:
        raise ConfigError(f"{field}: YAML needs PyYAML: pip install 'seldon-routers[rules]' "
                          "(or give the configuration as JSON)") from None
    try:
        return yaml.safe_load(stripped)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{field}: not valid YAML: {exc}") from None


def child_names(doc_children: Any, branch_names: Optional[list], n_branches: Optional[int]) -> list:
    names = None
    if doc_children is not None:
        if not isinstance(doc_children, list) or not all(isinstance(c, str) and c for c in doc_children):
            raise ConfigError(f"children: expected a list of names, got {doc_children!r}")
        names = doc_children
    if branch_names is not None:
        if names is not None and names != branch_names:
            raise ConfigError(f"branch_names: {branch_names} differs from the config's children {names}")
        names = branch_names
    if n_branches is not None:
        if names is not None and len(names) != n_branches:
            raise ConfigError(f"n_branches: {n_branches} but {len(names)} children are named")
        names = names or [str(i) for i in range(n_branches)]
    if not names:
        raise ConfigError("children: name the children (a children list in the config, or branch_names "
                          "'a:b:c'), or give n_branches")
    if len(set(names)) != len(names):
        raise ConfigError(f"children: names must be unique, got {names}")
    return list(names)


def resolve_child(ref: Any, names: list, where: str) -> int:
    """A child by name, or by a valid index (an int or its digits)."""
    if isinstance(ref, str) and ref in names:
        return names.index(ref)
    if (isinstance(ref, int) and not isinstance(ref, bool)) or (isinstance(ref, str) and ref.isdigit()):
        if 0 <= int(ref) < len(names):
            return int(ref)
    raise ConfigError(f"{where}: unknown child {ref!r} (children: {', '.join(names)})")


def _targets(spec: Any, names: list, where: str) -> tuple[WeightedChoice, dict]:
    if isinstance(spec, (str, int)) and not isinstance(spec, bool):
        spec = [{"child": spec}]
    if not isinstance(spec, list) or not spec:
        raise ConfigError(f"{where}: expected a child name or a list of {{child, weight}}, got {spec!r}")
    children, weights, policies = [], [], {}
    for i, target in enumerate(spec):
        at = f"{where}[{i}]"
        if not isinstance(target, dict):
            target = {"child": target}
        unknown = sorted(set(target) - set(TARGET_KEYS))
        if unknown:
            raise ConfigError(f"{at}: unknown key {unknown[0]!r} (one of {', '.join(TARGET_KEYS)})")
        if "child" not in target:
            raise ConfigError(f"{at}.child: missing")
        children.append(resolve_child(target["child"], names, f"{at}.child"))
        weight = target.get("weight")
        if weight is not None and (isinstance(weight, bool) or not isinstance(weight, (int, float))):
            raise ConfigError(f"{at}.weight: expected a number, got {weight!r}")
        weights.append(weight)
        policy = {k: target[k] for k in NOT_HONOURED if target.get(k) is not None}
        if policy:
            policies[children[-1]] = policy
    if len(set(children)) != len(children):
        raise ConfigError(f"{where}: a child is listed twice: {[names[c] for c in children]}")
    unset = [w is None for w in weights]
    if any(unset) and not all(unset):
        raise ConfigError(f"{where}: set a weight on every target or on none (none: equal shares)")
    return WeightedChoice(children, None if all(unset) else weights, f"{where} weights"), policies


def _sticky(spec: Any, where: str) -> Optional[StickyKey]:
    if spec is None:
        return None
    if not isinstance(spec, str):
        raise ConfigError(f"{where}: expected header:NAME or tag:NAME, got {spec!r}")
    return StickyKey(spec, where)


def named_entries(specs: list, section: str, keys: tuple, noun: str):
    """The entries of an ordered list of maps (rules, time-of-day windows), each checked (a
    map, known keys, a name unique and non-empty if given), as (index, label, where, spec):
    the label is the name, else the index; `where` names the entry in errors."""
    labels = set()
    for i, spec in enumerate(specs):
        name = spec.get("name") if isinstance(spec, dict) else None
        where = f"{section}[{i}]" + (f" ({name!r})" if name is not None else "")
        if not isinstance(spec, dict):
            raise ConfigError(f"{where}: expected a map with {', '.join(keys)}, got {spec!r}")
        unknown = sorted(set(spec) - set(keys))
        if unknown:
            raise ConfigError(f"{where}: unknown key {unknown[0]!r} (one of {', '.join(keys)})")
        if name is not None and (not isinstance(name, str) or not name):
            raise ConfigError(f"{where}.name: expected a non-empty string, got {name!r}")
        if name is not None and name in labels:
            raise ConfigError(f"{where}.name: another {noun} is named {name!r}")
        labels.add(name)
        yield i, name if name is not None else i, where, spec


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
    default_sticky = _sticky(doc.get("sticky_key"), "sticky_key")
    fallback = None if doc.get("fallback") is None else resolve_child(doc["fallback"], names, "fallback")
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
        choice, rule_policies = _targets(spec["to"], names, f"{where}.to")
        sticky = _sticky(spec["sticky_key"], f"{where}.sticky_key") if "sticky_key" in spec else default_sticky
        rules.append(Rule(i, label, when, tuple(blocks), choice, sticky, rule_policies))
    return Config(names, rules, fallback, source, reads)


def _sources(block: Any) -> set:
    return set(block) if isinstance(block, dict) else set()


def load(config: Any, config_file: Optional[str], branch_names: Optional[list],
         n_branches: Optional[int]) -> Config:
    from .modelroute import is_model_route, to_rules  # the second format maps onto the first

    doc = read_document(config, config_file)
    if is_model_route(doc):
        if branch_names is None:
            raise ConfigError("branch_names: a ModelRoute names model servers; give the graph's children "
                              "by those names, in the graph's order ('stable:canary')")
        return compile_rules(to_rules(doc), child_names(None, branch_names, n_branches), "ModelRoute")
    if not isinstance(doc, dict):
        raise ConfigError(f"config: expected a map with {', '.join(TOP_KEYS)}, got {type(doc).__name__}")
    return compile_rules(doc, child_names(doc.get("children"), branch_names, n_branches))
