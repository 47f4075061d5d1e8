"""The canary router in-process, with an injected clock that steps through hours of
analysis in milliseconds: construction and its refusals, the state machine (promotion,
rollback, the insufficient-data grace, terminal phases), the weighted and sticky split,
feedback validation, exactly-once per puid, threads, logging, and state round trips."""

import asyncio
import copy
import json
import logging
import sys
import threading

import numpy as np
import pytest
from scipy import stats

from support import REDIS, require
from seldon_routers import BadRequest, ConfigError, Feedback, Request, params
from seldon_routers.request import Headers
from seldon_routers.routers.canary import Canary

HOUR = 3600.0


class Clock:
    def __init__(self, t: float = 1_700_000_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def canary(clock=None, **kw) -> Canary:
    kw.setdefault("min_reward", 0.9)
    kw.setdefault("seed", 0)
    return Canary(clock=Clock() if clock is None else clock, **kw)


def fb(routing, reward=1.0, error=None, puid="", where="response", reward_given=True) -> Feedback:
    tags = {} if error is None else {"error": error}
    meta = {"puid": puid, "tags": tags if where == "request" else {}, "routing": {}, "requestPath": {}}
    response = {"puid": "", "tags": tags if where == "response" else {}, "routing": {"c": routing}, "requestPath": {}}
    return Feedback(Request(meta=meta), response, reward if reward_given else 0.0, None, routing, reward_given)


def feed(router, child, n, reward=1.0, error=None):
    for _ in range(n):
        router.learn(fb(child, reward, error))


def tick(router, clock, seconds=None) -> dict:
    """Let an interval (or `seconds`) go by; a route (traffic: once the rollout has started)
    runs the check that is due; then the state."""
    clock.t += router.rollout.interval if seconds is None else seconds
    if router.rollout.phase != "Initialized":
        router.decide(Request())
    return router.state()


def weights_along(router, clock, reward=1.0, steps=10) -> list:
    """Feed min_samples candidate rewards per interval; the (phase, weight) after each check."""
    seen = []
    for _ in range(steps):
        feed(router, 1, router.criteria.min_samples, reward)
        state = tick(router, clock)
        seen.append((state["phase"], state["weight"]))
        if state["phase"] in ("Succeeded", "Failed"):
            break
    return seen


# --- construction ---------------------------------------------------------------------

def test_defaults_two_children_named_stable_and_candidate():
    r = canary()
    assert r.branch_names == ["stable", "candidate"] and (r.stable, r.candidate) == (0, 1) and r.n_children == 2
    assert r.state()["phase"] == "Initialized" and r.state()["weight"] == 0


def test_children_by_name_or_index_and_others_never_routed():
    r = canary(branch_names="a:b:c", stable="c", candidate="0", step_weights="50")
    assert (r.stable, r.candidate) == (2, 0)
    seen = {r.decide(Request()).child for _ in range(500)}
    assert seen == {0, 2}
    with pytest.raises(BadRequest, match="^response.meta.routing: 1 is neither"):
        r.learn(fb(1))
    assert canary(n_branches=3).branch_names == ["0", "1", "2"]


def test_builds_from_seldon_string_parameters():
    r = params.build(Canary, params.from_pairs([
        "branch_names=stable:candidate", "min_reward=0.9", "max_error_rate=0.05", "step_weights=5:10:25:50",
        "interval=30", "threshold=3", "min_samples=100", "max_insufficient_checks=0", "margin=0.02",
        "min_probability=0.9", "seed=1", "sticky_key=header:x-user", "stable=stable", "candidate=candidate"]))
    assert r.rollout.steps.step_weights == [5, 10, 25, 50] and r.rollout.interval == 30
    assert r.criteria.min_samples == 100 and r.criteria.margin == 0.02 and r.rollout.threshold == 3
    with pytest.raises(ConfigError, match="clock"):  # not a Seldon parameter
        params.build(Canary, params.from_pairs(["min_reward=0.5", "clock=time.time"]))
    with pytest.raises(ConfigError, match="^clock: must be a callable"):
        canary(clock="time.time")


@pytest.mark.parametrize("kwargs, field", [
    (dict(min_reward=None), "min_reward: a canary must check something"),
    (dict(stable="nope"), r"stable: unknown child 'nope' \(children: stable, candidate\)"),
    (dict(candidate="7"), r"candidate: unknown child '7' \(children: stable, candidate\); expected a name or an "
                          r"index 0..1"),
    (dict(candidate="stable"), "candidate: the same child as stable"),
    (dict(branch_names="only"), "branch_names: a canary needs two children"),
    (dict(n_branches=0), "n_branches"),
    (dict(interval=0), "interval"),
    (dict(interval=float("inf")), "interval"),
    (dict(interval=float("nan")), "interval"),
    (dict(step_weight=0), "step_weight"),
    (dict(step_weight=101), "step_weight"),
    (dict(max_weight=0), "max_weight"),
    (dict(max_weight=120), "max_weight"),
    (dict(step_weights="10:5"), "step_weights: must be strictly increasing"),
    (dict(step_weights="10:10"), "step_weights: must be strictly increasing"),
    (dict(step_weights="0:10"), "step_weights: every weight must be within"),
    (dict(step_weights="10:60"), "step_weights: every weight must be within"),
    (dict(step_weights="[]"), "step_weights: give at least one"),
    (dict(step_weights="5:x"), "step_weights: every item"),
    (dict(threshold=0), "threshold"),
    (dict(threshold=1.5), "threshold"),
    (dict(max_insufficient_checks=-1), "max_insufficient_checks"),
    (dict(min_samples=0), "min_samples"),
    (dict(max_error_rate=2), "max_error_rate"),
    (dict(margin=1), "margin"),
    (dict(min_probability=1), "min_probability"),
    (dict(sticky_key="cookie:x"), "sticky_key"),
    (dict(sticky_key=""), "sticky_key"),  # as ab-test: an empty key is a mistake, not "off"
    (dict(dedupe=-1), "dedupe"),
    (dict(reward_range="1:0"), "reward_range: expected LO:HI"),
    (dict(reward_range="0:inf"), "reward_range: expected LO:HI"),
    (dict(reward_range="0:1:2"), "reward_range: expected LO:HI"),
    (dict(reward_range="0:x"), "reward_range: every item"),
    (dict(reward_range="-1:1", min_reward=None, margin=0.05), "reward_range: with margin"),
    (dict(min_reward=1.5), r"min_reward: 1.5 is outside reward_range \[0, 1\]"),
    (dict(min_reward=-3, reward_range="-2:2"), r"min_reward: -3 is outside reward_range \[-2, 2\]"),
])
def test_invalid_configuration_names_the_parameter(kwargs, field):
    with pytest.raises(ConfigError, match=f"^{field}"):
        canary(**kwargs)


# --- the state machine ----------------------------------------------------------------

def test_the_first_route_starts_the_rollout_and_the_analysis_clock():
    clock = Clock()
    r = canary(clock, interval=60)
    clock.t += 5 * HOUR  # nothing happens before the first request...
    r.learn(fb(0))  # ...a feedback does not start it (it is counted, not analysed)
    state = r.state()
    assert state["phase"] == "Initialized" and state["next_check_at"] is None and state["last_analysis"] is None
    assert state["totals"]["stable"]["n"] == 1 and state["baseline"]["stable"]["n"] == 0
    decision = r.decide(Request())
    assert decision.tags["phase"] == "Progressing" and decision.tags["weight"] == 10
    assert r.state()["next_check_at"] == clock.t + 60 and r.state()["history"][0]["reason"] == "first request: rollout started"


def test_full_promotion_along_step_weights():
    clock = Clock()
    r = canary(clock, step_weights="5:10:25:50", interval=60, min_samples=30)
    assert r.decide(Request()).tags["weight"] == 5
    assert weights_along(r, clock) == [("Progressing", 10), ("Progressing", 25), ("Progressing", 50),
                                       ("Promoting", 100), ("Succeeded", 100)]
    assert {r.decide(Request()).child for _ in range(200)} == {1}  # all to the candidate
    state = r.state()
    assert state["last_analysis"]["result"] == "passed" and state["next_check_at"] is None
    assert [h["phase"] for h in state["history"]] == ["Progressing"] * 4 + ["Promoting", "Succeeded"]


def test_step_weight_is_capped_at_max_weight_then_promotes():
    clock = Clock()
    r = canary(clock, step_weight=20, max_weight=50)
    r.decide(Request())
    assert weights_along(r, clock) == [("Progressing", 40), ("Progressing", 50), ("Promoting", 100),
                                       ("Succeeded", 100)]


def test_rollback_after_threshold_failed_checks():
    clock = Clock()
    r = canary(clock, threshold=3, step_weight=25)
    r.decide(Request())
    assert weights_along(r, clock, reward=1.0, steps=1) == [("Progressing", 50)]
    assert weights_along(r, clock, reward=0.5) == [("Progressing", 50), ("Progressing", 50), ("Failed", 0)]
    state = r.state()
    assert state["failed_checks"] == 3 and state["last_analysis"]["result"] == "failed"
    assert "reward_mean 0.5 < min_reward 0.9" in state["last_analysis"]["reasons"][0]
    decisions = [r.decide(Request()) for _ in range(200)]
    assert {d.child for d in decisions} == {0}
    assert decisions[0].tags == {"route": 0, "branch": "stable", "propensity": 1.0, "phase": "Failed", "weight": 0.0,
                                 "failed_checks": 3}


def test_failed_checks_are_cumulative_as_flaggers():
    clock = Clock()
    r = canary(clock, threshold=2, step_weight=10)
    r.decide(Request())
    assert weights_along(r, clock, 0.0, steps=1) == [("Progressing", 10)]  # a failure holds the weight
    assert weights_along(r, clock, 1.0, steps=2) == [("Progressing", 20), ("Progressing", 30)]
    assert weights_along(r, clock, 0.0, steps=1) == [("Failed", 0)]  # the second failure, not in a row


def test_insufficient_data_grace_then_each_check_fails():
    clock = Clock()
    r = canary(clock, max_insufficient_checks=2, threshold=2, min_samples=20)
    r.decide(Request())
    feed(r, 1, 5)
    assert [tick(r, clock)["failed_checks"] for _ in range(2)] == [0, 0]
    assert r.state()["last_analysis"]["result"] == "insufficient" and r.state()["insufficient_checks"] == 2
    state = tick(r, clock)
    assert state["failed_checks"] == 1 and state["last_analysis"]["result"] == "failed"
    assert "counted as failed" in state["last_analysis"]["reasons"][-1]
    assert state["window"]["candidate"]["n"] == 5  # an unjudged window keeps accumulating
    feed(r, 1, 15)
    state = tick(r, clock)  # 20 now: judged, passed, and the window starts afresh
    assert (state["phase"], state["weight"], state["failed_checks"]) == ("Progressing", 20, 1)
    assert state["insufficient_checks"] == 0 and state["window"]["candidate"]["n"] == 0


def test_zero_insufficient_checks_allowed_fails_at_once():
    clock = Clock()
    r = canary(clock, max_insufficient_checks=0, threshold=1)
    r.decide(Request())
    assert tick(r, clock)["phase"] == "Failed"


def test_hours_without_a_call_run_one_check_and_the_next_is_an_interval_later():
    clock = Clock()
    r = canary(clock, interval=300, max_insufficient_checks=100)
    r.decide(Request())
    state = tick(r, clock, 10 * HOUR)
    assert state["insufficient_checks"] == 1 and state["next_check_at"] == clock.t + 300
    assert tick(r, clock, 299)["insufficient_checks"] == 1
    assert tick(r, clock, 1)["insufficient_checks"] == 2


def test_a_route_or_a_feedback_runs_the_due_check_too():
    clock = Clock()
    r = canary(clock, interval=60)
    r.decide(Request())
    feed(r, 1, 20)
    clock.t += 60
    assert r.decide(Request()).tags["weight"] == 20  # the route that found the check due
    feed(r, 1, 20)
    clock.t += 60
    r.learn(fb(1, 0.0))  # judged before this feedback counts: it opens the next window
    state = r.state()
    assert state["weight"] == 30 and state["window"]["candidate"] == {
        "n": 1, "reward_sum": 0.0, "errors": 0, "reward_mean": 0.0, "error_rate": 0.0}


def test_terminal_phases_count_feedback_and_change_nothing():
    clock = Clock()
    r = canary(clock, threshold=1)
    r.decide(Request())
    weights_along(r, clock, 0.0)
    before = r.state()
    feed(r, 1, 50, 1.0)
    feed(r, 0, 7, 1.0)
    after = tick(r, clock, 100 * HOUR)
    assert after["totals"]["candidate"]["n"] == before["totals"]["candidate"]["n"] + 50
    assert after["totals"]["stable"]["n"] == 7
    for field in ("phase", "weight", "failed_checks", "window", "last_analysis", "history"):
        assert after[field] == before[field], field


def test_margin_compares_with_the_stable_baseline_since_the_rollout_started():
    clock = Clock()
    r = canary(clock, min_reward=None, margin=0.05, min_samples=200)
    r.learn(fb(0, 0.0))  # before the rollout: not in the baseline
    r.decide(Request())
    for child, good in ((0, 180), (1, 185)):
        feed(r, child, good, 1.0)
        feed(r, child, 200 - good, 0.0)
    state = tick(r, clock)
    assert state["weight"] == 20 and state["baseline"]["stable"]["n"] == 200
    assert state["last_analysis"]["probability"] > 0.95
    assert state["last_analysis"]["metrics"]["stable_reward_mean"] == 0.9
    feed(r, 1, 150, 1.0)
    feed(r, 1, 50, 0.0)  # 0.75 against stable's 0.9: worse by more than 0.05
    state = tick(r, clock)
    assert state["failed_checks"] == 1 and state["last_analysis"]["probability"] < 0.01
    with pytest.raises(BadRequest, match=r"^reward: must be within \[0, 1\]"):
        r.learn(fb(1, 1.5))


def test_error_rate_from_feedback_tags():
    clock = Clock()
    r = canary(clock, min_reward=None, max_error_rate=0.1)
    r.decide(Request())
    feed(r, 1, 17)
    r.learn(fb(1, error=True))
    r.learn(fb(1, error="true", reward_given=False))  # an error needs no reward: it reads 0
    r.learn(fb(1, error=1, where="request"))
    r.learn(fb(1, error="false"))
    r.learn(fb(1, error=0.0))  # gRPC's Struct numbers are doubles
    window = r.state()["window"]["candidate"]
    assert window["n"] == 22 and window["errors"] == 3 and window["reward_sum"] == 21.0
    state = tick(r, clock)
    assert state["failed_checks"] == 1 and "error_rate 0.1364 > max_error_rate 0.1" in state["last_analysis"]["reasons"]


# --- routing --------------------------------------------------------------------------

def test_split_follows_the_weight_chi_square():
    clock = Clock()
    r = canary(clock, step_weights="25:50", seed=2024)
    decisions = [r.decide(Request()) for _ in range(20_000)]
    counts = np.bincount([d.child for d in decisions], minlength=2)
    assert stats.chisquare(counts, np.array([0.75, 0.25]) * counts.sum()).pvalue > 0.001
    tags = {d.child: d.tags for d in decisions}
    assert tags[1] == {"route": 1, "branch": "candidate", "propensity": 0.25, "phase": "Progressing",
                       "weight": 25.0, "failed_checks": 0}
    assert tags[0]["propensity"] == 0.75
    assert tags[0] is decisions[[d.child for d in decisions].index(0)].tags  # built once, not per request


def test_same_seed_same_decisions():
    one, two = canary(seed=5), canary(seed=5)
    assert [one.decide(Request()).child for _ in range(300)] == [two.decide(Request()).child for _ in range(300)]


def user(name, how="header") -> Request:
    if how == "header":
        return Request(headers=Headers([("X-User", name)]))
    return Request(meta={"puid": "", "tags": {"user": name}, "routing": {}, "requestPath": {}})


@pytest.mark.parametrize("how", ["header", "tag"])
def test_sticky_users_are_stable_spread_and_monotonic(how):
    clock = Clock()
    r = canary(clock, step_weights="10:25:50", sticky_key="header:x-user" if how == "header" else "tag:user")
    users = [f"user-{i}" for i in range(4000)]
    on_candidate = []
    for weight in (10, 25, 50):
        assert r.state()["weight"] in (0, weight)
        picks = {u: r.decide(user(u, how)) for u in users}
        assert all(d.tags["sticky"] is True for d in picks.values())
        assert all(r.decide(user(u, how)).child == picks[u].child for u in users[:500])  # the same every time
        chosen = {u for u, d in picks.items() if d.child == 1}
        assert abs(len(chosen) / len(users) - weight / 100) < 0.03  # spread as the weight says
        if on_candidate:
            assert on_candidate[-1] <= chosen  # nobody on the candidate goes back as it grows
        on_candidate.append(chosen)
        weights_along(r, clock, steps=1)
    assert "sticky" not in r.decide(Request()).tags  # no key: a random choice


def test_sticky_key_is_kept_across_instances_and_restarts():
    a, b = canary(sticky_key="tag:user", seed=1), canary(sticky_key="tag:user", seed=2)
    assert [a.route(None, [], meta=user(f"u{i}", "tag").meta) for i in range(300)] == \
        [b.decide(user(f"u{i}", "tag")).child for i in range(300)]


# --- feedback -------------------------------------------------------------------------

@pytest.mark.parametrize("feedback, message", [
    (fb(None), "response.meta.routing: None is neither"),
    (fb(2), "response.meta.routing: 2 is neither"),
    (fb(True), "response.meta.routing: True is neither"),
    (fb(1, float("nan")), "reward: must be a finite number"),
    (fb(1, float("inf")), "reward: must be a finite number"),
    (fb(1, "1"), "reward: must be a finite number"),
    (fb(1, True), "reward: must be a finite number"),
    (fb(1, reward_given=False), "reward: missing"),
    (fb(1, error="maybe"), "response.meta.tags.error: expected true or false"),
    (fb(1, error=2), "response.meta.tags.error"),
    (fb(1, error=[1], where="request"), "request.meta.tags.error"),
    # rewards are success fractions unless reward_range says otherwise: a negative one was
    # applied and then a 500 (the reward metric), 3.4e38 dominated the candidate's mean
    (fb(1, -1.0), r"reward: must be within \[0, 1\] \(reward_range; by default a success fraction\), got -1.0"),
    (fb(1, 3.4e38), r"reward: must be within \[0, 1\]"),
    (fb(1, 1.0 + 1e-9), r"reward: must be within \[0, 1\]"),
    # what an error quotes is cut short: repr() of this raised RecursionError
    (fb(1, error=json.loads("[" * 900 + "1" + "]" * 900)),
     r"response.meta.tags.error: .* got \[\[\[\[\.\.\.\]\]\]\]$"),
])
def test_bad_feedback_is_refused_and_changes_nothing(feedback, message):
    clock = Clock()
    r = canary(clock)
    r.decide(Request())
    feed(r, 1, 3)
    before = json.dumps(r.state())
    with pytest.raises(BadRequest, match=f"^{message}"):
        r.learn(feedback)
    assert json.dumps(r.state()) == before


def test_a_reward_range_bounds_rewards_both_ways():
    r = canary(reward_range="-1:1", min_reward=0.0)
    assert r.reward_range == (-1.0, 1.0)
    r.decide(Request())
    r.learn(fb(1, -1.0))
    r.learn(fb(1, 0.5))
    assert r.state()["totals"]["candidate"]["reward_sum"] == -0.5
    for bad in (-1.5, 3.4e38):
        with pytest.raises(BadRequest, match=r"^reward: must be within \[-1, 1\]"):
            r.learn(fb(1, bad))
    with pytest.raises(BadRequest, match=r"^reward: must be within \[-1, 1\]"):
        r.send_feedback(None, [], 2.0, None, routing=1)  # Seldon's entry point too
    assert canary(reward_range=[0, 100], min_reward=90).reward_range == (0.0, 100.0)


def test_seldon_wrapper_entry_points():
    r = canary()
    route = r.route(np.array([[1.0, 2.0]]), ["a", "b"])
    assert route in (0, 1)
    r.send_feedback(np.array([[1.0, 2.0]]), ["a", "b"], 0.5, None, routing=route)
    assert r.state()["totals"][r.branch_names[route]] == {"n": 1, "reward_sum": 0.5, "errors": 0,
                                                          "reward_mean": 0.5, "error_rate": 0.0}
    with pytest.raises(BadRequest, match="^response.meta.routing"):
        r.send_feedback(None, [], 1.0, None, routing=None)
    with pytest.raises(BadRequest, match="^reward"):
        r.send_feedback(None, [], None, None, routing=1)


def test_a_feedback_is_applied_once_per_puid():
    r = canary(dedupe=3)
    r.decide(Request())
    for _ in range(4):
        r.learn(fb(1, puid="p1"))
    assert r.state()["totals"]["candidate"]["n"] == 1 and r.state()["duplicates"] == 3
    for p in ("p2", "p3", "p4"):  # p1 falls out of the remembered ones
        r.learn(fb(1, puid=p))
    r.learn(fb(1, puid="p1"))
    r.learn(fb(1))
    r.learn(fb(1))  # no puid: each one counts
    assert r.state()["totals"]["candidate"]["n"] == 7 and r.state()["window"]["candidate"]["n"] == 7


def test_eight_threads_of_feedback_and_routes_end_with_exact_counts():
    clock = Clock()
    r = canary(clock, interval=1.0, max_insufficient_checks=10**9)
    r.decide(Request())

    def send(t):
        for i in range(1000):
            child = (t + i) % 2
            r.learn(fb(child, 0.25 * (i % 5), error=i % 10 == 0, puid=f"{t}-{i}"))
            r.decide(Request())
            if i % 100 == 0:
                clock.t += 0.5  # checks run meanwhile, in whichever thread finds them due

    threads = [threading.Thread(target=send, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    totals = r.state()["totals"]
    assert totals["stable"]["n"] == totals["candidate"]["n"] == 4000
    assert totals["stable"]["errors"] + totals["candidate"]["errors"] == 800
    assert totals["stable"]["reward_sum"] + totals["candidate"]["reward_sum"] == 8000 * 0.5
    assert r.state()["duplicates"] == 0


def test_transitions_are_logged(caplog):
    clock = Clock()
    r = canary(clock, step_weights="50", threshold=1)
    with caplog.at_level(logging.INFO, logger="seldon_routers"):
        r.decide(Request())
        weights_along(r, clock)
    messages = [rec.getMessage() for rec in caplog.records if rec.name == "seldon_routers"]
    assert any("Initialized weight 0 -> Progressing weight 50" in m for m in messages), messages
    assert any("Progressing weight 50 -> Promoting weight 100" in m and "check passed" in m for m in messages)
    assert any("Promoting weight 100 -> Succeeded weight 100" in m for m in messages)
    assert all(rec.levelno == logging.INFO for rec in caplog.records)


# --- state ----------------------------------------------------------------------------

def mid_rollout(clock, **kw):
    r = canary(clock, step_weights="10:25:50", threshold=4, **kw)
    r.decide(Request())
    weights_along(r, clock, 1.0, steps=1)
    weights_along(r, clock, 0.0, steps=1)
    feed(r, 1, 7, 1.0, error=True)
    feed(r, 0, 3, 0.5)
    r.learn(fb(1, puid="dup"))
    r.learn(fb(1, puid="dup"))
    clock.t += 17
    return r


def test_state_round_trip_through_json():
    clock = Clock()
    r = mid_rollout(clock)
    snapshot = json.loads(json.dumps(r.state(), allow_nan=False))
    assert snapshot["phase"] == "Progressing" and snapshot["weight"] == 25 and snapshot["failed_checks"] == 1
    assert snapshot["next_check_at"] == clock.t + 43 and snapshot["last_analysis"]["at"].endswith("Z")
    fresh = canary(Clock(clock.t), step_weights="10:25:50", threshold=4)
    fresh.load_state(snapshot)
    assert fresh.state() == snapshot
    assert fresh.decide(Request()).tags["weight"] == 25  # routes at once at the restored weight


def test_a_restored_rollout_carries_on():
    clock = Clock()
    snapshot = mid_rollout(clock).state()
    later = Clock(clock.t + 2 * HOUR)  # down for two hours: the missed check runs at the next call
    r = canary(later, step_weights="10:25:50", threshold=4)
    r.load_state(snapshot)
    feed(r, 1, 20, 1.0)  # the first feedback finds the missed check due: 8 in the window, insufficient
    state = r.state()
    assert state["insufficient_checks"] == 1 and state["window"]["candidate"]["n"] == 28
    assert weights_along(r, later) == [("Progressing", 50), ("Promoting", 100), ("Succeeded", 100)]


@pytest.mark.parametrize("change, field", [
    (lambda s: s.update(version=2), "state.version"),
    (lambda s: s.update(router="rules"), "state.router"),
    (lambda s: s.update(candidate="other"), "state.candidate"),
    (lambda s: s.update(phase="Paused"), "state.phase"),
    (lambda s: s.update(weight=60), "state.weight"),  # above max_weight while Progressing
    (lambda s: s.update(weight="25"), "state.weight"),
    (lambda s: s.update(phase="Succeeded"), "state.weight"),  # Succeeded routes 100%
    (lambda s: s.update(failed_checks=-1), "state.failed_checks"),
    (lambda s: s.update(failed_checks=True), "state.failed_checks"),
    (lambda s: s["window"]["candidate"].update(n=-3), "state.window.candidate.n"),
    (lambda s: s["window"].pop("candidate"), "state.window.candidate"),
    (lambda s: s["baseline"]["stable"].update(errors=99), "state.baseline.stable.errors"),
    (lambda s: s["totals"]["stable"].update(reward_sum=None), "state.totals.stable.reward_sum"),
    (lambda s: s.update(totals=[]), "state.totals"),
    (lambda s: s.update(next_check_at="soon"), "state.next_check_at"),
    (lambda s: s.update(history={}), "state.history"),
    (lambda s: s.update(last_analysis=[]), "state.last_analysis"),
    (lambda s: s.update(duplicates=-1), "state.duplicates"),
    (lambda s: s.update(window=["x"]), "state.window"),
    (lambda s: s.update(baseline="x"), "state.baseline"),
])
def test_a_bad_state_is_refused_naming_the_field_and_changes_nothing(change, field):
    clock = Clock()
    snapshot = mid_rollout(clock).state()
    bad = copy.deepcopy(snapshot)
    change(bad)
    r = mid_rollout(Clock())
    before = r.state()
    with pytest.raises(ConfigError, match=f"^{field}"):
        r.load_state(bad)
    assert r.state() == before


def test_a_snapshot_of_another_revision_starts_a_new_rollout(caplog):
    clock = Clock()
    snapshot = mid_rollout(clock, revision="v1").state()
    r = canary(clock, step_weights="10:25:50", threshold=4, revision="v2")
    with caplog.at_level(logging.INFO, logger="seldon_routers"):
        r.load_state(snapshot)
    assert r.state()["phase"] == "Initialized" and "starting afresh" in caplog.text
    same = canary(clock, step_weights="10:25:50", threshold=4, revision="v1")
    same.load_state(snapshot)
    assert same.state()["weight"] == 25


def test_redis_refuses_to_share_a_canary():
    require("redis", REDIS, "pip install 'seldon-routers[redis]'")
    from seldon_routers.state import StoreOptions
    from seldon_routers.state.redis import RedisStore

    store = RedisStore("redis://127.0.0.1:1/0", StoreOptions())  # never reached: refused first
    with pytest.raises(ConfigError, match="^--state redis: Canary has no additive state to share"):
        asyncio.run(store.start(canary()))


def test_margin_without_scipy_stops_start_up(monkeypatch):
    """Not a first check an interval later that raises on every call and never moves on."""
    monkeypatch.setitem(sys.modules, "scipy.stats", None)  # what a missing package looks like
    with pytest.raises(ConfigError, match=r"^margin: .*needs scipy: pip install 'seldon-routers\[canary\]'"):
        canary(margin=0.05)
    canary(min_reward=0.9)  # scipy is needed with margin only


def test_state_and_snapshots_run_no_check():
    """A file store reads state() every few seconds: an idle night must not become a check
    per interval (and a rollback), nor a snapshot that changes while nothing happens."""
    clock = Clock()
    r = canary(clock, interval=60, threshold=2, max_insufficient_checks=0)
    r.decide(Request())
    first = r.state()
    for _ in range(100):
        clock.t += 60
        assert r.state() == first
    assert tick(r, clock, 0)["failed_checks"] == 1  # traffic runs the one check that is due


def test_numpy_rewards_are_numbers():
    r = canary()
    r.decide(Request())
    r.learn(fb(1, np.int64(1)))
    r.learn(fb(1, np.float32(0.5)))
    assert r.state()["window"]["candidate"]["n"] == 2


def test_an_operator_promotes_or_rolls_back_from_any_phase_and_it_is_in_the_history():
    clock = Clock()
    router = canary(clock)
    assert router.promote() is True and router.state()["phase"] == "Succeeded"  # even before any request
    assert {router.decide(Request()).child for _ in range(30)} == {1}
    assert router.promote() is False and router.state()["history"][-1]["reason"] == "promoted by an operator"
    assert router.rollback("latency regression") is True
    state = router.state()
    assert (state["phase"], state["weight"], state["history"][-1]["reason"]) == ("Failed", 0.0, "latency regression")
    assert {router.decide(Request()).child for _ in range(30)} == {0}
    clock.t += 10 * HOUR  # terminal: no check moves it again
    feed(router, 1, 50)
    assert tick(router, clock)["phase"] == "Failed"
