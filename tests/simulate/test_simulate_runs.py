"""Runs: policies driven through route/send_feedback on shared streams."""

import numpy as np
import pytest

import sim_policies
from seldon_routers import ConfigError, RouterError, registry
from seldon_routers.simulate import (Bernoulli, Contextual, Drift, Policy, checkpoints, policy_seed, simulate,
                                     table)

CHAPELLE_LI = Bernoulli([0.5] + [0.4] * 9)
BANDITS = [name for name in ("thompson-sampling", "ucb1", "epsilon-greedy") if name in registry.BUILTINS]


def test_checkpoints_are_decades_and_the_horizon():
    assert checkpoints(2500).tolist() == [10, 100, 1000, 2500]
    assert checkpoints(1000).tolist() == [10, 100, 1000]
    dense = checkpoints(1000, dense=True)
    assert dense[0] == 1 and dense[-1] == 1000 and {10, 100, 1000} <= set(dense.tolist()) and len(dense) > 30


@pytest.mark.parametrize("spec", ["ab-test", sim_policies.Seeded, *BANDITS])
def test_a_policy_compared_with_itself_gets_identical_regret(spec):
    result = simulate(CHAPELLE_LI, [Policy(spec, label="a"), Policy(spec, label="b")], 3000, 3, seed=7)
    assert np.array_equal(result.regret["a"], result.regret["b"])
    assert result.regret["a"].shape == (3, len(checkpoints(3000, dense=True)))


def test_different_policies_see_identical_arm_outcomes():
    env = Bernoulli([0.5, 0.3, 0.8, 0.1, 0.6])  # odd: both cycles meet at arm 2
    sim_policies.LOG.clear()
    simulate(env, [Policy(sim_policies.Recorder, label="fwd"),
                   Policy(sim_policies.Recorder, {"backwards": True}, label="bwd")], 400, 2, seed=11)
    log = sim_policies.LOG
    assert len(log) == 2 * 2 * 400
    for rep in range(2):
        table = env.sample(400, 11, rep).rewards
        runs = {False: log[rep * 800:rep * 800 + 400], True: log[rep * 800 + 400:(rep + 1) * 800]}
        for backwards, run in runs.items():
            assert [r[0] for r in run] == [backwards] * 400
            for _, t, arm, reward, features, names in run:
                assert reward == table[t, arm] and isinstance(reward, float)
                assert features.shape == (1, 1) and names == []
    # Where the two policies pulled the same arm at the same step, they got the same reward.
    fwd, bwd = log[:400], log[400:800]
    same = [(a[3], b[3]) for a, b in zip(fwd, bwd) if a[2] == b[2]]
    assert same and all(a == b for a, b in same)


def test_contextual_policies_get_the_context_row():
    env = Contextual(3, 4, seed=2)
    sim_policies.LOG.clear()
    simulate(env, [Policy(sim_policies.Recorder)], 50, 1, seed=2)
    contexts = env.sample(50, 2, 0).contexts
    for _, t, _, _, features, names in sim_policies.LOG:
        assert np.array_equal(features, contexts[t:t + 1]) and names == ["x0", "x1", "x2", "x3"]


def test_oracle_on_the_contextual_environment_has_zero_regret():
    env = Contextual(5, 3, seed=4)

    class Oracle:
        def __init__(self, n_branches):
            pass

        def route(self, features, feature_names):
            return int(np.argmax(features[0] @ env.theta.T))

        def send_feedback(self, *args, **kwargs):
            pass

    result = simulate(env, [Policy(Oracle), Policy(sim_policies.Fixed)], 500, 2, seed=4)
    assert np.allclose(result.regret["Oracle"], 0)
    assert result.mean("Fixed")[-1] > 10


def test_always_best_has_zero_regret_and_always_worst_has_t_times_gap():
    env = Bernoulli([0.5, 0.4, 0.3])
    result = simulate(env, [Policy(sim_policies.Fixed, {"arm": 0}, label="best"),
                            Policy(sim_policies.Fixed, {"arm": "2"}, label="worst")], 5000, 2)
    assert np.array_equal(result.regret["best"], np.zeros_like(result.regret["best"]))
    assert np.allclose(result.regret["worst"], 0.2 * result.steps)
    assert np.allclose(result.bound(), env.bound_constant() * np.log(result.steps))


def test_drift_regret_counts_from_the_per_step_best_arm():
    env = Drift([0.6, 0.4], [0.3, 0.7], at=300)
    result = simulate(env, [Policy(sim_policies.Fixed, {"arm": 0})], 1000, 1)
    assert result.at("Fixed", 1000)[0] == pytest.approx(0.4 * 700)
    assert result.bound() is None


