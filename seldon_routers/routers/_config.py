"""Reading the configuration documents of the config-driven routers (rules, time-of-day):
JSON or YAML, inline or from a file; children by name; weighted targets; sticky keys; and
ordered, named entries (rules, windows). Every error names the entry and the field."""

from __future__ import annotations

import json
from typing import Any, Optional

from ..errors import ConfigError
from ._params import child, n_children
from ._weights import StickyKey, WeightedChoice


def read_document(config: Any, config_file: Optional[str], field: str = "config") -> Any:
    """The configuration document from exactly one of `config` (inline) and `config_file`,
    the parameters `field` and `field`_file (errors name them)."""
    if (config is None) == (config_file is None):
        raise ConfigError(f"{field}: give exactly one of {field} (inline JSON/YAML) and {field}_file (a path)")
    if config_file is not None:
        try:
            with open(config_file, encoding="utf-8") as f:
                text = f.read()
        except OSError as exc:
            raise ConfigError(f"{field}_file: cannot read {config_file!r}: {exc.strerror}") from None
        return parse_text(text, f"{field}_file", config_file.endswith(".json"))
    if isinstance(config, str):
        return parse_text(config, field, False)
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
        n_branches = n_children(n_branches)
        if names is not None and len(names) != n_branches:
            raise ConfigError(f"n_branches: {n_branches} but {len(names)} children are named")
        names = names or [str(i) for i in range(n_branches)]
    if not names:
        raise ConfigError("children: name the children (a children list in the config, or branch_names "
                          "'a:b:c'), or give n_branches")
    if len(set(names)) != len(names):
        raise ConfigError(f"children: names must be unique, got {names}")
    return list(names)


def targets(spec: Any, names: list, where: str, policy_keys: tuple = ()) -> tuple[WeightedChoice, dict]:
    """`to` (or a default): one child, or a list of {child, weight}; `policy_keys` are
    further per-target keys to accept and return by child (the rules' timeout, retries)."""
    keys = ("child", "weight") + tuple(policy_keys)
    if isinstance(spec, (str, int)) and not isinstance(spec, bool):
        spec = [{"child": spec}]
    if not isinstance(spec, list) or not spec:
        raise ConfigError(f"{where}: expected a child name or a list of {{child, weight}}, got {spec!r}")
    children, weights, policies = [], [], {}
    for i, target in enumerate(spec):
        at = f"{where}[{i}]"
        if not isinstance(target, dict):
            target = {"child": target}
        unknown = sorted(set(target) - set(keys))
        if unknown:
            raise ConfigError(f"{at}: unknown key {unknown[0]!r} (one of {', '.join(keys)})")
        if "child" not in target:
            raise ConfigError(f"{at}.child: missing")
        children.append(child(target["child"], names, f"{at}.child"))
        weight = target.get("weight")
        if weight is not None and (isinstance(weight, bool) or not isinstance(weight, (int, float))):
            raise ConfigError(f"{at}.weight: expected a number, got {weight!r}")
        weights.append(weight)
        policy = {k: target[k] for k in policy_keys if target.get(k) is not None}
        if policy:
            policies[children[-1]] = policy
    if len(set(children)) != len(children):
        raise ConfigError(f"{where}: a child is listed twice: {[names[c] for c in children]}")
    unset = [w is None for w in weights]
    if any(unset) and not all(unset):
        raise ConfigError(f"{where}: set a weight on every target or on none (none: equal shares)")
    return WeightedChoice(children, None if all(unset) else weights, f"{where} weights"), policies


def sticky_key(spec: Any, where: str) -> Optional[StickyKey]:
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
