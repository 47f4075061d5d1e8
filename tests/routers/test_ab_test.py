import numpy as np
import pytest
from scipy import stats

from seldon_routers import ABTest, ConfigError, Request


def draws(router, n=20000):
    return np.bincount([router.decide(Request()).child for _ in range(n)], minlength=router.n_children)


def test_weights_are_respected_chi_square():
    router = ABTest(weights="0.5:0.3:0.2", seed=7)
    counts = draws(router)
    assert stats.chisquare(counts, np.array([0.5, 0.3, 0.2]) * counts.sum()).pvalue > 0.001


def test_default_is_two_equal_children():
    router = ABTest(seed=1)
    assert router.n_children == 2 and router.weights == [0.5, 0.5]


def test_zero_weight_child_is_never_chosen():
    counts = draws(ABTest(weights="0:1:0:3", seed=3), 5000)
    assert counts[0] == 0 and counts[2] == 0 and counts[1] > 0 and counts[3] > 0


def test_seed_zero_is_a_seed():
    a, b = ABTest(n_branches=4, seed=0), ABTest(n_branches=4, seed=0)
    assert [a.route(None, []) for _ in range(50)] == [b.route(None, []) for _ in range(50)]


def test_instances_have_their_own_generators():
    a, b = ABTest(n_branches=4, seed=1), ABTest(n_branches=4, seed=1)
    first = [a.route(None, []) for _ in range(20)]
    np.random.seed(123)  # the global generator is not used
    assert first == [b.route(None, []) for _ in range(20)]


def test_route_returns_plain_int_for_the_seldon_wrapper():
    assert type(ABTest(n_branches=3, seed=0).route(np.zeros((1, 2)), [])) is int


def test_tags_name_the_branch_and_its_propensity():
    router = ABTest(weights=[1, 3], branch_names="blue:green", seed=2)
    d = router.decide(Request())
    assert d.tags == {"route": d.child, "branch": ["blue", "green"][d.child], "propensity": [0.25, 0.75][d.child]}


def test_ratio_a_is_seldons_two_way_split():
    assert ABTest(ratioA=0.8).weights == pytest.approx([0.8, 0.2])


@pytest.mark.parametrize("kwargs, match", [
    ({"weights": "1:-1"}, "weights"),
    ({"weights": "0:0"}, "weights"),
    ({"weights": "nan:1"}, "weights"),
    ({"n_branches": 0}, "n_branches"),
    ({"n_branches": 2, "branch_names": "a:b:c"}, "branch_names"),
    ({"branch_names": "a:a"}, "unique"),
    ({"ratioA": 1.5}, "ratioA"),
    ({"ratioA": 0.5, "weights": "1:1"}, "ratioA"),
])
def test_bad_configuration_names_the_field(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        ABTest(**kwargs)


def test_state_shows_the_weights_by_name():
    assert ABTest(weights="1:1", branch_names="a:b").state() == {"weights": {"a": 0.5, "b": 0.5}}
