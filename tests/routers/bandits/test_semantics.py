"""The semantics every bandit router keeps; each test fails on the defect it names
(most of them were defects of Seldon's own routers)."""

import json
import os
import threading

import numpy as np
import pytest
from scipy import stats

from seldon_routers import BadRequest, ConfigError, EpsilonGreedy, Feedback, Request, ThompsonSampling, UCB1
from seldon_routers.routers.bandits.linear import LinUCB

BANDITS = [EpsilonGreedy, ThompsonSampling, UCB1]
ONE_ROW = np.zeros((1, 2))


def feedback(arm, reward, rows=1, puid="", reward_given=True):
    request = Request(features=np.zeros((rows, 2)), kind="ndarray", meta={"puid": puid, "tags": {}, "routing": {},
                                                                          "requestPath": {}})
    return Feedback(request, {"puid": puid}, reward, None, routing=arm, reward_given=reward_given)


@pytest.mark.parametrize("cls", BANDITS)
def test_reward_is_fractional_never_truncated(cls):
    r = cls(n_branches=2, seed=0)
    r.learn(feedback(1, 0.9))  # Seldon: int(0.9 * 1) == 0, a failure
    assert r.successes[1] == pytest.approx(0.9) and r.pulls[1] == 1


@pytest.mark.parametrize("cls", BANDITS)
def test_reward_counts_once_per_row_of_the_batch(cls):
    r = cls(n_branches=2, seed=0)
    r.learn(feedback(0, 0.25, rows=4))
    r.send_feedback(np.zeros((3, 5)), [], 1.0, None, routing=1)  # Seldon's wrapper path
    assert (r.successes, r.pulls) == ([1.0, 3.0], [4.0, 3.0])


@pytest.mark.parametrize("cls", BANDITS)
@pytest.mark.parametrize("reward", [float("nan"), float("inf"), -0.1, 1.5, "1", True])
def test_bad_rewards_are_400_and_change_nothing(cls, reward):
    r = cls(n_branches=2, seed=0)
    before = json.dumps(r.state())
    with pytest.raises(BadRequest, match="reward"):
        r.learn(feedback(0, reward))
    with pytest.raises(BadRequest, match="reward"):
        r.send_feedback(ONE_ROW, [], reward, None, routing=0)
    assert json.dumps(r.state()) == before


@pytest.mark.parametrize("cls", BANDITS)
def test_missing_reward_is_400(cls):
    r = cls(n_branches=2, seed=0)
    with pytest.raises(BadRequest, match="reward: missing"):
        r.learn(feedback(0, 0.0, reward_given=False))
    assert r.pulls == [0.0, 0.0]


@pytest.mark.parametrize("cls", BANDITS)
@pytest.mark.parametrize("routing", [None, -1, -2, 2, 99])
def test_unattributable_feedback_is_400_not_a_crash(cls, routing):
    r = cls(n_branches=2, seed=0)
    with pytest.raises(BadRequest, match="routing"):
        r.send_feedback(ONE_ROW, [], 1.0, None, routing=routing)  # Seldon's crashed on None
    assert r.pulls == [0.0, 0.0]


def test_duplicate_puid_is_applied_once_and_memory_is_bounded():
    r = ThompsonSampling(n_branches=2, seed=0, dedupe=3)
    for _ in range(5):
        r.learn(feedback(0, 1.0, puid="p1"))
    assert r.pulls[0] == 1 and r.duplicates == 4
    for p in ("p2", "p3", "p4"):  # p1 falls out of the remembered window
        r.learn(feedback(0, 1.0, puid=p))
    r.learn(feedback(0, 1.0, puid="p1"))
    assert r.pulls[0] == 5 and len(r._seen) == 3


def test_feedback_without_puid_is_applied_each_time():
    r = EpsilonGreedy(n_branches=2, seed=0)
    for _ in range(3):
        r.learn(feedback(1, 1.0))
    assert r.pulls[1] == 3


@pytest.mark.parametrize("cls", BANDITS)
def test_seed_zero_is_honoured_and_generators_are_per_instance(cls):
    def stream(seed):
        r = cls(n_branches=5, seed=seed)
        out = []
        for i in range(200):
            arm = r.route(ONE_ROW, [])
            out.append(arm)
            r.send_feedback(ONE_ROW, [], float(i % 3 == 0), None, routing=arm)
        return out

    first = stream(0)
    np.random.seed(1)  # the global generator plays no part
    assert stream(0) == first
    assert stream(1) != first  # Seldon's `if seed:` ignored 0, so 0 and None were alike


