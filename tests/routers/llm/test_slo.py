"""The `slo` strategy: the cheapest pod predicted to meet the TTFT/TPOT objective at its
load, best effort or NoCapacity when none can, and its profile checked at construction."""

import json

import pytest

from seldon_routers.errors import ConfigError, NoCapacity
from seldon_routers.registry import resolve
from seldon_routers.request import Feedback, Request
from seldon_routers.routers.llm.slo import Profile

# TTFT grows by 0.1 s per request in flight on the cheap pod, 0.02 s on the dear one.
CHEAP = {"load": [0, 10], "ttft": [0.1, 1.1], "tpot": [0.01, 0.02]}
DEAR = {"load": [0, 10], "ttft": [0.05, 0.25], "tpot": [0.005, 0.006]}


def pods(*extra):
    base = [{"name": "l4", "gpu": "L4", "cost_per_hour": 0.7, "profile": CHEAP},
            {"name": "h100", "gpu": "H100", "cost_per_hour": 4.0, "profile": DEAR}]
    return json.dumps(base + list(extra))


def slo(**params):
    params.setdefault("pods", pods())
    params.setdefault("slo_ttft", 0.35)
    return resolve("slo")(**params)


def request(key):
    return Request({"model": "m", "messages": [{"role": "user", "content": "hi"}]}, kind="jsonData",
                   meta={"puid": key, "tags": {}, "routing": {}, "requestPath": {}})


def done(router, key):
    router.learn(Feedback(Request(None, meta={"puid": key}), {"puid": key}, 0.0, None))


def test_the_cheapest_pod_until_its_load_would_miss_then_the_dearer_one():
    router = slo()
    picks = [router.decide(request(f"r{i}")) for i in range(5)]
    # The cheap pod meets 0.35 s up to 2 in flight (0.1 + 0.1 x load): three requests, then the dear one.
    assert [d.child for d in picks] == [0, 0, 0, 1, 1]
    assert all(d.tags["slo"] == "met" for d in picks)
    assert picks[2].tags["slo_predicted"] == {"ttft": pytest.approx(0.3)}
    done(router, "r0")
    assert router.decide(request("r5")).child == 0  # room again on the cheap pod


def test_tpot_objective_alone_and_both_together():
    assert slo(slo_ttft=None, slo_tpot=0.008).decide(request("a")).child == 1  # only h100 decodes that fast
    router = slo(slo_tpot=0.015)
    assert [router.decide(request(f"r{i}")).child for i in range(4)] == [0, 0, 0, 1]


def test_best_effort_when_no_pod_can_meet_it_is_the_best_margin_tagged_miss():
    router = slo(slo_ttft=0.01)
    d = router.decide(request("a"))
    assert d.child == 1 and d.tags["slo"] == "miss"
    assert router.state()["slo"]["missed"] == 1


@pytest.mark.parametrize("status", [429, 503, "429"])
def test_refusing_when_no_pod_can_meet_it_counts_nothing(status):
    router = slo(slo_ttft=0.01, slo_miss=status)
    with pytest.raises(NoCapacity) as err:
        router.decide(request("a"))
    assert err.value.http_status == int(status)
    assert "ttft <= 0.01 s" in str(err.value) and "h100" in str(err.value)
    assert router.ledger.counts() == [0, 0]


def test_equal_costs_go_to_the_pod_with_more_room():
    same = [{"name": "a", "cost_per_hour": 1, "profile": CHEAP}, {"name": "b", "cost_per_hour": 1, "profile": CHEAP}]
    router = slo(pods=json.dumps(same))
    assert sorted(router.decide(request(f"r{i}")).child for i in range(2)) == [0, 1]


def test_the_profile_interpolates_and_extrapolates_past_its_last_load():
    p = Profile({"load": [0, 4, 8], "ttft": [0.1, 0.3, 0.7]}, "p", ("ttft",))
    assert p.predict("ttft", 0) == 0.1 and p.predict("ttft", 2) == pytest.approx(0.2)
    assert p.predict("ttft", 6) == pytest.approx(0.5) and p.predict("ttft", 12) == pytest.approx(1.1)
    assert Profile({"load": [0], "ttft": [0.2]}, "p", ("ttft",)).predict("ttft", 50) == 0.2


def test_parameters_as_seldon_strings():
    router = slo(slo_ttft="0.35", slo_miss="503")
    assert router.decide(request("a")).child == 0


@pytest.mark.parametrize("profile, message", [
    (None, "pods[0].profile: the slo strategy needs a profile"),
    ({"ttft": [0.1]}, "pods[0].profile.load: missing"),
    ({"load": [0, 0], "ttft": [0.1, 0.2]}, "pods[0].profile.load: must increase"),
    ({"load": [0, 2], "ttft": [0.1]}, "pods[0].profile.ttft: expected 2 values"),
    ({"load": [0, 2], "tpot": [0.1, 0.2]}, "pods[0].profile.ttft: missing (slo_ttft is set)"),
    ({"load": [0], "ttft": [-1]}, "pods[0].profile.ttft[0]: must be a number >= 0"),
    ({"load": [0], "ttft": [0.1], "p99": 1}, "pods[0].profile.p99: unknown field"),
    ({"load": "0,1", "ttft": [0.1]}, "pods[0].profile.load: expected a non-empty list"),
])
def test_a_bad_profile_is_a_config_error_naming_the_field(profile, message):
    bad = [{"name": "a", "cost_per_hour": 1, "profile": profile}, {"name": "b", "cost_per_hour": 2, "profile": DEAR}]
    with pytest.raises(ConfigError) as err:
        slo(pods=json.dumps(bad))
    assert message in str(err.value)


@pytest.mark.parametrize("params, message", [
    ({"slo_ttft": None}, "slo_ttft: the slo strategy needs an objective"),
    ({"slo_ttft": 0}, "slo_ttft: must be a number > 0"),
    ({"slo_miss": "drop"}, "slo_miss: expected one of best-effort, 429, 503"),
    ({"pods": json.dumps([{"name": "a", "profile": CHEAP}])}, "pods[0].cost_per_hour: the slo strategy"),
])
def test_bad_objectives_and_missing_costs(params, message):
    with pytest.raises(ConfigError) as err:
        slo(**params)
    assert message in str(err.value)


def test_state_shows_the_objective_and_each_pods_profile():
    state = slo().state()["slo"]
    assert state["objective"] == {"ttft": 0.35, "tpot": None}
    assert state["pods"]["h100"]["gpu"] == "H100" and state["pods"]["l4"]["profile"]["ttft"] == [0.1, 1.1]


def test_a_lone_candidate_is_still_judged_against_the_objective():
    router = slo(pods=json.dumps([{"name": "l4", "cost_per_hour": 0.7, "profile": CHEAP}]), slo_miss="503")
    assert [router.decide(request(f"r{i}")).tags["slo"] for i in range(3)] == ["met"] * 3
    with pytest.raises(NoCapacity, match="no pod serving m is predicted to meet"):
        router.decide(request("r3"))  # the only pod, at 3 in flight, would miss 0.35 s
