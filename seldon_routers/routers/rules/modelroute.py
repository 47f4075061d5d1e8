"""A MatrixInfer `ModelRoute` document read once at start-up: `parse` validates all of it
(every field its reference lists, errors naming the field) into a ModelRoute, which
rules/modelroute_rules.py maps onto the project's rules format (so both formats go through
one validator) and canary/modelroute.py onto a rollout. Model servers are the router's
children, matched by name.

Two shapes are read:
  spec.routes[] (networking.matrixinfer.ai): {match: {headers, queryParams, path},
    destination: {modelServerRef: {name, namespace}}, weight, timeout, retries},
    spec.fallback and spec.canary {enabled, trafficSplit: {stable, canary}, analysis:
    {threshold, interval}}. Routes whose matches are identical form one weighted group (the
    canary example: one path, 90/10 between a stable and a canary server), placed where the
    group's first route stands; a route alone in its group takes every request it matches.
  spec.rules[] (kthena, networking.volcano.sh): {name, modelMatch: {headers, uri, body:
    {model}}, targetModels: [{modelServerName, weight}]}, with spec.modelName and
    spec.loraAdapters matched against the body's `model`.
What a router cannot apply (timeouts, retries, rate limits, other namespaces, the canary
analysis under `rules`) is accepted, logged and shown in /state under `not_enforced`.
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass, field
from typing import Any, Optional

from ...errors import ConfigError
from .._params import duration
from .matchers import PATH_KINDS, path_pattern, string_matcher

log = logging.getLogger("seldon_routers")

TOP_KEYS = ("apiVersion", "kind", "metadata", "spec", "status")
SPEC_KEYS = ("routes", "fallback", "canary", "rules", "modelName", "loraAdapters", "rateLimit")
ROUTE_KEYS = ("name", "match", "destination", "weight", "timeout", "retries")
MATCH_KEYS = {"headers": "headers", "queryParams": "query", "path": "path"}
RULE_KEYS = ("name", "modelMatch", "targetModels")
MODEL_MATCH_KEYS = {"headers": "headers", "uri": "path", "body": "json"}


@dataclass
class Route:
    index: int
    where: str  # "spec.routes[2]", for messages
    name: Optional[str]
    match: dict  # as written
    block: dict  # the match as the project's condition block
    server: str
    weight: Optional[int]
    timeout: Optional[str]
    retries: Optional[int]


@dataclass
class Canary:
    enabled: bool
    split: Optional[tuple]  # (stable, canary) percentages
    success_rate: Optional[float]  # analysis.threshold: the canary's success rate, in percent
    interval: Optional[float]  # analysis.interval, seconds
    interval_text: Optional[str]
    stable: Optional[Route] = None  # the pair the split applies to (when enabled)
    candidate: Optional[Route] = None


@dataclass
class ModelRoute:
    name: Optional[str]
    namespace: Optional[str]
    groups: list  # of lists of Routes with identical matches, in document order
    rules: Optional[list]  # spec.rules (kthena) mapped already
    fallback: Optional[str]
    canary: Optional[Canary]
    not_enforced: dict = field(default_factory=dict)  # field -> why a router does not apply it


def is_model_route(doc: Any) -> bool:
    return isinstance(doc, dict) and doc.get("kind") == "ModelRoute"


def _map(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a map, got {value!r}")
    return value


def _keys(spec: Any, allowed, where: str) -> dict:
    unknown = sorted(set(_map(spec, where)) - set(allowed))
    if unknown:
        raise ConfigError(f"{where}: unknown key {unknown[0]!r} (one of {', '.join(allowed)})")
    return spec


def _typed(spec: dict, key: str, kind: type, what: str, where: str):
    """spec[key] if it is of `kind` (a bool is no int here), None if unset."""
    value = spec.get(key)
    if value is not None and (not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool)):
        raise ConfigError(f"{where}.{key}: expected {what}, got {value!r}")
    return value


def _percent(value: Any, where: str, integer: bool = True) -> Any:
    """An int32 percentage (weights, a traffic split) or, for a threshold, any number."""
    kinds = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not math.isfinite(value) or not 0 <= value <= 100:
        raise ConfigError(f"{where}: expected a percentage, {'an integer' if integer else 'a number'} "
                          f"within 0..100, got {value!r}")
    return value


def _server(ref: Any, where: str, refs: list) -> str:
    """`{modelServerRef: {name, namespace}}`, or a plain name; `refs` collects (where, name,
    namespace) for the namespace checks."""
    namespace = None
    if isinstance(ref, dict) and "modelServerRef" in ref:
        _keys(ref, ("modelServerRef",), where)
        server = _keys(ref["modelServerRef"], ("name", "namespace"), f"{where}.modelServerRef")
        ref, namespace = server.get("name"), _typed(server, "namespace", str, "a namespace", f"{where}.modelServerRef")
    if not isinstance(ref, str) or not ref:
        raise ConfigError(f"{where}: expected {{modelServerRef: {{name: SERVER}}}}, got {ref!r}")
    refs.append((where, ref, namespace))
    return ref


def parse(doc: dict) -> ModelRoute:
    _keys(doc, TOP_KEYS, "ModelRoute")
    meta = _map(doc.get("metadata") or {}, "metadata")  # any of Kubernetes' ObjectMeta keys
    name = _typed(meta, "name", str, "a name", "metadata")
    namespace = _typed(meta, "namespace", str, "a namespace", "metadata")
    if doc.get("status") is not None:  # observed state, written by MatrixInfer's controller: read, not used
        status = _map(doc["status"], "status")
        _typed(status, "phase", str, "a phase (Pending, Active, Failed)", "status")
        _typed(status, "activeRoutes", int, "a count", "status")
        _typed(status, "conditions", list, "a list of conditions", "status")
    spec = _keys(doc.get("spec"), SPEC_KEYS, "spec")
    if ("routes" in spec) == ("rules" in spec):
        raise ConfigError("spec: a ModelRoute needs exactly one of spec.routes and spec.rules")
    refs: list = []
    mr = ModelRoute(name, namespace, [], None, None, None)
    if "routes" in spec:
        mr.groups = _groups(spec["routes"], refs)
    else:
        if spec.get("canary") is not None:
            raise ConfigError("spec.canary: goes with spec.routes (MatrixInfer's shape), not spec.rules")
        mr.rules = _from_kthena(spec, refs)
    if spec.get("fallback") is not None:
        mr.fallback = _server(spec["fallback"], "spec.fallback", refs)
    if spec.get("canary") is not None:
        mr.canary = _canary(spec["canary"], mr.groups)
    if spec.get("rateLimit") is not None:
        mr.not_enforced["spec.rateLimit"] = "token rate limits are a gateway's: a router only picks the child"
    _namespaces(refs, namespace, mr.not_enforced)
    return mr


def _groups(routes: Any, refs: list) -> list:
    if not isinstance(routes, list) or not routes:
        raise ConfigError("spec.routes: expected a non-empty list of routes")
    groups: dict = {}  # the match block, as canonical JSON -> its routes
    for i, spec in enumerate(routes):
        named = isinstance(spec, dict) and spec.get("name")
        where = f"spec.routes[{i}]" + (f" ({spec['name']!r})" if named else "")
        _keys(spec, ROUTE_KEYS, where)
        match = _keys(spec.get("match") or {}, MATCH_KEYS, f"{where}.match")
        block = {MATCH_KEYS[k]: v for k, v in match.items()}
        if "path" in block:
            if isinstance(block["path"], str):
                block["path"] = path_pattern(block["path"], f"{where}.match.path")
            string_matcher(block["path"], f"{where}.match.path", PATH_KINDS)  # errors name this field
        weight = spec.get("weight")
        if weight is not None:
            _percent(weight, f"{where}.weight")
        if spec.get("timeout") is not None:
            duration(spec["timeout"], f"{where}.timeout")  # a typo stops start-up, though a gateway applies it
        retries = spec.get("retries")
        if retries is not None and (isinstance(retries, bool) or not isinstance(retries, int) or retries < 0):
            raise ConfigError(f"{where}.retries: expected a number of retry attempts (an integer >= 0), "
                              f"got {retries!r}")
        server = _server(spec.get("destination"), f"{where}.destination", refs)
        route = Route(i, where, spec.get("name"), match, block, server, weight, spec.get("timeout"), retries)
        groups.setdefault(json.dumps(block, sort_keys=True), []).append(route)
    for group in groups.values():  # a group's weights are percentages, as a gateway's are
        servers = [r.server for r in group]
        if len(set(servers)) != len(servers):
            twice = next(r for r in group if servers.count(r.server) > 1)
            raise ConfigError(f"spec.routes ({label(group)!r}): routes with this match name {twice.server!r} twice; "
                              "give each server one route (and one weight)")
        weights = [r.weight for r in group]
        if len(group) > 1 and None not in weights and sum(weights) != 100:
            raise ConfigError(f"spec.routes ({label(group)!r}): the weights of routes with this match add up to "
                              f"{sum(weights)}, not 100")
        if len(group) == 1 and weights[0] == 0:
            raise ConfigError(f"{group[0].where}.weight: 0 on the only route with this match: it would take no "
                              "request; remove the route, or give it a weight")
    return list(groups.values())


def label(group: list) -> str:
    return group[0].name or f"route-{group[0].index}"


def _canary(spec: Any, groups: list) -> Canary:
    _keys(spec, ("enabled", "trafficSplit", "analysis"), "spec.canary")
    enabled = _typed(spec, "enabled", bool, "true or false", "spec.canary") or False  # unset: false, as in Go
    split = None
    if spec.get("trafficSplit") is not None:
        ts = _keys(spec["trafficSplit"], ("stable", "canary"), "spec.canary.trafficSplit")
        split = tuple(_percent(ts.get(k), f"spec.canary.trafficSplit.{k}") for k in ("stable", "canary"))
        if sum(split) != 100:
            raise ConfigError(f"spec.canary.trafficSplit: stable {split[0]} and canary {split[1]} add up to "
                              f"{sum(split)}, not 100")
    analysis = _keys(spec.get("analysis") or {}, ("threshold", "interval"), "spec.canary.analysis")
    threshold = analysis.get("threshold")
    if threshold is not None:
        threshold = float(_percent(threshold, "spec.canary.analysis.threshold", integer=False))
    interval = analysis.get("interval")
    seconds = None if interval is None else duration(interval, "spec.canary.analysis.interval")
    if seconds == 0:
        raise ConfigError("spec.canary.analysis.interval: must be longer than 0, got 0")
    canary = Canary(enabled, split, threshold, seconds, None if interval is None else str(interval))
    if enabled:
        pairs = [g for g in groups if len(g) == 2]
        if len(pairs) != 1:
            found = ", ".join(repr(label(g)) for g in pairs) or "none"
            raise ConfigError(f"spec.canary: a canary splits one pair of routes with identical matches, the stable "
                              f"server's first and the canary's second; found {len(pairs)} such pairs ({found})")
        canary.stable, canary.candidate = pairs[0]
        weights = (canary.stable.weight, canary.candidate.weight)
        if split is not None and None not in weights and weights != split:
            raise ConfigError(f"spec.canary.trafficSplit: {split[0]}/{split[1]}, but the pair's routes weigh "
                              f"{weights[0]}/{weights[1]} ({canary.stable.where}, {canary.candidate.where}); "
                              "make them agree")
        canary.split = split or (weights if None not in weights else None)
    return canary


def _namespaces(refs: list, namespace: Optional[str], not_enforced: dict) -> None:
    """The graph's children are one SeldonDeployment's units, named without a namespace: a
    server in another namespace is reported, and two servers of one name are refused."""
    seen: dict = {}
    for where, server, ns in refs:
        ns = ns or namespace
        if ns is not None and seen.setdefault(server, (where, ns))[1] != ns:
            raise ConfigError(f"{where}: model server {server!r} in namespace {ns!r}, and {seen[server][0]} names "
                              f"{server!r} in {seen[server][1]!r}: the graph's children are matched by name only")
    for where, server, ns in refs:
        if ns is not None and ns != namespace:
            not_enforced[f"{where}.modelServerRef.namespace"] = (
                f"{ns!r}: not checked; the child named {server!r} serves it (a graph's children are the "
                "SeldonDeployment's units, in its own namespace)")


def _from_kthena(spec: dict, refs: list) -> list:
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
            to.append({"child": _server(t.get("modelServerName"), f"{where}.targetModels[{j}].modelServerName", refs),
                       "weight": t.get("weight", 100)})
        out = {"name": rule.get("name") or f"rule-{i}", "match": block, "to": to}
        if model_block:
            out["any_of"] = [model_block]  # AND-ed with the rule's own match
        rules.append(out)
    return rules


def log_report(report: dict, router: str, mr: Optional[ModelRoute] = None) -> None:
    """One log line per field a router accepts and does not apply (and the routes' timeouts
    and retries, which /state shows by rule), and per note."""
    who = f"{router}: ModelRoute {(report.get('model_route') or {}).get('name') or '-'}"
    for route in (r for group in (mr.groups if mr is not None else ()) for r in group):
        policy = ", ".join(f"{k} {getattr(route, k)}" for k in ("timeout", "retries")
                           if getattr(route, k) is not None)
        if policy:
            log.info("%s: %s: %s not enforced: Seldon's executor or the gateway makes the call",
                     who, route.where, policy)
    for where, why in (report.get("not_enforced") or {}).items():
        log.info("%s: %s not enforced: %s", who, where, why)
    for note in report.get("notes") or ():
        log.warning("%s: %s", who, note)