# Python >= 3.12 warns of any fork in a multi-threaded process: the in-process servers'
# loop, if another test started it, is such a thread (the children touch none of it).
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded, use of fork:DeprecationWarning")
def test_forked_workers_draw_different_streams():
    r = ThompsonSampling(n_branches=10, seed=7)
    r.route(ONE_ROW, [])  # the parent has draws made ahead: a child must not replay them
    read, write = os.pipe()
    pids = []
    for _ in range(2):
        pid = os.fork()
        if pid == 0:  # child: report 50 routes and leave at once
            os.write(write, (json.dumps([r.route(ONE_ROW, []) for _ in range(50)]) + "\n").encode())
            os._exit(0)
        pids.append(pid)
    for pid in pids:
        os.waitpid(pid, 0)
    os.close(write)
    with os.fdopen(read) as f:
        a, b = [json.loads(line) for line in f.read().splitlines()]
    assert a != b


@pytest.mark.parametrize("cls", BANDITS)
def test_eight_threads_of_feedback_end_with_exact_counts(cls):
    r = cls(n_branches=4, seed=0)

    def send(t):
        for i in range(10_000):
            r.send_feedback(ONE_ROW, [], 1.0 if i % 2 else 0.0, None, routing=t % 4)

    threads = [threading.Thread(target=send, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert r.pulls == [20_000.0] * 4 and r.successes == [10_000.0] * 4


@pytest.mark.parametrize("cls", BANDITS)
def test_route_tags_carry_arm_name_and_propensity(cls):
    r = cls(n_branches=3, seed=0, branch_names="a:b:c")
    d = r.decide(Request())
    assert d.tags["route"] == d.child and d.tags["branch"] == "abc"[d.child]
    assert 0 < d.tags["propensity"] <= 1


def test_epsilon_greedy_propensity_is_exact():
    r = EpsilonGreedy(n_branches=4, epsilon=0.2, seed=0)
    r.send_feedback(ONE_ROW, [], 1.0, None, routing=2)  # arm 2 is now the greedy arm
    seen = {}
    for _ in range(4000):
        d = r.decide(Request())
        seen[d.child] = d.tags["propensity"]
    assert seen[2] == pytest.approx(0.8 + 0.05) and seen[0] == pytest.approx(0.05)


def test_thompson_propensity_estimate_matches_choice_frequency():
    r = ThompsonSampling(n_branches=3, seed=3)
    for arm, (s, n) in enumerate([(30, 60), (33, 60), (20, 60)]):
        r.send_feedback(np.zeros((n, 1)), [], s / n, None, routing=arm)
    p = r.estimate_propensities(20000)
    counts = np.bincount([r.decide(Request()).child for _ in range(6000)], minlength=3)
    assert abs(p.sum() - 1) < 1e-9
    assert np.abs(counts / 6000 - p).max() < 0.03


def test_epsilon_greedy_explores_all_arms_and_works_with_one():
    r = EpsilonGreedy(n_branches=3, epsilon=1.0, seed=0)
    r.send_feedback(ONE_ROW, [], 1.0, None, routing=0)
    counts = np.bincount([r.route(ONE_ROW, []) for _ in range(6000)], minlength=3)
    assert stats.chisquare(counts).pvalue > 0.001  # the greedy arm is explored too
    one = EpsilonGreedy(n_branches=1, epsilon=0.5, seed=0)
    assert {one.route(ONE_ROW, []) for _ in range(50)} == {0}


def test_ties_break_at_random():
    r = EpsilonGreedy(n_branches=4, epsilon=0.0, seed=0)
    assert len({r.route(ONE_ROW, []) for _ in range(200)}) == 4


def test_min_and_max_share_guard_rails():
    r = EpsilonGreedy(n_branches=4, epsilon=0.0, seed=0, min_share=0.05)
    r.send_feedback(ONE_ROW, [], 1.0, None, routing=1)
    counts = np.bincount([r.route(ONE_ROW, []) for _ in range(8000)], minlength=4) / 8000
    assert counts.min() > 0.04
    capped = EpsilonGreedy(n_branches=4, epsilon=0.0, seed=0, max_share=0.5)
    capped.send_feedback(ONE_ROW, [], 1.0, None, routing=1)
    shares = np.bincount([capped.route(ONE_ROW, []) for _ in range(8000)], minlength=4) / 8000
    assert 0.45 < shares[1] < 0.55


@pytest.mark.parametrize("drift", [{"discount": 0.99}, {"window": 200}])
def test_discount_or_window_follow_a_change_of_best_arm(drift):
    def share_of_new_best(**kw):
        r = ThompsonSampling(n_branches=2, seed=5, **kw)
        rng = np.random.default_rng(0)
        chosen = []
        for t in range(4000):
            means = (0.8, 0.2) if t < 2000 else (0.2, 0.8)
            arm = r.route(ONE_ROW, [])
            chosen.append(arm)
            r.send_feedback(ONE_ROW, [], float(rng.random() < means[arm]), None, routing=arm)
        return np.mean(np.array(chosen[2000:3000]) == 1)  # the thousand routes after the change

    assert share_of_new_best(**drift) > 0.8 > share_of_new_best()


@pytest.mark.parametrize("cls", BANDITS)
def test_state_is_versioned_json(cls):
    r = cls(n_branches=2, seed=0, branch_names="x:y")
    r.send_feedback(ONE_ROW, [], 0.5, None, routing=1)
    state = json.loads(json.dumps(r.state()))
    assert state["version"] == 1 and state["arms"] == ["x", "y"] and state["pulls"] == [0.0, 1.0]


@pytest.mark.parametrize("cls", BANDITS)
@pytest.mark.parametrize("kwargs", [{}, {"n_branches": 0}, {"n_branches": 2, "discount": 1.5},
                                    {"n_branches": 2, "window": 0}, {"n_branches": 4, "min_share": 0.5},
                                    {"n_branches": 2, "discount": 0.9, "window": 10}])
def test_bad_configuration_is_refused(cls, kwargs):
    with pytest.raises(ConfigError):
        cls(**kwargs)


@pytest.mark.parametrize("cls, means", [(ThompsonSampling, (0.3, 0.7, 0.5)), (UCB1, (0.3, 0.7, 0.5)),
                                        (EpsilonGreedy, (0.3, 0.7, 0.5))])
def test_learns_the_best_arm(cls, means):
    r = cls(n_branches=3, seed=1)
    rng = np.random.default_rng(2)
    chosen = []
    for _ in range(3000):
        arm = r.route(ONE_ROW, [])
        chosen.append(arm)
        r.send_feedback(ONE_ROW, [], float(rng.random() < means[arm]), None, routing=arm)
    assert np.mean(np.array(chosen[-1000:]) == 1) > 0.8


def test_gaussian_thompson_takes_real_rewards():
    r = ThompsonSampling(n_branches=2, reward_model="gaussian", seed=0)
    rng = np.random.default_rng(0)
    for _ in range(500):
        arm = r.route(ONE_ROW, [])
        r.send_feedback(ONE_ROW, [], float(rng.normal([3.0, 5.0][arm], 2.0)), None, routing=arm)
    assert r.mean(1) == pytest.approx(5.0, abs=0.5) and r.pulls[1] > r.pulls[0]


def test_lin_ucb_learns_which_arm_suits_which_context():
    r = LinUCB(n_branches=2, seed=0, alpha=0.5)
    rng = np.random.default_rng(0)
    contexts = [np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]])]
    for _ in range(600):
        c = int(rng.integers(2))
        arm = r.route(contexts[c], [])
        r.send_feedback(contexts[c], [], float(arm == c), None, routing=arm)
    assert [r.route(contexts[c], []) for c in (0, 1)] == [0, 1]


