"""Environments: reward tables, pseudo-regret, and the Lai-Robbins constant."""

import math

import numpy as np
import pytest

from seldon_routers import ConfigError
from seldon_routers.simulate import (Bernoulli, Contextual, Drift, Gaussian, bernoulli_kl, lai_robbins_constant,
                                     shorthand_means)


def test_chapelle_li_lai_robbins_constant_is_44_70():
    env = Bernoulli(shorthand_means(10, 0.5, 0.1))
    assert env.means.tolist() == [0.5] + [0.4] * 9
    assert round(env.bound_constant(), 2) == 44.70


def test_bernoulli_kl_known_values_and_edges():
    assert bernoulli_kl(0.4, 0.5) == pytest.approx(0.4 * math.log(0.8) + 0.6 * math.log(1.2))
    assert bernoulli_kl(0.3, 0.3) == 0
    assert bernoulli_kl(0.0, 0.5) == pytest.approx(math.log(2))
    assert math.isinf(bernoulli_kl(0.5, 1.0))
    # An arm at infinite divergence from a perfect best arm costs nothing asymptotically;
    # arms tied with the best are not suboptimal.
    assert lai_robbins_constant([1.0, 0.5], bernoulli_kl) == 0
    assert lai_robbins_constant([0.5, 0.5, 0.4], bernoulli_kl) == pytest.approx(0.1 / bernoulli_kl(0.4, 0.5))


def test_gaussian_bound_is_sum_of_two_sigma_squared_over_gap():
    env = Gaussian([1.0, 0.5, 0.0], sigma=2.0)
    assert env.bound_constant() == pytest.approx(2 * 4 / 0.5 + 2 * 4 / 1.0)


def test_reward_tables_depend_on_seed_and_repetition_only():
    env = Bernoulli([0.7, 0.2, 0.5])
    a, b = env.sample(20_000, 3, 1), env.sample(20_000, 3, 1)
    assert np.array_equal(a.rewards, b.rewards)
    assert not np.array_equal(a.rewards, env.sample(20_000, 3, 2).rewards)
    assert not np.array_equal(a.rewards, env.sample(20_000, 4, 1).rewards)
    assert np.allclose(a.rewards.mean(axis=0), [0.7, 0.2, 0.5], atol=0.02)
    assert set(np.unique(a.rewards)) <= {0, 1}


def test_a_shorter_horizon_is_a_prefix_of_a_longer_one():
    for env in (Bernoulli([0.5, 0.4]), Gaussian([0.0, 1.0]), Contextual(3, 4, seed=1)):
        short, long = env.sample(1000, 9, 0), env.sample(5000, 9, 0)
        assert np.array_equal(short.rewards, long.rewards[:1000])


def test_gaussian_rewards_have_the_means_and_sigma():
    r = Gaussian([0.0, 2.0], sigma=0.5).sample(50_000, 0, 0).rewards
    assert np.allclose(r.mean(axis=0), [0.0, 2.0], atol=0.01)
    assert np.allclose(r.std(axis=0), 0.5, atol=0.01)


def test_pseudo_regret_uses_the_best_mean_of_each_step():
    env = Drift([0.6, 0.4], [0.3, 0.7], at=50)
    stream = env.sample(100, 0, 0)
    chosen = np.zeros(100, dtype=int)
    regret = stream.pseudo_regret(chosen)
    assert np.allclose(regret[:50], 0) and np.allclose(regret[50:], 0.4)
    assert np.allclose(stream.rewards[50:].mean(axis=0), [0.3, 0.7], atol=0.2)


def test_contextual_means_are_linear_in_the_context_and_within_0_1():
    env = Contextual(4, 3, seed=5)
    stream = env.sample(2000, 5, 0)
    assert stream.contexts.shape == (2000, 3)
    assert np.allclose(stream.contexts.sum(axis=1), 1) and stream.contexts.min() >= 0
    assert np.allclose(stream.mean_table, stream.contexts @ env.theta.T)
    assert 0 <= stream.mean_table.min() and stream.mean_table.max() <= 1
    # The best arm depends on the context, so ignoring it costs regret.
    assert len(np.unique(stream.mean_table.argmax(axis=1))) > 1
    oracle = stream.mean_table.argmax(axis=1)
    assert np.allclose(stream.pseudo_regret(oracle), 0)
    # The instance comes from the seed; repetitions redraw contexts and rewards.
    assert np.array_equal(env.theta, Contextual(4, 3, seed=5).theta)


@pytest.mark.parametrize("make, match", [
    (lambda: Bernoulli([0.5, 1.2]), "within|lie in"),
    (lambda: Bernoulli([0.5]), "at least 2"),
    (lambda: Gaussian([0, 1], sigma=0), "--sigma"),
    (lambda: Drift([0.5, 0.4], [0.5], at=10), "--drifted-means"),
    (lambda: Drift([0.5, 0.4], [0.4, 0.5], at=0), "--drift-at"),
    (lambda: Contextual(1, 3), "--arms"),
    (lambda: shorthand_means(10, 0.5, 0), "--gap"),
])
def test_bad_environments_are_config_errors(make, match):
    with pytest.raises(ConfigError, match=match):
        make()


def test_shuffled_arms_move_the_best_arm_per_repetition_only():
    env = Bernoulli([0.5, 0.4, 0.4, 0.3], shuffle=True)
    orders = [env.sample(10, 1, rep).segments[0][2] for rep in range(20)]
    assert all(sorted(o.tolist()) == [0.3, 0.4, 0.4, 0.5] for o in orders)
    assert len({int(np.argmax(o)) for o in orders}) > 1
    assert np.array_equal(env.sample(10, 1, 3).segments[0][2], orders[3])
    stream = env.sample(20_000, 1, 0)
    assert np.allclose(stream.rewards.mean(axis=0), orders[0], atol=0.02)
    assert np.allclose(stream.pseudo_regret(np.full(20_000, int(np.argmax(orders[0])))), 0)
    assert env.bound_constant() == Bernoulli([0.5, 0.4, 0.4, 0.3]).bound_constant()
    g = Gaussian([1.0, 0.0, -1.0], shuffle=True)
    assert len({int(np.argmax(g.sample(5, 0, rep).segments[0][2])) for rep in range(20)}) > 1
