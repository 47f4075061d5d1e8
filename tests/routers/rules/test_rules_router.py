"""RuleRouter's decisions in-process: matching semantics on real Request views, weighted
and sticky choices, fallback and NoRoute, the ModelRoute mapping, tags and state."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml
from scipy import stats

from seldon_routers import NoRoute, Request, RuleRouter
from seldon_routers.request import Headers

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def req(headers=(), path="", query=None, tags=None, json_data=None):
    meta = {"puid": "", "tags": tags or {}, "routing": {}, "requestPath": {}}
    r = Request(meta=meta, headers=Headers(list(headers)), path=path, query=query or {})
    if json_data is not None:
        r.kind, r.features = "jsonData", json_data
    return r


def only(match=None, any_of=None):
    """A router with one rule (to child `hit`) and a fallback `miss`."""
    rule = {"name": "r", "to": "hit"}
    if match is not None:
        rule["match"] = match
    if any_of is not None:
        rule["any_of"] = any_of
    return RuleRouter(config={"children": ["hit", "miss"], "fallback": "miss", "rules": [rule]})


def hit(router, request) -> bool:
    return router.decide(request).child == 0


@pytest.mark.parametrize("match, any_of, request_, expected", [
    # an empty condition set matches everything
    (None, None, req(), True),
    ({}, None, req(path="/x"), True),
    # header names are case-insensitive, both in the config and the request
    ({"headers": {"X-Model": "llama"}}, None, req([("x-model", "llama")]), True),
    ({"headers": {"x-model": "llama"}}, None, req([("X-MODEL", "llama")]), True),
    # ...values are not, unless ignore_case
    ({"headers": {"x-model": "llama"}}, None, req([("x-model", "LLAMA")]), False),
    ({"headers": {"x-model": {"exact": "llama", "ignore_case": True}}}, None, req([("x-model", "LLAMA")]), True),
    # repeated headers are joined by ","
    ({"headers": {"x-v": "a,b"}}, None, req([("x-v", "a"), ("X-V", "b")]), True),
    # a missing header fails a value matcher, inverted or not
    ({"headers": {"x-model": {"exact": "llama", "invert": True}}}, None, req(), False),
    ({"headers": {"x-model": {"exact": "llama", "invert": True}}}, None, req([("x-model", "gpt")]), True),
    ({"headers": {"x-model": {"present": False}}}, None, req(), True),
    ({"headers": {"x-model": {"present": True}}}, None, req([("x-model", "")]), True),
    # query: repeated values joined by ","
    ({"query": {"v": "1"}}, None, req(query={"v": ["1"]}), True),
    ({"query": {"v": "1,2"}}, None, req(query={"v": ["1", "2"]}), True),
    ({"query": {"v": {"present": True}}}, None, req(query={"w": ["1"]}), False),
    # path: exact, prefix, full-match regex, glob
    ({"path": "/route"}, None, req(path="/route"), True),
    ({"path": {"prefix": "/api/"}}, None, req(path="/api/v1.0/route"), True),
    ({"path": {"regex": "/api"}}, None, req(path="/api/v1.0/route"), False),
    ({"path": {"regex": "/api/.*"}}, None, req(path="/api/v1.0/route"), True),
    ({"path": {"glob": "/seldon.protos.*/*"}}, None, req(path="/seldon.protos.Router/Route"), True),
    ({"path": {"glob": "/seldon.protos.*/*"}}, None, req(path="/route"), False),
    ({"path": {"present": False}}, None, req(), True),  # no path (Seldon's wrapper)
    # tags compare by their string form
    ({"tags": {"tier": "gold"}}, None, req(tags={"tier": "gold"}), True),
    ({"tags": {"beta": "true", "n": "3"}}, None, req(tags={"beta": True, "n": 3}), True),
    # JSON payload fields
    ({"json": {"model": {"prefix": "gpt-4"}}}, None, req(json_data={"model": "gpt-4o"}), True),
    ({"json": {"messages.0.role": "system"}}, None, req(json_data={"messages": [{"role": "system"}]}), True),
    ({"json": {"model": {"present": True}}}, None, req(), False),
    # conditions are AND-ed
    ({"headers": {"a": "1"}, "tags": {"t": "x"}}, None, req([("a", "1")], tags={"t": "x"}), True),
    ({"headers": {"a": "1"}, "tags": {"t": "x"}}, None, req([("a", "1")], tags={"t": "y"}), False),
    # any_of blocks are OR-ed, and AND-ed with the rule's own conditions
    (None, [{"tags": {"t": "x"}}, {"headers": {"a": "1"}}], req([("a", "1")]), True),
    (None, [{"tags": {"t": "x"}}, {"headers": {"a": "1"}}], req(tags={"t": "x"}), True),
    (None, [{"tags": {"t": "x"}}, {"headers": {"a": "1"}}], req(), False),
    ({"path": "/route"}, [{"tags": {"t": "x"}}], req(path="/other", tags={"t": "x"}), False),
    ({"path": "/route"}, [{"tags": {"t": "x"}}], req(path="/route", tags={"t": "x"}), True),
    (None, [{}], req(), True),  # an empty any_of block matches everything
])
def test_matching(match, any_of, request_, expected):
    assert hit(only(match, any_of), request_) is expected


def test_first_match_wins_and_tags_name_rule_and_child():
    router = RuleRouter(config={"children": ["a", "b", "c"], "rules": [
        {"name": "first", "match": {"tags": {"t": "x"}}, "to": "b"},
        {"match": {"tags": {"t": {"present": True}}}, "to": "c"}]})
    assert router.decide(req(tags={"t": "x"})).tags == {"rule": "first", "route": 1, "branch": "b", "propensity": 1.0}
    assert router.decide(req(tags={"t": "y"})).tags == {"rule": 1, "route": 2, "branch": "c", "propensity": 1.0}


def test_no_match_without_fallback_is_no_route():
    router = RuleRouter(config={"children": ["a"], "rules": [{"match": {"tags": {"t": "x"}}, "to": "a"}]})
    with pytest.raises(NoRoute, match="no rule matches the request and no fallback") as info:
        router.decide(req(path="/route"))
    assert (info.value.http_status, info.value.grpc_code, info.value.reason) == (404, "NOT_FOUND", "NO_ROUTE")


def test_fallback_is_tagged():
    router = RuleRouter(config={"children": ["a", "b"], "fallback": "b", "rules": []})
    assert router.decide(req()).tags == {"route": 1, "branch": "b", "propensity": 1.0, "fallback": True}


def test_numeric_index_is_accepted():
    router = RuleRouter(config={"children": ["a", "b"], "rules": [{"to": 1}, {"to": "0"}]})
    assert router.decide(req()).child == 1


SPLIT = {"children": ["a", "b", "c"], "rules": [
    {"name": "split", "to": [{"child": "a", "weight": 5}, {"child": "b", "weight": 3},
                             {"child": "c", "weight": 2}], "sticky_key": "header:x-user-id"}]}


def counts(router, requests_, n_children=3):
    return np.bincount([router.decide(r).child for r in requests_], minlength=n_children)


def test_weighted_choice_chi_square_at_a_fixed_seed():
    router = RuleRouter(config=SPLIT, seed=7)
    got = counts(router, [req()] * 20000)
    assert stats.chisquare(got, np.array([0.5, 0.3, 0.2]) * got.sum()).pvalue > 0.001
    d = router.decide(req())
    assert d.tags["propensity"] == [0.5, 0.3, 0.2][d.child] and "sticky" not in d.tags


def test_zero_weight_never_chosen_and_unset_weights_are_equal():
    router = RuleRouter(config={"children": ["a", "b", "c"], "rules": [
        {"to": [{"child": "a", "weight": 0}, {"child": "b", "weight": 1}, {"child": "c", "weight": 1}]}]}, seed=0)
    assert counts(router, [req()] * 3000)[0] == 0
    equal = RuleRouter(config={"children": ["a", "b"], "rules": [{"to": ["a", "b"]}]}, seed=0)
    assert equal.state()["rules"][0]["to"] == {"a": 0.5, "b": 0.5}


def test_seed_zero_is_a_seed():
    a, b = RuleRouter(config=SPLIT, seed=0), RuleRouter(config=SPLIT, seed=0)
    assert [a.decide(req()).child for _ in range(50)] == [b.decide(req()).child for _ in range(50)]


USERS = [f"user-{i}" for i in range(20000)]


def test_sticky_key_spreads_many_users_by_the_weights():
    got = counts(RuleRouter(config=SPLIT, seed=1), [req([("x-user-id", u)]) for u in USERS])
    assert stats.chisquare(got, np.array([0.5, 0.3, 0.2]) * got.sum()).pvalue > 0.001


def test_sticky_key_is_stable_across_instances_and_processes():
    users = USERS[:200]
    here = [RuleRouter(config=SPLIT, seed=s).decide(req([("X-User-Id", u)])) for s, u in enumerate(users)]
    assert all(d.tags["sticky"] is True for d in here)
    # Another interpreter (another hash seed, another generator seed) decides the same.
    code = ("import json, sys\nfrom seldon_routers import RuleRouter, Request\nfrom seldon_routers.request import Headers\n"
            "cfg, users = json.load(sys.stdin)\nr = RuleRouter(config=cfg, seed=99)\n"
            "print(json.dumps([r.decide(Request(headers=Headers([('x-user-id', u)]))).child for u in users]))\n")
    out = subprocess.run([sys.executable, "-c", code], input=json.dumps([SPLIT, users]), capture_output=True,
                         text=True, check=True, env={**os.environ, "PYTHONHASHSEED": "12345"}).stdout
    assert json.loads(out) == [d.child for d in here]


def test_sticky_tag_and_the_rule_name_salts_the_hash():
    def routes(name):
        cfg = {"children": ["a", "b"], "sticky_key": "tag:user",
               "rules": [{"name": name, "to": [{"child": "a", "weight": 1}, {"child": "b", "weight": 1}]}]}
        return [RuleRouter(config=cfg).decide(req(tags={"user": u})).child for u in USERS[:500]]
    assert routes("one") == routes("one") and routes("one") != routes("two")


def test_route_under_seldons_wrapper_uses_meta_tags_and_json_payload():
    router = RuleRouter(config={"children": ["a", "b", "c"], "fallback": "c", "rules": [
        {"match": {"tags": {"tier": "gold"}}, "to": "a"}, {"match": {"json": {"model": "gpt"}}, "to": "b"}]})
    assert router.route(np.zeros((1, 2)), [], meta={"tags": {"tier": "gold"}}) == 0
    assert router.route({"model": "gpt"}, [], meta={"tags": {}}) == 1
    assert type(router.route(np.zeros((1, 2)), [])) is int and router.route(np.zeros((1, 2)), []) == 2


# --- ModelRoute --------------------------------------------------------------------------

def load_example():
    with open(os.path.join(ROOT, "examples", "rules-modelroute", "modelroute.yaml")) as f:
        return yaml.safe_load(f)


def test_model_route_identical_matches_form_one_weighted_group():
    router = RuleRouter(config=load_example(), branch_names="stable:canary:fallback", seed=3)
    assert [r.label for r in router.rules] == ["chat-stable"]
    got = counts(router, [req(path="/route")] * 20000)
    assert got[2] == 0
    assert stats.chisquare(got[:2], np.array([0.9, 0.1]) * got.sum()).pvalue > 0.001
    tags = {router.decide(req(path="/route")).child: router.decide(req(path="/route")).tags for _ in range(200)}
    assert tags[0] == {"rule": "chat-stable", "route": 0, "branch": "stable", "propensity": 0.9, "timeout": "30s"}
    assert tags[1] == {"rule": "chat-stable", "route": 1, "branch": "canary", "propensity": 0.1, "timeout": "30s",
                       "retries": 2}
    assert router.decide(req(path="/seldon.protos.Router/Route")).tags == {
        "route": 2, "branch": "fallback", "propensity": 1.0, "fallback": True}


def test_model_route_state_reports_what_it_does_not_enforce():
    state = RuleRouter(config=load_example(), branch_names="stable:canary:fallback").state()
    assert state["format"] == "ModelRoute" and state["fallback"] == "fallback"
    assert state["rules"] == [{"rule": "chat-stable", "to": {"stable": 0.9, "canary": 0.1},
                               "not_enforced": {"stable": {"timeout": "30s"},
                                                "canary": {"timeout": "30s", "retries": 2}}}]
    assert "graph engine" in state["note"]


def test_model_route_headers_and_query_params():
    doc = {"kind": "ModelRoute", "spec": {"routes": [
        {"match": {"headers": {"x-model": {"prefix": "llama"}}, "queryParams": {"beta": {"exact": "1"}}},
         "destination": {"modelServerRef": {"name": "b"}}}], "fallback": "a"}}
    router = RuleRouter(config=doc, branch_names="a:b")
    assert router.decide(req([("x-model", "llama-3")], query={"beta": ["1"]})).child == 1
    assert router.decide(req([("x-model", "llama-3")])).child == 0


def test_kthena_model_route_rules():
    doc = {"apiVersion": "networking.volcano.sh/v1alpha1", "kind": "ModelRoute", "spec": {
        "modelName": "deepseek", "rules": [
            {"name": "premium", "modelMatch": {"headers": {"user-type": {"exact": "premium"}}},
             "targetModels": [{"modelServerName": "big"}]},
            {"name": "default", "targetModels": [{"modelServerName": "small", "weight": 100}]}]}}
    router = RuleRouter(config=doc, branch_names="big:small")
    body = {"model": "deepseek"}
    assert router.decide(req([("user-type", "premium")], json_data=body)).tags["rule"] == "premium"
    assert router.decide(req(json_data=body)).child == 1
    with pytest.raises(NoRoute):
        router.decide(req(json_data={"model": "other"}))


@pytest.mark.parametrize("doc, match", [
    ({"kind": "ModelRoute", "spec": {"routes": [
        {"match": {"path": {"exact": "/x"}}, "destination": {"modelServerRef": {"name": "a"}}, "weight": 90},
        {"match": {"path": {"exact": "/x"}}, "destination": {"modelServerRef": {"name": "b"}}, "weight": 20}]}},
     r"'route-0'.*add up to 110, not 100"),
    ({"kind": "ModelRoute", "spec": {"routes": [
        {"match": {"path": {"exact": "/x"}}, "destination": {"modelServerRef": {"name": "a"}}, "weight": 90},
        {"match": {"path": {"exact": "/x"}}, "destination": {"modelServerRef": {"name": "b"}}}]}},
     r"rules\[0\] \('route-0'\).to: set a weight on every target or on none"),
    ({"kind": "ModelRoute", "spec": {"routes": [{"destination": {"modelServerRef": {"name": "zz"}}}]}},
     r"to\[0\].child: unknown child 'zz'"),
    ({"kind": "ModelRoute", "spec": {"routes": [{"name": "n", "match": {"uri": {}}, "destination": "a"}]}},
     r"spec.routes\[0\] \('n'\).match: unknown key 'uri'"),
    ({"kind": "ModelRoute", "spec": {"routes": [{"destination": {"server": "a"}}]}},
     r"spec.routes\[0\].destination: expected \{modelServerRef"),
    ({"kind": "ModelRoute", "spec": {"routes": [{"destination": "a", "match": {"path": {"regex": "("}}}]}},
     r"match.path.regex: invalid regex"),
    ({"kind": "ModelRoute", "spec": {}}, r"spec: a ModelRoute needs exactly one of spec.routes and spec.rules"),
])
def test_bad_model_route(doc, match):
    with pytest.raises(Exception, match=match):
        RuleRouter(config=doc, branch_names="a:b")


def test_model_route_needs_branch_names():
    with pytest.raises(Exception, match="branch_names: a ModelRoute names model servers"):
        RuleRouter(config=load_example())
