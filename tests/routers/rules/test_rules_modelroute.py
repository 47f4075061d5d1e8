"""MatrixInfer's five ModelRoute examples, verbatim (modelroute_examples/, from its
reference), each read by the rules router and routed as the document means; then every
field of its Resource Definition: what is applied, what is refused at start-up (naming the
field), and what is accepted and reported as not enforced (/state and a log line)."""

import copy
import glob
import logging
import os

import numpy as np
import pytest
import yaml
from scipy import stats

from seldon_routers import ConfigError, NoRoute, Request, RuleRouter
from seldon_routers.request import Headers

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = sorted(glob.glob(os.path.join(HERE, "modelroute_examples", "*.yaml")))


def example(stem: str) -> dict:
    with open(os.path.join(HERE, "modelroute_examples", f"{stem}.yaml")) as f:
        return yaml.safe_load(f)


def servers(doc: dict) -> list:
    """The model servers a document names, in document order: the graph's children here."""
    refs = [r["destination"]["modelServerRef"]["name"] for r in doc["spec"]["routes"]]
    if doc["spec"].get("fallback"):
        refs.append(doc["spec"]["fallback"]["modelServerRef"]["name"])
    return list(dict.fromkeys(refs))


def router(doc: dict, seed=0) -> RuleRouter:
    return RuleRouter(config=doc, branch_names=":".join(servers(doc)), seed=seed)


def req(headers=(), path="/route", query=None) -> Request:
    return Request(headers=Headers(list(headers)), path=path, query={k: [v] for k, v in (query or {}).items()})


def test_there_are_the_five_examples():
    assert [os.path.basename(p) for p in EXAMPLES] == [
        "01-basic-ab-testing.yaml", "02-header-based-routing.yaml", "03-canary-deployment.yaml",
        "04-query-parameter-routing.yaml", "05-multi-condition-routing.yaml"]


@pytest.mark.parametrize("path", EXAMPLES, ids=os.path.basename)
def test_each_example_builds_a_rule_router_over_its_model_servers(path):
    with open(path) as f:
        doc = yaml.safe_load(f)
    r = RuleRouter(config_file=path, branch_names=":".join(servers(doc)))
    assert r.branch_names == servers(doc)
    state = r.state()
    assert state["format"] == "ModelRoute"
    assert state["model_route"] == {"name": doc["metadata"]["name"], "namespace": doc["metadata"]["namespace"]}