def test_lin_ucb_refuses_a_change_of_feature_width():
    r = LinUCB(n_branches=2, seed=0)
    r.route(np.zeros((1, 3)), [])
    before = json.dumps(r.state())
    with pytest.raises(BadRequest, match="expected 3 numeric columns"):
        r.route(np.zeros((1, 4)), [])
    with pytest.raises(BadRequest, match="expected 3 numeric columns"):
        r.send_feedback(np.zeros((1, 4)), [], 1.0, None, routing=0)
    with pytest.raises(BadRequest, match="numeric"):
        r.route("text", [])
    assert json.dumps(r.state()) == before


def test_lin_ucb_bounds_its_width_from_config_and_from_a_first_request():
    with pytest.raises(ConfigError, match="^n_features: at most 1,024 columns, got 100,000"):
        LinUCB(n_branches=2, n_features=100_000)
    r = LinUCB(n_branches=2, seed=0)  # its width comes from the first request: not one of 100,000 columns
    before = json.dumps(r.state())
    with pytest.raises(BadRequest, match="^features: at most 1,024 numeric columns per row, got 100,000"):
        r.route(np.zeros((1, 100_000)), [])
    assert json.dumps(r.state()) == before and r.n_features is None


def test_lin_ucb_refuses_features_that_would_poison_the_model():
    r = LinUCB(n_branches=2, seed=0)
    r.send_feedback(np.array([[1.0, 1.0]]), [], 1.0, None, routing=0)
    before = json.dumps(r.state())
    for huge in (1e200, 1e7):
        with pytest.raises(BadRequest, match="features"):
            r.send_feedback(np.array([[huge, 1.0]]), [], 1.0, None, routing=0)
    assert json.dumps(r.state()) == before
    assert r.route(np.array([[1.0, 1.0]]), []) in (0, 1)


