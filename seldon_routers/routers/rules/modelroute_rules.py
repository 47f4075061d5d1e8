"""What the `rules` router makes of a ModelRoute (rules/modelroute.py reads it): the
project's rules document, each group of routes with identical matches one rule, the canary
pair split by `trafficSplit`; and the report /state shows beside the rules: the canary
analysis (which the `canary` router runs), and notes on what may not do what the document
seems to say (a weight on a route alone in its group; a path no Seldon call has)."""

from __future__ import annotations

import json
from typing import Optional

from .matchers import PATH_KINDS, string_matcher
from .modelroute import Canary, ModelRoute, label

# The paths Seldon's executor calls a router's Route on (SELDON_PROTOCOL.md): all that a
# path condition sees through this project's server, whatever URL the client called.
CALL_PATHS = ("/route", "/seldon.protos.Router/Route", "/seldon.protos.Generic/Route")


def to_rules(mr: ModelRoute) -> tuple[dict, dict]:
    """The project's rules document, and the report /state shows (model_route,
    not_enforced, notes) beside the rules."""
    report = {"model_route": {"name": mr.name, "namespace": mr.namespace}, "not_enforced": dict(mr.not_enforced),
              "notes": []}
    rules = mr.rules
    if rules is None:
        rules = []
        canary = mr.canary if mr.canary is not None and mr.canary.enabled else None
        for group in mr.groups:
            to = []
            for route in group:
                target = {"child": route.server}
                for key in ("weight", "timeout", "retries"):
                    if getattr(route, key) is not None:
                        target[key] = getattr(route, key)
                if canary is not None and canary.split is not None and route is canary.stable:
                    target["weight"] = canary.split[0]  # the pair splits by trafficSplit
                if canary is not None and canary.split is not None and route is canary.candidate:
                    target["weight"] = canary.split[1]
                to.append(target)
            rules.append({"name": label(group), "match": group[0].block, "to": to})
            _notes(group, report["notes"])
        report["not_enforced"].update(_canary_report(mr.canary))
    out = {"rules": rules}
    if mr.fallback is not None:
        out["fallback"] = mr.fallback
    return out, {k: v for k, v in report.items() if v}


def _notes(group: list, notes: list) -> None:
    route = group[0]
    if len(group) == 1 and route.weight is not None and route.weight != 100:
        notes.append(f"{route.where}.weight: {route.weight} on the only route with this match: it takes every "
                     "request it matches (weights split the requests of routes with identical matches)")
    if "path" in route.block:
        matcher = string_matcher(route.block["path"], "path", PATH_KINDS)
        if not any(matcher(p) for p in CALL_PATHS):
            notes.append(f"{route.where}.match.path: {json.dumps(route.match['path'])} matches none of the paths "
                         f"a Seldon graph calls a router on ({', '.join(CALL_PATHS)}): there it never matches; it "
                         "matches a caller that passes the client's path")


def _canary_report(canary: Optional[Canary]) -> dict:
    if canary is None:
        return {}
    if not canary.enabled:
        return {"spec.canary": "enabled is false (or not set): trafficSplit and analysis are not used; the routes "
                               "split by their own weights"}
    if canary.success_rate is None and canary.interval is None:
        return {}
    what = " and ".join(filter(None, [
        canary.success_rate is not None and f"threshold {canary.success_rate:g} (the canary's success rate, %)",
        canary.interval is not None and f"interval {canary.interval_text}"]))
    split = f" at trafficSplit {canary.split[0]}/{canary.split[1]}" if canary.split else ""
    return {"spec.canary.analysis": f"{what}: the `canary` router runs the rollout (Canary with this ModelRoute as "
                                    f"its config); the rules router keeps the split{split}"}