@pytest.mark.parametrize("spec", [sim_policies.Greedy, *BANDITS])
def test_batched_feedback_delays_learning(spec):
    # Easy arms: learning from every reward finds arm 0 within a few steps; with batches of
    # 1000 the first 1000 routes are made knowing nothing.
    env = Bernoulli([0.9, 0.1])
    pol = [Policy(spec, label="p")]
    prompt = simulate(env, pol, 2000, 4, seed=3, batch=1).mean("p")[-1]
    delayed = simulate(env, pol, 2000, 4, seed=3, batch=1000).mean("p")[-1]
    assert delayed > prompt + 100


def test_batched_feedback_sends_every_reward_after_its_batch_of_routes():
    calls = []

    class Probe:
        def __init__(self, n_branches):
            self.t = 0

        def route(self, features, feature_names):
            calls.append("route")
            return 0

        def send_feedback(self, features, feature_names, reward, truth, routing=None):
            calls.append("feedback")

    simulate(Bernoulli([0.5, 0.4]), [Policy(Probe)], 25, 1, batch=10)
    expected = (["route"] * 10 + ["feedback"] * 10) * 2 + ["route"] * 5 + ["feedback"] * 5
    assert calls == expected


def test_worker_processes_and_repetition_ranges_give_the_same_result():
    pols = [Policy(sim_policies.Seeded), Policy("ab-test")] + [Policy(name) for name in BANDITS]
    one = simulate(CHAPELLE_LI, pols, 2000, 3, seed=5)
    two = simulate(CHAPELLE_LI, pols, 2000, 3, seed=5, jobs=2)
    last = simulate(CHAPELLE_LI, pols, 2000, 1, seed=5, first_repetition=2)
    for label in one.labels:
        assert np.array_equal(one.regret[label], two.regret[label])
        assert np.array_equal(one.regret[label][2:], last.regret[label])


def test_policies_get_n_branches_and_a_seed_per_repetition():
    seen = []

    class Spy:
        def __init__(self, n_branches, seed):
            seen.append((n_branches, seed))

        def route(self, features, feature_names):
            return 0

    simulate(CHAPELLE_LI, [Policy(Spy)], 10, 3, seed=8)
    assert seen[1:] == [(10, policy_seed(8, rep)) for rep in range(3)]  # seen[0]: the up-front check
    assert len({s for _, s in seen[1:]}) == 3


def test_progress_counts_every_step():
    done = []
    simulate(CHAPELLE_LI, [Policy("ab-test"), Policy(sim_policies.Fixed)], 10_000, 2, progress=done.append)
    assert sum(done) == 2 * 2 * 10_000


def test_table_rows_are_decades_with_mean_se_and_bound():
    result = simulate(CHAPELLE_LI, [Policy(sim_policies.Fixed, {"arm": 1}), Policy("ab-test")], 2000, 2)
    text = table(result)
    lines = text.splitlines()
    assert lines[0].split() == ["T", "Fixed", "ab-test", "C", "ln", "T"]
    assert [line.split()[0] for line in lines[2:6]] == ["10", "100", "1000", "2000"]
    assert "200.0 ± 0.0" in text  # always a 0.1-gap arm: 0.1 * 2000
    assert "339.7" in text  # C ln 2000 = 44.697 * 7.601


@pytest.mark.parametrize("policies, match", [
    ([Policy("no-such-policy")], "no-such-policy"),
    ([Policy("ab-test", {"seed": 3})], "set by the simulator"),
    ([Policy("ab-test", {"n_branches": 3})], "10 arms"),
    ([Policy("ab-test", {"nope": 1})], "nope"),
    ([Policy("ab-test"), Policy("ab-test")], "given twice"),
])
def test_bad_policies_fail_before_running(policies, match):
    with pytest.raises(ConfigError, match=match):
        simulate(CHAPELLE_LI, policies, 100, 1)


def test_a_route_outside_the_arms_is_a_router_error():
    with pytest.raises(RouterError, match="routed to -1"):
        simulate(CHAPELLE_LI, [Policy(sim_policies.OutOfRange)], 100, 1)


def test_a_policy_raising_is_a_router_error_naming_it():
    class Broken:
        def __init__(self, n_branches):
            pass

        def route(self, features, feature_names):
            return 0

        def send_feedback(self, *args, **kwargs):
            raise ValueError("no rewards above 1")

    with pytest.raises(RouterError, match="policy 'Broken' failed in repetition 0: ValueError: no rewards above 1"):
        simulate(CHAPELLE_LI, [Policy(Broken)], 100, 1)


@pytest.mark.skipif("lin-ucb" not in registry.BUILTINS, reason="lin-ucb not registered")
def test_lin_ucb_uses_the_context_and_beats_a_context_blind_policy():
    env = Contextual(4, 3, seed=1)
    result = simulate(env, [Policy("lin-ucb"), Policy("ucb1")], 3000, 2, seed=1)
    assert result.mean("lin-ucb")[-1] < 0.5 * result.mean("ucb1")[-1]