def test_gaussian_thompson_tries_untried_arms_at_random_with_honest_propensity():
    r = ThompsonSampling(n_branches=3, reward_model="gaussian", seed=4)
    firsts = {r.decide(Request()).child for _ in range(60)}
    assert firsts == {0, 1, 2}  # not always the lowest index
    assert r.decide(Request()).tags["propensity"] == pytest.approx(1 / 3)
    r.send_feedback(ONE_ROW, [], 2.0, None, routing=0)
    d = r.decide(Request())
    assert d.child in (1, 2) and d.tags["propensity"] == pytest.approx(0.5)


@pytest.mark.parametrize("arm_count", [2, 10])
def test_thompson_routes_follow_feedback_at_once(arm_count):
    """Draws are made ahead in blocks; an arm's feedback must still count from the very
    next route, for the arm fed back and for one fed back earlier."""
    r = ThompsonSampling(n_branches=arm_count, seed=1)
    for arm in range(arm_count):  # every arm mediocre, and a block drawn from that
        r.send_feedback(np.zeros((40, 1)), [], 0.5, None, routing=arm)
    r.route(ONE_ROW, [])
    r.send_feedback(np.zeros((400, 1)), [], 0.95, None, routing=1)
    assert [r.route(ONE_ROW, []) for _ in range(20)] == [1] * 20
    r.send_feedback(np.zeros((2000, 1)), [], 0.0, None, routing=1)  # arm 1 collapses...
    r.send_feedback(ONE_ROW, [], 1.0, None, routing=0)  # ...while another arm is fed back
    assert 1 not in [r.route(ONE_ROW, []) for _ in range(20)]


def test_thompson_propensity_is_never_zero():
    r = ThompsonSampling(n_branches=2, seed=0)
    for _ in range(60):
        r.send_feedback(ONE_ROW, [], 1.0, None, routing=0)
        r.send_feedback(ONE_ROW, [], 0.0, None, routing=1)
    assert min(r.estimate_propensities()) > 0


@pytest.mark.parametrize("cls", BANDITS)
def test_feedback_for_an_empty_batch_is_400_and_changes_nothing(cls):
    r = cls(n_branches=2, seed=0, window=5)
    before = json.dumps(r.state())
    with pytest.raises(BadRequest, match="no rows"):
        r.learn(feedback(0, 1.0, rows=0, puid="p"))
    assert json.dumps(r.state()) == before
    r.learn(feedback(0, 1.0, puid="p"))  # the puid was not used up
    assert r.pulls[0] == 1


@pytest.mark.parametrize("cls", BANDITS + [LinUCB])
@pytest.mark.parametrize("features, message", [
    # rows of nothing: 2**31 - 1 pulls from a 100-byte request
    (np.zeros((2**31 - 1, 0)), "no rows"),
    (np.zeros((3, 0)), "no rows"),
    (np.zeros((10_001, 2)), "10001 rows in one request; a feedback counts at most 10000"),
], ids=["int32-max-empty-rows", "empty-rows", "over-the-bound"])
def test_rows_come_from_data_present_within_a_bound(cls, features, message):
    r = cls(n_branches=2, seed=0)
    if cls is LinUCB and message == "no rows":
        message = "features: lin-ucb needs numeric tensor data"  # its context check comes first
    before = json.dumps(r.state())
    request = Request(features=features, kind="tensor")
    with pytest.raises(BadRequest, match=message):
        r.learn(Feedback(request, {}, 1.0, None, routing=0))
    with pytest.raises(BadRequest, match=message):  # Seldon's entry point, its short path included
        r.send_feedback(features, [], 1.0, None, routing=0)
    assert json.dumps(r.state()) == before


@pytest.mark.parametrize("discount", [None, 0.9])
def test_epsilon_greedy_tied_best_set_matches_a_full_scan(discount):
    rng = np.random.default_rng(0)
    r = EpsilonGreedy(n_branches=5, seed=0, discount=discount)
    for _ in range(2000):
        r.send_feedback(ONE_ROW, [], float(rng.choice([0.0, 0.5, 1.0])), None, routing=int(rng.integers(5)))
        means = r.means()
        assert sorted(r._greedy) == [i for i, m in enumerate(means) if m == max(means)]
