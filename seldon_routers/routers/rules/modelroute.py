"""A MatrixInfer `ModelRoute` document mapped onto the project's rules format, so both go
through one validator. Model servers are the router's children, matched by name.

Two shapes are read:
  spec.routes[]: {name, match: {headers, queryParams, path}, destination: {modelServerRef:
    {name}}, weight, timeout, retries} and spec.fallback. Routes whose match blocks are
    identical form one weighted group (the canary example: one path, 90/10 between a stable
    and a canary server), placed where the group's first route stands.
  spec.rules[] (kthena, networking.volcano.sh): {name, modelMatch: {headers, uri, body:
    {model}}, targetModels: [{modelServerName, weight}]}, with spec.modelName and
    spec.loraAdapters matched against the body's `model`.
ModelRoute string matchers (exact, prefix, regex) are the project's own.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ...errors import ConfigError

ROUTE_KEYS = ("name", "match", "destination", "weight", "timeout", "retries")
MATCH_KEYS = {"headers": "headers", "queryParams": "query", "path": "path"}
RULE_KEYS = ("name", "modelMatch", "targetModels")
MODEL_MATCH_KEYS = {"headers": "headers", "uri": "path", "body": "json"}


def is_model_route(doc: Any) -> bool:
    return isinstance(doc, dict) and doc.get("kind") == "ModelRoute"


def _server(ref: Any, where: str) -> str:
    """`{modelServerRef: {name: X}}`, or a plain name."""
    if isinstance(ref, dict) and isinstance(ref.get("modelServerRef"), dict):
        ref = ref["modelServerRef"].get("name")
    if not isinstance(ref, str) or not ref:
        raise ConfigError(f"{where}: expected {{modelServerRef: {{name: SERVER}}}}, got {ref!r}")
    return ref


def _keys(spec: Any, allowed, where: str) -> dict:
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: expected a map, got {spec!r}")
    unknown = sorted(set(spec) - set(allowed))
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (one of {', '.join(allowed)})")
    return spec


def to_rules(doc: dict) -> dict:
    spec = _keys(doc.get("spec"), ("routes", "fallback", "rules", "modelName", "loraAdapters", "rateLimit"), "spec")
    if ("routes" in spec) == ("rules" in spec):
        raise ConfigError("spec: a ModelRoute needs exactly one of spec.routes and spec.rules")
    rules = _from_routes(spec["routes"]) if "routes" in spec else _from_kthena(spec)
    out = {"rules": rules}
    if spec.get("fallback") is not None:
        out["fallback"] = _server(spec["fallback"], "spec.fallback")
    return out


def _from_routes(routes: Any) -> list:
    if not isinstance(routes, list) or not routes:
        raise ConfigError("spec.routes: expected a non-empty list of routes")
    groups: dict = {}  # the match block, as canonical JSON -> its rule
    rules = []
    for i, route in enumerate(routes):
        where = f"spec.routes[{i}]" + (f" ({route.get('name')!r})" if isinstance(route, dict) and route.get("name") else "")
        _keys(route, ROUTE_KEYS, where)
        match = _keys(route.get("match") or {}, MATCH_KEYS, f"{where}.match")
        block = {MATCH_KEYS[k]: v for k, v in match.items()}
        target = {"child": _server(route.get("destination"), f"{where}.destination")}
        for k in ("weight", "timeout", "retries"):
            if route.get(k) is not None:
                target[k] = route[k]
        key = json.dumps(block, sort_keys=True)
        if key in groups:
            groups[key]["to"].append(target)
            continue
        rule = {"name": route.get("name") or f"route-{i}", "match": block, "to": [target]}
        groups[key] = rule
        rules.append(rule)
    for rule in rules:  # a group's weights are percentages, as a gateway's are
        weights = [t.get("weight") for t in rule["to"]]
        if len(weights) > 1 and None not in weights and sum(weights) != 100:
            raise ConfigError(f"spec.routes ({rule['name']!r}): the weights of routes with this match add up to "
                              f"{sum(weights)}, not 100")
    return rules


def _from_kthena(spec: dict) -> list:
    models = ([spec["modelName"]] if spec.get("modelName") else []) + list(spec.get("loraAdapters") or [])
    model_block = {"json": {"model": {"regex": "|".join(re.escape(str(m)) for m in models)}}} if models else None
    rules_spec = spec["rules"]
    if not isinstance(rules_spec, list) or not rules_spec:
        raise ConfigError("spec.rules: expected a non-empty list of rules")
    rules = []
    for i, rule in enumerate(rules_spec):
        where = f"spec.rules[{i}]" + (f" ({rule.get('name')!r})" if isinstance(rule, dict) and rule.get("name") else "")
        _keys(rule, RULE_KEYS, where)
        match = _keys(rule.get("modelMatch") or {}, MODEL_MATCH_KEYS, f"{where}.modelMatch")
        block = {MODEL_MATCH_KEYS[k]: v for k, v in match.items() if k != "body"}
        if "body" in match:
            body = _keys(match["body"], ("model",), f"{where}.modelMatch.body")
            if body.get("model") is not None:
                block["json"] = {"model": {"exact": body["model"]}}
        targets = rule.get("targetModels")
        if not isinstance(targets, list) or not targets:
            raise ConfigError(f"{where}.targetModels: expected a non-empty list of {{modelServerName, weight}}")
        to = []
        for j, t in enumerate(targets):
            _keys(t, ("modelServerName", "weight"), f"{where}.targetModels[{j}]")
            # kthena's weight defaults to 100 (a percentage)
            to.append({"child": _server(t.get("modelServerName"), f"{where}.targetModels[{j}].modelServerName"),
                       "weight": t.get("weight", 100)})
        out = {"name": rule.get("name") or f"rule-{i}", "match": block, "to": to}
        if model_block:
            out["any_of"] = [model_block]  # AND-ed with the rule's own match
        rules.append(out)
    return rules
