"""In-process speed of the rules router's route decision with 20 rules, beside ab-test's
(random and sticky), time-of-day's and canary's on the same machine in one run. Prints
medians and each one's ratio to ab-test.

    python bench/rules_speed.py [--batches 400]

The 20 rules are a realistic mix (header exact/prefix/regex, path globs, query, tags, a
JSON field, one any_of); the request matches rule 19 of 20, so nearly every rule is
evaluated, and a weighted 90/10 choice is made there. time-of-day has three windows and the
clock in a weighted one; canary is Progressing at 25% with a sticky user header. A figure is the median over batches
of the mean time per `decide` call within a batch of 1,000, the Request built once (the
server builds it whatever the router).
"""

from __future__ import annotations

import argparse
import statistics
import time

from seldon_routers import ABTest, Canary, Request, RuleRouter, TimeOfDay
from seldon_routers.request import Headers

BATCH = 1000
CHILDREN = [f"pool-{i}" for i in range(5)]


def twenty_rules() -> dict:
    rules = []
    for i in range(17):
        kind = i % 6
        match = [
            {"headers": {"x-model": f"model-{i}"}},
            {"headers": {"x-model": {"prefix": f"family-{i}-"}}, "path": {"glob": "/seldon.protos.*/*"}},
            {"headers": {"x-model": {"regex": f"(llama|mistral)-{i}-[0-9]+b"}}},
            {"path": {"glob": f"/v{i}/**"}},
            {"json": {"model": {"exact": f"gpt-{i}"}}},
            {"tags": {"tier": f"tier-{i}"}, "query": {"beta": "1"}},
        ][kind]
        rules.append({"name": f"r{i}", "match": match, "to": CHILDREN[i % 5]})
    rules.append({"name": "any", "match": {"path": {"prefix": "/api/"}},
                  "any_of": [{"tags": {"tier": "gold"}}, {"headers": {"x-user-id": {"present": True}}}],
                  "to": CHILDREN[1]})
    rules.append({"name": "chat", "match": {"headers": {"x-model": {"regex": "gpt-4o(-mini)?"}},
                                            "json": {"model": {"prefix": "gpt-4o"}}, "path": {"glob": "/route"}},
                  "to": [{"child": CHILDREN[3], "weight": 90}, {"child": CHILDREN[4], "weight": 10}]})
    rules.append({"name": "late", "to": CHILDREN[0]})  # never reached by the timed request
    return {"children": CHILDREN, "rules": rules}


def median_us(decide, request, batches: int) -> float:
    per_call = []
    for _ in range(batches):
        start = time.perf_counter()
        for _ in range(BATCH):
            decide(request)
        per_call.append((time.perf_counter() - start) / BATCH * 1e6)
    return statistics.median(per_call)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=400)
    args = parser.parse_args()
    config = twenty_rules()
    rules = RuleRouter(config=config, seed=0)
    ab = ABTest(n_branches=5, seed=0)
    request = Request({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]},
                      kind="jsonData", path="/route",
                      headers=Headers([("content-type", "application/json"), ("x-model", "gpt-4o-mini")]),
                      meta={"puid": "", "tags": {"tier": "silver"}, "routing": {}, "requestPath": {}})
    matched = rules.decide(request).tags["rule"]
    assert [r.label for r in rules.rules].index(matched) == len(rules.rules) - 2, matched
    tod = TimeOfDay(config={"children": CHILDREN, "default": CHILDREN[0], "windows": [
        {"name": "night", "start": "22:00", "end": "06:00", "to": CHILDREN[1]},
        {"name": "weekend", "days": "sat-sun", "start": "00:00", "end": "24:00", "to": CHILDREN[2]},
        {"name": "always", "start": "00:00", "end": "00:00",
         "to": [{"child": CHILDREN[3], "weight": 9}, {"child": CHILDREN[4], "weight": 1}]}]},
        timezone="Europe/London", seed=0, clock=lambda: 1_767_000_000.0)  # a Monday at 09:20 UTC
    canary = Canary(branch_names=CHILDREN[:2], step_weights="25:50", min_reward=0.9, seed=0,
                    sticky_key="header:x-model", interval=3600)
    sticky_ab = ABTest(n_branches=5, seed=0, sticky_key="header:x-model")
    routers = {"ab-test": ab.decide, "ab-test sticky": sticky_ab.decide, "rules": rules.decide,
               "time-of-day": tod.decide, "canary sticky": canary.decide}
    for decide in routers.values():  # warm every one, then time them in turn
        median_us(decide, request, 20)
    times = {name: median_us(decide, request, args.batches) for name, decide in routers.items()}
    print(f"{len(rules.rules)} rules, the request matches rule {matched!r} ({len(rules.rules) - 1} of {len(rules.rules)})")
    print(f"{'router':<15} {'route us (median)':>18} {'/ ab-test':>10}")
    for name, us in times.items():
        print(f"{name:<15} {us:>18.2f} {us / times['ab-test']:>9.1f}x")

if __name__ == "__main__":
    main()
