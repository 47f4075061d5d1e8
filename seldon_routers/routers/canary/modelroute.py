"""A MatrixInfer ModelRoute's `spec.canary` as the canary router's rollout: the pair of
routes with identical matches gives the stable child (the first) and the candidate (the
second), `trafficSplit.canary` the candidate's first weight (and, unless step_weights are
given, the step), `analysis.interval` the check interval, and `analysis.threshold` the
candidate's success rate in percent (as MatrixInfer's own canary examples write
`successRate: {threshold: 99.5}`), i.e. max_error_rate = 1 - threshold / 100. How many
failed checks roll back stays the `threshold` parameter (Flagger's failedChecks).
What the canary router does not apply (the pair's match, fallback, timeouts, retries,
other namespaces) is logged and shown in /state under `not_enforced`."""

from __future__ import annotations

import inspect
import json
from typing import Any, Optional

from ...errors import ConfigError
from .._params import children, items
from .._config import read_document
from ..rules.modelroute import is_model_route, log_report, parse

def from_model_route(config: Any, config_file: Optional[str], branch_names: Any, n_branches: Optional[int],
                     given: dict) -> tuple[dict, dict]:
    """The rollout parameters the document sets (stable, candidate, interval, step_weight,
    max_error_rate), checked against `given` (the constructor's values for those, and for
    step_weights and max_weight); and what is not enforced, by field."""
    doc = read_document(config, config_file)
    if not is_model_route(doc):
        got = f"kind {doc.get('kind')!r}" if isinstance(doc, dict) else f"a {type(doc).__name__}"
        raise ConfigError("config: the canary router reads a MatrixInfer ModelRoute (kind: ModelRoute) with "
                          f"spec.canary; got {got}")
    mr = parse(doc)
    canary = mr.canary
    if canary is None:
        raise ConfigError("spec.canary: missing: the canary router runs the rollout spec.canary describes")
    if not canary.enabled:
        raise ConfigError("spec.canary.enabled: false (or not set): there is no rollout to run; serve the "
                          "document with the `rules` router for its fixed split")
    if branch_names is None:
        raise ConfigError("branch_names: a ModelRoute names model servers; give the graph's children by those "
                          "names, in the graph's order")
    names = children(n_branches, branch_names)
    pair = (canary.stable, canary.candidate)
    for route in (r for group in mr.groups for r in group):
        if route is not pair[0] and route is not pair[1]:
            raise ConfigError(f"{route.where}: the canary router sends every request to the pair's stable or "
                              "canary server; a ModelRoute with other routes is served by the `rules` router")
    for route in pair:
        if route.server not in names:
            raise ConfigError(f"{route.where}.destination.modelServerRef.name: {route.server!r} is not one of the "
                              f"graph's children ({', '.join(names)})")
    derived = {"stable": canary.stable.server, "candidate": canary.candidate.server}
    fields = {"stable": f"{canary.stable.where}.destination", "candidate": f"{canary.candidate.where}.destination",
              "interval": "spec.canary.analysis.interval", "step_weight": "spec.canary.trafficSplit.canary",
              "max_error_rate": "spec.canary.analysis.threshold"}
    if canary.interval is not None:
        derived["interval"] = canary.interval
    if canary.success_rate is not None:
        derived["max_error_rate"] = round(1.0 - canary.success_rate / 100.0, 12)
    if canary.split is not None:
        _first_weight(canary.split[1], given, derived)
    _conflicts(derived, given, fields)
    report = {"model_route": {"name": mr.name, "namespace": mr.namespace}, "not_enforced": dict(mr.not_enforced)}
    _not_applied(mr, report["not_enforced"])
    log_report(report, "canary")
    return derived, report["not_enforced"]


def _first_weight(weight: int, given: dict, derived: dict) -> None:
    """trafficSplit.canary is where the candidate starts: the first of step_weights if they
    are given, else the step too (10 -> 10, 20, ... up to max_weight)."""
    where = "spec.canary.trafficSplit.canary"
    if weight == 0:
        raise ConfigError(f"{where}: 0: a canary starts with some of the traffic")
    if isinstance(given["max_weight"], (int, float)) and weight > given["max_weight"]:
        raise ConfigError(f"{where}: {weight} is above max_weight {given['max_weight']:g}, the top weight before "
                          "promotion; raise max_weight")
    if given["step_weights"] is not None:
        steps = items(given["step_weights"], "step_weights", float)
        if steps and steps[0] != weight:
            raise ConfigError(f"step_weights: start at {steps[0]:g}, but {where} starts the candidate at {weight}; "
                              "make them agree")
    else:
        derived["step_weight"] = weight


def _conflicts(derived: dict, given: dict, fields: dict) -> None:
    """A parameter the document sets must be left unset (at its default) or agree with it."""
    from .router import Canary  # its defaults: what an unset parameter reads

    defaults = inspect.signature(Canary.__init__).parameters
    for name, value in derived.items():
        mine = given[name]
        if str(mine) in (str(defaults[name].default), str(value)) or mine == value:
            continue
        raise ConfigError(f"{name}: {mine!r} is given, but the ModelRoute's {fields[name]} sets {value!r}; "
                          "give one of the two")


def _not_applied(mr, not_enforced: dict) -> None:
    canary = mr.canary
    if canary.stable.match:
        not_enforced[f"{canary.stable.where}.match"] = (
            f"{json.dumps(canary.stable.match, sort_keys=True)}: the canary router splits every request it is "
            "called for between stable and canary; put it where the graph's traffic is the pair's")
    if mr.fallback is not None:
        not_enforced["spec.fallback"] = f"{mr.fallback!r}: every request goes to the stable or the canary server"
    for route in (canary.stable, canary.candidate):
        for key in ("timeout", "retries"):
            if getattr(route, key) is not None:
                not_enforced[f"{route.where}.{key}"] = (f"{getattr(route, key)}: Seldon's executor or the gateway "
                                                        "makes the call")