@pytest.mark.parametrize("stem, request_, server, rule", [
    # Basic A/B testing: the version header picks the server, as the seed's curl lines show
    ("01-basic-ab-testing", req([("version", "v1")]), "model-server-v1", "route-0"),
    ("01-basic-ab-testing", req([("version", "v2")]), "model-server-v2", "route-1"),
    ("01-basic-ab-testing", req([("Version", "v2")]), "model-server-v2", "route-1"),  # names: any case
    ("01-basic-ab-testing", req([("version", "V2")]), "model-server-v1", None),  # values: exact
    ("01-basic-ab-testing", req([("version", "v3")]), "model-server-v1", None),
    ("01-basic-ab-testing", req(), "model-server-v1", None),
    # Header-based routing
    ("02-header-based-routing", req([("user-type", "premium")]), "premium-model-server", "route-0"),
    ("02-header-based-routing", req([("user-type", "standard")]), "standard-model-server", "route-1"),
    ("02-header-based-routing", req([("user-type", "guest")]), "default-model-server", None),
    ("02-header-based-routing", req(), "default-model-server", None),
    # Query parameter routing: the first route that matches wins
    ("04-query-parameter-routing", req(query={"model": "fast"}), "fast-model-server", "route-0"),
    ("04-query-parameter-routing", req(query={"model": "accurate"}), "accurate-model-server", "route-1"),
    ("04-query-parameter-routing", req(query={"beta": "true"}), "beta-model-server", "route-2"),
    ("04-query-parameter-routing", req(query={"model": "fast", "beta": "true"}), "fast-model-server", "route-0"),
    ("04-query-parameter-routing", req(query={"beta": "1"}), "default-model-server", None),
    ("04-query-parameter-routing", req(query={"model": "slow"}), "default-model-server", None),
    ("04-query-parameter-routing", req([("model", "fast")]), "default-model-server", None),  # a header, not a query
    # Multi-condition routing: every condition of a route must hold
    ("05-multi-condition-routing", req([("region", "us-west"), ("tier", "enterprise")], query={"priority": "high"}),
     "us-west-enterprise-server", "route-0"),
    ("05-multi-condition-routing", req([("region", "us-west"), ("tier", "enterprise")]),
     "global-fallback-server", None),
    ("05-multi-condition-routing", req([("region", "us-west")], query={"priority": "high"}),
     "global-fallback-server", None),
    ("05-multi-condition-routing", req([("region", "us-east")], path="/v1/models/critical/infer"),
     "us-east-critical-server", "route-1"),
    ("05-multi-condition-routing", req([("region", "us-east")], path="/v1/models/critical/versions/2/infer"),
     "us-east-critical-server", "route-1"),
    ("05-multi-condition-routing", req([("region", "us-east")], path="/v1/models/critical"),
     "global-fallback-server", None),  # the pattern is everything below /v1/models/critical/
    ("05-multi-condition-routing", req([("region", "us-east")]), "global-fallback-server", None),  # path /route
    ("05-multi-condition-routing", req([("region", "us-west")], path="/v1/models/critical/infer"),
     "global-fallback-server", None),
    ("05-multi-condition-routing", req([("experiment", "new-algorithm")]), "experimental-server", "route-2"),
    ("05-multi-condition-routing", req([("region", "us-west"), ("tier", "enterprise"), ("experiment", "new-algorithm")],
                                       query={"priority": "high"}), "us-west-enterprise-server", "route-0"),
    ("05-multi-condition-routing", req(), "global-fallback-server", None),
])
def test_examples_route_as_the_document_means(stem, request_, server, rule):
    tags = router(example(stem)).decide(request_).tags
    assert tags["branch"] == server and tags.get("rule") == rule
    assert tags.get("fallback", False) is (rule is None)


@pytest.mark.parametrize("stem, request_, policy", [
    ("02-header-based-routing", req([("user-type", "premium")]), {"timeout": "60s", "retries": 3}),
    ("02-header-based-routing", req([("user-type", "standard")]), {"timeout": "30s", "retries": 2}),
    ("04-query-parameter-routing", req(query={"model": "fast"}), {"timeout": "10s"}),
    ("04-query-parameter-routing", req(query={"beta": "true"}), {}),
    ("05-multi-condition-routing", req([("experiment", "new-algorithm")]), {}),
])
def test_timeouts_and_retries_are_in_the_route_tags(stem, request_, policy):
    tags = router(example(stem)).decide(request_).tags
    assert {k: tags[k] for k in ("timeout", "retries") if k in tags} == policy


CANARY_PATHS = ["/v1/models/production/infer", "/v1/models/production/", "/v1/models/production/versions/2/infer"]


@pytest.mark.parametrize("path", CANARY_PATHS)
def test_canary_example_splits_its_path_90_10(path):
    r = router(example("03-canary-deployment"), seed=11)
    got = np.bincount([r.decide(req(path=path)).child for _ in range(20000)], minlength=2)
    assert stats.chisquare(got, np.array([0.9, 0.1]) * got.sum()).pvalue > 0.001
    assert {r.decide(req(path=path)).tags["propensity"] for _ in range(200)} == {0.9, 0.1}


@pytest.mark.parametrize("path", ["/v1/models/production", "/v1/models/productionX/infer", "/v2/models/production/x",
                                  "/route", "/seldon.protos.Router/Route", ""])
def test_canary_example_has_no_fallback_for_other_paths(path):
    with pytest.raises(NoRoute):
        router(example("03-canary-deployment")).decide(req(path=path))


