"""One canary check as a pure function: insufficient, passed and failed for each
criterion and their combinations, the Beta comparison against Monte Carlo, the criteria's
validation, and the tallies' snapshot form."""

import math

import numpy as np
import pytest

from seldon_routers import ConfigError
from seldon_routers.routers.canary.analysis import (FAILED, INSUFFICIENT, PASSED, Criteria, Tally, analyse,
                                                    not_worse_probability)


def tally(n, reward_mean=1.0, errors=0) -> Tally:
    return Tally(n, reward_mean * n, errors)


STABLE = tally(1000, 0.9)


@pytest.mark.parametrize("criteria, window, stable, result, reason", [
    # too few candidate feedbacks: not judged, whatever they say
    (dict(min_reward=0.5), tally(19, 1.0), STABLE, INSUFFICIENT, "candidate: 19 feedbacks, min_samples is 20"),
    (dict(min_reward=0.5, min_samples=5), tally(4, 0.0), STABLE, INSUFFICIENT, "candidate: 4 feedbacks"),
    (dict(max_error_rate=0.1), tally(0), STABLE, INSUFFICIENT, "candidate: 0 feedbacks"),
    # min_reward: the mean reward, inclusive
    (dict(min_reward=0.9), tally(20, 0.9), STABLE, PASSED, "reward_mean 0.9 >= min_reward 0.9"),
    (dict(min_reward=0.9), tally(20, 0.85), STABLE, FAILED, "reward_mean 0.85 < min_reward 0.9"),
    (dict(min_reward=-2.0), tally(20, -1.5), STABLE, PASSED, "reward_mean -1.5 >= min_reward -2"),
    # max_error_rate: errors over feedbacks, inclusive
    (dict(max_error_rate=0.1), tally(20, errors=2), STABLE, PASSED, "error_rate 0.1 <= max_error_rate 0.1"),
    (dict(max_error_rate=0.1), tally(20, errors=3), STABLE, FAILED, "error_rate 0.15 > max_error_rate 0.1"),
    (dict(max_error_rate=0.0), tally(20, errors=0), STABLE, PASSED, "error_rate 0 <= max_error_rate 0"),
    # every configured criterion must hold; the reasons name the ones that did not
    (dict(min_reward=0.5, max_error_rate=0.1), tally(20, 0.9, errors=3), STABLE, FAILED, "error_rate 0.15 >"),
    (dict(min_reward=0.95, max_error_rate=0.1), tally(20, 0.9, errors=3), STABLE, FAILED, "reward_mean 0.9 <"),
    # margin: the candidate not worse than stable by more than the margin
    (dict(margin=0.02), tally(2000, 0.9), STABLE, PASSED, "P(candidate > stable - 0.02)"),
    (dict(margin=0.02), tally(2000, 0.8), STABLE, FAILED, "P(candidate > stable - 0.02) 0.0000 < min_probability 0.95"),
    (dict(margin=0.0, min_probability=0.5), tally(2000, 0.95), STABLE, PASSED, ">= min_probability 0.5"),
    # ...and needs enough stable feedback too
    (dict(margin=0.02), tally(2000, 0.9), tally(5, 0.9), INSUFFICIENT, "stable: 5 feedbacks, min_samples is 20"),
    # without a margin the stable child's feedback is not looked at
    (dict(min_reward=0.5), tally(20, 0.9), tally(0), PASSED, "reward_mean 0.9 >= min_reward 0.5"),
])
def test_check_table(criteria, window, stable, result, reason):
    analysis = analyse(window, stable, Criteria(**criteria))
    assert analysis.result == result
    assert any(reason in r for r in analysis.reasons), analysis.reasons
    assert analysis.metrics["n"] == window.n
    assert (analysis.probability is not None) == (criteria.get("margin") is not None and result != INSUFFICIENT)


def test_metrics_and_json_form():
    analysis = analyse(tally(40, 0.75, errors=4), tally(100, 0.8), Criteria(min_reward=0.7, margin=0.2))
    body = analysis.to_json()
    assert body["result"] == PASSED and body["metrics"] == {
        "n": 40, "reward_mean": 0.75, "error_rate": 0.1, "stable_n": 100, "stable_reward_mean": 0.8}
    assert 0.95 <= body["probability"] <= 1 and len(body["reasons"]) == 2


