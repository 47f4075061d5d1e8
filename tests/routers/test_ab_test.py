import json
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from seldon_routers import ABTest, ConfigError, Request
from seldon_routers.request import Headers


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


def test_set_weights_changes_the_split_and_the_tags_and_a_bad_one_changes_nothing():
    router = ABTest(branch_names="a:b:c", seed=1)
    router.set_weights({"c": 1, "a": 0, "b": 0})
    decisions = [router.decide(Request()) for _ in range(50)]
    assert {d.child for d in decisions} == {2} and decisions[0].tags["propensity"] == 1.0
    router.set_weights("1:1:0")
    assert router.state() == {"weights": {"a": 0.5, "b": 0.5, "c": 0.0}}
    for bad, match in (([1, 2], "weights: 2 weights for 3 children"), ({"a": 1, "b": 1}, "name every branch"),
                       ({"a": 1, "b": 1, "d": 1}, "name every branch"), ([0, 0, 0], "weights"),
                       ([1, -1, 1], "weights"), ("x:y:z", "weights: every item must be a float")):
        with pytest.raises(ConfigError, match=match):
            router.set_weights(bad)
    assert router.state() == {"weights": {"a": 0.5, "b": 0.5, "c": 0.0}}
    assert {router.decide(Request()).child for _ in range(50)} == {0, 1}


# --- sticky assignment ----------------------------------------------------------------------

USERS = [f"user-{i}" for i in range(20000)]


def user(name, header="x-user-id"):
    return Request(headers=Headers([(header, name)]))


def test_sticky_key_keeps_a_user_on_one_child_across_instances():
    routers = [ABTest(weights="0.5:0.3:0.2", sticky_key="header:x-user-id", seed=s) for s in range(5)]
    for name in USERS[:300]:
        decisions = [r.decide(user(name)) for r in routers for _ in range(3)]
        assert len({d.child for d in decisions}) == 1
        assert all(d.tags["sticky"] is True for d in decisions)


def test_sticky_key_spreads_many_users_by_the_weights():
    router = ABTest(weights="0.5:0.3:0.2", sticky_key="x-user-id", seed=0)  # a bare name is a header
    counts = np.bincount([router.decide(user(u)).child for u in USERS], minlength=3)
    assert stats.chisquare(counts, np.array([0.5, 0.3, 0.2]) * counts.sum()).pvalue > 0.001


def test_sticky_key_is_the_same_in_another_process():
    names = USERS[:200]
    here = [ABTest(n_branches=4, sticky_key="header:x-user-id").decide(user(n)).child for n in names]
    code = ("import json, sys\nfrom seldon_routers import ABTest, Request\nfrom seldon_routers.request import Headers\n"
            "r = ABTest(n_branches=4, sticky_key='header:x-user-id', seed=5)\n"
            "print(json.dumps([r.decide(Request(headers=Headers([('X-User-Id', n)]))).child for n in json.load(sys.stdin)]))")
    out = subprocess.run([sys.executable, "-c", code], input=json.dumps(names), capture_output=True, text=True,
                         check=True, env={**os.environ, "PYTHONHASHSEED": "777"}).stdout
    assert json.loads(out) == here


def test_request_without_the_key_is_random_and_untagged():
    router = ABTest(n_branches=2, sticky_key="header:x-user-id", seed=3)
    seen = {router.decide(Request()).child for _ in range(200)}
    assert seen == {0, 1} and "sticky" not in router.decide(Request()).tags
    assert "sticky" not in router.decide(user("")).tags  # an empty key is no key


def test_sticky_tag_under_seldons_wrapper():
    router = ABTest(n_branches=3, sticky_key="tag:user")
    first = [router.route(None, [], meta={"tags": {"user": u}}) for u in USERS[:100]]
    assert first == [router.route(None, [], meta={"tags": {"user": u}}) for u in USERS[:100]]
    assert len(set(first)) == 3
    assert router.state() == {"weights": {"0": 1 / 3, "1": 1 / 3, "2": 1 / 3}, "sticky_key": "tag:user"}


def test_bad_sticky_key_names_the_field():
    with pytest.raises(ConfigError, match="sticky_key: expected header:NAME or tag:NAME"):
        ABTest(sticky_key="cookie:x")


def test_sticky_experiments_split_the_same_users_independently():
    """Salted by the branch names (or sticky_salt): an inner 50/50 under an outer 50/50 gets
    both its children, and two experiments do not put every user in the same arm of both."""
    outer = ABTest(branch_names="a:inner", sticky_key="header:x-user-id")
    inner = ABTest(branch_names="b:c", sticky_key="header:x-user-id")
    reached = [inner.decide(user(u)).child for u in USERS[:4000] if outer.decide(user(u)).child == 1]
    counts = np.bincount(reached, minlength=2)
    assert stats.chisquare(counts).pvalue > 0.001
    one = ABTest(n_branches=2, sticky_key="header:x-user-id", sticky_salt="exp-1")
    two = ABTest(n_branches=2, sticky_key="header:x-user-id", sticky_salt="exp-2")
    same = np.mean([one.decide(user(u)).child == two.decide(user(u)).child for u in USERS[:4000]])
    assert 0.45 < same < 0.55
    alike = ABTest(n_branches=2, sticky_key="header:x-user-id", sticky_salt="exp-1")
    assert all(one.decide(user(u)).child == alike.decide(user(u)).child for u in USERS[:500])