@pytest.mark.parametrize("stem, not_enforced, notes", [
    ("01-basic-ab-testing", {}, ["spec.routes[0].weight: 80 on the only route", "spec.routes[1].weight: 20 on"]),
    ("02-header-based-routing", {}, []),
    ("03-canary-deployment", {"spec.canary.analysis": "threshold 95 (the canary's success rate, %) and interval 5m: "
                                                      "the `canary` router runs the rollout"},
     ['spec.routes[0].match.path: "/v1/models/production/*" matches none of the paths a Seldon graph calls']),
    ("04-query-parameter-routing", {}, []),  # weight 100 on a route alone is what it does anyway
    ("05-multi-condition-routing", {}, ["spec.routes[1].match.path: \"/v1/models/critical/*\" matches none",
                                        "spec.routes[2].weight: 5 on the only route with this match"]),
])
def test_examples_report_what_they_do_not_enforce(stem, not_enforced, notes, caplog):
    with caplog.at_level(logging.INFO, logger="seldon_routers"):
        state = router(example(stem)).state()
    got = state.get("not_enforced", {})
    assert set(got) == set(not_enforced) and all(got[k].startswith(v) for k, v in not_enforced.items())
    assert len(state.get("notes", [])) == len(notes)
    assert all(note.startswith(start) for note, start in zip(state.get("notes", []), notes))
    for where in [*not_enforced, *(n.split(":")[0] for n in notes)]:  # each one is logged too
        assert f"ModelRoute {example(stem)['metadata']['name']}: {where}" in caplog.text


def test_canary_example_state_shows_the_split_and_timeouts_are_logged(caplog):
    assert router(example("03-canary-deployment")).state()["rules"] == [
        {"rule": "route-0", "to": {"stable-model-server": 0.9, "canary-model-server": 0.1}}]
    with caplog.at_level(logging.INFO, logger="seldon_routers"):
        state = router(example("02-header-based-routing")).state()
    assert state["rules"][0]["not_enforced"] == {"premium-model-server": {"timeout": "60s", "retries": 3}}
    assert "spec.routes[0]: timeout 60s, retries 3 not enforced" in caplog.text


# --- spec.canary under the rules router --------------------------------------------------

def canary_doc(**canary) -> dict:
    doc = example("03-canary-deployment")
    doc["spec"]["canary"] = canary
    return doc


def split_of(doc) -> dict:
    return router(doc).state()["rules"][0]["to"]


def without_weights(doc) -> dict:
    for route in doc["spec"]["routes"]:
        route.pop("weight")
    return doc


@pytest.mark.parametrize("doc, split, reported", [
    (canary_doc(enabled=True, trafficSplit={"stable": 90, "canary": 10}), {"stable-model-server": 0.9,
                                                                           "canary-model-server": 0.1}, None),
    # trafficSplit gives the pair its weights when the routes carry none
    (without_weights(canary_doc(enabled=True, trafficSplit={"stable": 75, "canary": 25})),
     {"stable-model-server": 0.75, "canary-model-server": 0.25}, None),
    # no trafficSplit: the routes' weights
    (canary_doc(enabled=True), {"stable-model-server": 0.9, "canary-model-server": 0.1}, None),
    # disabled (or unset, as Go reads a missing bool): the routes' own weights, the rest reported
    (canary_doc(enabled=False, trafficSplit={"stable": 50, "canary": 50}),
     {"stable-model-server": 0.9, "canary-model-server": 0.1}, "spec.canary"),
    (canary_doc(trafficSplit={"stable": 50, "canary": 50}), {"stable-model-server": 0.9, "canary-model-server": 0.1},
     "spec.canary"),
    (without_weights(canary_doc(enabled=False)), {"stable-model-server": 0.5, "canary-model-server": 0.5},
     "spec.canary"),
    (canary_doc(enabled=True, analysis={"interval": "30s"}), {"stable-model-server": 0.9, "canary-model-server": 0.1},
     "spec.canary.analysis"),
])
def test_canary_split_under_the_rules_router(doc, split, reported):
    assert split_of(doc) == split
    assert list(router(doc).state().get("not_enforced", {})) == ([reported] if reported else [])