@pytest.mark.parametrize("cand, stable, margin", [
    ((30, 10), (80, 20), 0.05),  # small samples, close
    ((12.5, 7.5), (9, 11), 0.0),  # fractional successes
    ((900, 100), (9500, 500), 0.02),  # peaked posteriors: a fixed grid would miss them
    ((0, 0), (0, 0), 0.1),  # uniform priors only
    ((5, 95), (95, 5), 0.3),  # far worse
    ((400, 600), (4300, 5700), 0.0),
])
def test_beta_probability_matches_monte_carlo(cand, stable, margin):
    rng = np.random.default_rng(12345)
    n = 400_000
    pc = rng.beta(1 + cand[0], 1 + cand[1], n)
    ps = rng.beta(1 + stable[0], 1 + stable[1], n)
    estimate = float(np.mean(pc > ps - margin))
    exact = not_worse_probability(cand[0], cand[1], stable[0], stable[1], margin)
    assert abs(exact - estimate) < 0.01, (exact, estimate)


def test_beta_probability_grows_with_the_margin_and_is_a_probability():
    values = [not_worse_probability(45, 55, 50, 50, m) for m in (0.0, 0.02, 0.05, 0.1, 0.5)]
    assert values == sorted(values) and 0 <= values[0] and values[-1] <= 1 and values[-1] > 0.999


@pytest.mark.parametrize("kwargs, field", [
    ({}, "min_reward: a canary must check something"),
    (dict(min_reward=float("nan")), "min_reward"),
    (dict(min_reward=math.inf), "min_reward"),
    (dict(max_error_rate=1.5), "max_error_rate"),
    (dict(max_error_rate=-0.1), "max_error_rate"),
    (dict(margin=1.0), "margin"),
    (dict(margin=-0.1), "margin"),
    (dict(min_reward=0.5, min_probability=0.0), "min_probability"),
    (dict(min_reward=0.5, min_probability=1.0), "min_probability"),
    (dict(min_reward=0.5, min_samples=0), "min_samples"),
    (dict(min_reward=0.5, min_samples=2.5), "min_samples"),
    (dict(min_reward=True), "min_reward"),
])
def test_criteria_are_validated(kwargs, field):
    with pytest.raises(ConfigError, match=f"^{field}"):
        Criteria(**kwargs)


def test_tally_round_trip_and_refusals():
    t = Tally()
    for reward, error in ((1.0, False), (0.25, True), (0.5, False)):
        t.add(reward, error)
    body = t.to_json()
    assert body == {"n": 3, "reward_sum": 1.75, "errors": 1, "reward_mean": 1.75 / 3, "error_rate": 1 / 3}
    assert Tally.from_json(body, "w") == t
    for bad, field in (({"n": -1, "reward_sum": 0, "errors": 0}, "w.n"),
                       ({"n": 1.5, "reward_sum": 0, "errors": 0}, "w.n"),
                       ({"n": 2, "reward_sum": "x", "errors": 0}, "w.reward_sum"),
                       ({"n": 2, "reward_sum": math.nan, "errors": 0}, "w.reward_sum"),
                       ({"n": 2, "reward_sum": 0, "errors": 3}, "w.errors"),
                       ({"n": 2, "reward_sum": 0}, "w.errors"),
                       ([], "w")):
        with pytest.raises(ConfigError, match=f"^{field}"):
            Tally.from_json(bad, "w")
    with pytest.raises(ConfigError, match=r"^w.reward_sum: 3 for 2 rewards within reward_range \[0, 1\]"):
        Tally.from_json({"n": 2, "reward_sum": 3, "errors": 0}, "w", (0.0, 1.0))
    assert Tally.from_json({"n": 2, "reward_sum": -6, "errors": 0}, "w", (-5.0, 5.0)).reward_sum == -6
    with pytest.raises(ConfigError, match=r"^w.reward_sum: -11 for 2 rewards within reward_range \[-5, 5\]"):
        Tally.from_json({"n": 2, "reward_sum": -11, "errors": 0}, "w", (-5.0, 5.0))