# --- refusals -----------------------------------------------------------------------------

def edited(stem: str, edit) -> dict:
    doc = copy.deepcopy(example(stem))
    edit(doc)
    return doc


def route(doc, i=0) -> dict:
    return doc["spec"]["routes"][i]


@pytest.mark.parametrize("doc, match", [
    (edited("01-basic-ab-testing", lambda d: d.update(extra=1)), r"ModelRoute: unknown key 'extra'"),
    (edited("01-basic-ab-testing", lambda d: d.update(metadata="x")), r"metadata: expected a map"),
    (edited("01-basic-ab-testing", lambda d: d["metadata"].update(namespace=3)), r"metadata.namespace: expected"),
    (edited("01-basic-ab-testing", lambda d: d.update(status={"phase": 1})), r"status.phase: expected a phase"),
    (edited("01-basic-ab-testing", lambda d: d.update(status={"activeRoutes": "2"})), r"status.activeRoutes"),
    (edited("01-basic-ab-testing", lambda d: d.update(status={"conditions": {}})), r"status.conditions"),
    (edited("01-basic-ab-testing", lambda d: route(d).update(weight=150)),
     r"spec.routes\[0\].weight: expected a percentage, an integer within 0..100, got 150"),
    (edited("01-basic-ab-testing", lambda d: route(d).update(weight="80")), r"spec.routes\[0\].weight"),
    (edited("01-basic-ab-testing", lambda d: route(d).update(weight=0)),
     r"spec.routes\[0\].weight: 0 on the only route with this match"),
    (edited("02-header-based-routing", lambda d: route(d).update(timeout="sixty")),
     r"spec.routes\[0\].timeout: expected a duration like 30s"),
    (edited("02-header-based-routing", lambda d: route(d, 1).update(retries=-1)),
     r"spec.routes\[1\].retries: expected a number of retry attempts"),
    (edited("02-header-based-routing", lambda d: route(d).update(retries={"attempts": 2})),
     r"spec.routes\[0\].retries"),
    (edited("02-header-based-routing", lambda d: route(d)["destination"]["modelServerRef"].update(port=1)),
     r"spec.routes\[0\].destination.modelServerRef: unknown key 'port'"),
    (edited("02-header-based-routing", lambda d: route(d)["destination"].update(weight=1)),
     r"spec.routes\[0\].destination: unknown key 'weight'"),
    (edited("02-header-based-routing", lambda d: d["spec"]["fallback"]["modelServerRef"].update(name="")),
     r"spec.fallback: expected \{modelServerRef"),
    (edited("03-canary-deployment", lambda d: route(d).update(weight=80)),
     r"spec.routes \('route-0'\): the weights of routes with this match add up to 90, not 100"),
    (edited("03-canary-deployment", lambda d: route(d, 1)["destination"]["modelServerRef"].update(
        name="stable-model-server")), r"routes with this match name 'stable-model-server' twice"),
    (edited("03-canary-deployment", lambda d: route(d)["match"].update(path="/v1/**/x")),
     r"spec.routes\[0\].match.path: '\*\*' must be the whole last segment"),
    (edited("03-canary-deployment", lambda d: route(d)["match"].update(path="")), r"spec.routes\[0\].match.path"),
    (edited("03-canary-deployment", lambda d: d["spec"]["canary"].update(enabled="yes")),
     r"spec.canary.enabled: expected true or false"),
    (edited("03-canary-deployment", lambda d: d["spec"]["canary"].update(stepWeight=5)),
     r"spec.canary: unknown key 'stepWeight'"),
    (edited("03-canary-deployment", lambda d: d["spec"]["canary"]["trafficSplit"].update(canary=20)),
     r"spec.canary.trafficSplit: stable 90 and canary 20 add up to 110, not 100"),
    (edited("03-canary-deployment", lambda d: d["spec"]["canary"].update(trafficSplit={"stable": 80, "canary": 20})),
     r"spec.canary.trafficSplit: 80/20, but the pair's routes weigh 90/10"),
    (edited("03-canary-deployment", lambda d: d["spec"]["canary"]["trafficSplit"].pop("stable")),
     r"spec.canary.trafficSplit.stable: expected a percentage"),
    (edited("03-canary-deployment", lambda d: d["spec"]["canary"]["analysis"].update(threshold=101)),
     r"spec.canary.analysis.threshold: expected a percentage, a number within 0..100"),
    (edited("03-canary-deployment", lambda d: d["spec"]["canary"]["analysis"].update(interval="5 minutes")),
     r"spec.canary.analysis.interval: expected a duration"),
    (edited("03-canary-deployment", lambda d: d["spec"]["canary"]["analysis"].update(interval="0s")),
     r"spec.canary.analysis.interval: must be longer than 0"),
    (edited("03-canary-deployment", lambda d: route(d, 1)["match"].update(path="/v1/models/staging/*")),
     r"spec.canary: a canary splits one pair of routes with identical matches.*found 0 such pairs \(none\)"),
    (edited("05-multi-condition-routing", lambda d: d["spec"].update(canary={"enabled": True})),
     r"spec.canary: a canary splits one pair"),
    # two servers of one name in two namespaces cannot both be a child of that name
    (edited("02-header-based-routing", lambda d: d["spec"]["fallback"].update(
        modelServerRef={"name": "premium-model-server", "namespace": "other"})),
     r"spec.fallback: model server 'premium-model-server' in namespace 'other', and spec.routes\[0\].destination "
     r"names 'premium-model-server' in 'production'"),
])
def test_bad_documents_stop_start_up_naming_the_field(doc, match):
    with pytest.raises(ConfigError, match=match):
        router(doc)


def test_canary_goes_with_spec_routes_only():
    doc = {"kind": "ModelRoute", "spec": {"modelName": "m", "rules": [{"targetModels": [{"modelServerName": "a"}]}],
                                          "canary": {"enabled": True}}}
    with pytest.raises(ConfigError, match="spec.canary: goes with spec.routes"):
        RuleRouter(config=doc, branch_names="a")


# --- accepted, not enforced ----------------------------------------------------------------

def test_status_and_kubernetes_metadata_are_accepted():
    doc = edited("01-basic-ab-testing", lambda d: (
        d.update(status={"phase": "Active", "activeRoutes": 2, "conditions": [{"type": "Ready", "status": "True"}]}),
        d["metadata"].update(labels={"app": "x"}, uid="1234", resourceVersion="7")))
    assert router(doc).decide(req([("version", "v2")])).tags["branch"] == "model-server-v2"


def test_a_server_in_another_namespace_is_reported():
    doc = edited("02-header-based-routing", lambda d: route(d)["destination"]["modelServerRef"].update(
        namespace="gpu-pool"))
    not_enforced = router(doc).state()["not_enforced"]
    assert list(not_enforced) == ["spec.routes[0].destination.modelServerRef.namespace"]
    assert not_enforced["spec.routes[0].destination.modelServerRef.namespace"].startswith("'gpu-pool': not checked")
    same = edited("02-header-based-routing", lambda d: route(d)["destination"]["modelServerRef"].update(
        namespace="production"))  # the ModelRoute's own namespace: nothing to report
    assert "not_enforced" not in router(same).state()


def test_kthena_rate_limit_is_reported():
    doc = {"kind": "ModelRoute", "spec": {"modelName": "m", "rules": [{"targetModels": [{"modelServerName": "a"}]}],
                                          "rateLimit": {"inputTokensPerUnit": 10, "unit": "second"}}}
    assert list(RuleRouter(config=doc, branch_names="a").state()["not_enforced"]) == ["spec.rateLimit"]
