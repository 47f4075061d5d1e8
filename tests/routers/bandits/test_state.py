"""The bandits' state protocol, which the file and redis stores build on: `state()` and
`load_state()` (a snapshot, restored exactly, anything else refused without a change),
`stats()`, `delta()` and `set_stats()` (additive statistics: replicas merge by adding
increments), `share_updates()` and `not_additive()`.

Rewards and features are multiples of 1/4, so every sum is exact in floating point and
the statistics can be compared with ==, whatever order they were added in."""

from __future__ import annotations

import copy
import json
import math

import numpy as np
import pytest

from seldon_routers import BadRequest, ConfigError, EpsilonGreedy, Feedback, LinUCB, Request, ThompsonSampling, UCB1

POLICIES = {
    "epsilon-greedy": lambda seed=0, **kw: EpsilonGreedy(n_branches=3, epsilon=0.2, epsilon_decay=0.999,
                                                             seed=seed, **kw),
    "thompson-bernoulli": lambda seed=0, **kw: ThompsonSampling(n_branches=3, seed=seed, **kw),
    "thompson-gaussian": lambda seed=0, **kw: ThompsonSampling(n_branches=3, reward_model="gaussian", seed=seed,
                                                               **kw),
    "ucb1": lambda seed=0, **kw: UCB1(n_branches=3, seed=seed, **kw),
    "lin-ucb": lambda seed=0, **kw: LinUCB(n_branches=3, n_features=3, seed=seed, **kw),
}
NAMES = list(POLICIES)
# Derived from the statistics (so equal up to rounding once rebuilt), or a Monte Carlo
# estimate of the sampler's own recent draws (Thompson's propensity: not restored, it is
# re-estimated from the restored posteriors as routes come).
DERIVED = {"means", "index", "alpha", "beta", "theta", "a_inv", "b"}
NOT_RESTORED = {"propensity"}


def features(rng, rows=1) -> np.ndarray:
    return rng.integers(-4, 5, size=(rows, 3)) / 4.0  # exact in binary


def request(x, puid="") -> Request:
    return Request(x, kind="ndarray", meta={"puid": puid, "tags": {}, "routing": {}, "requestPath": {}})


def feedback(arm, reward, x, puid="") -> Feedback:
    return Feedback(request(x, puid), {"puid": puid}, reward, None, routing=arm)


def train(router, steps, seed=1, route=True, puids=True, start=0):
    """`steps` feedbacks (batches of 1 to 3 rows, rewards in quarters), each after a route
    when `route` (else to an arm drawn here, so the router's own generator is untouched);
    every 7th repeats the previous puid (a duplicate, applied once). `start`: draw the
    first steps of the sequence but apply only those from `start` on."""
    rng = np.random.default_rng(seed)
    for step in range(steps):
        x = features(rng, int(rng.integers(1, 4)))
        arm = router.decide(request(x)).child if route else int(rng.integers(router.n_children))
        reward = int(rng.integers(0, 5)) / 4.0
        puid = "" if not puids else f"p-{seed}-{step - 1 if step % 7 == 6 else step}"
        if step >= start:
            router.learn(feedback(arm, reward, x, puid))
    return router


def roundtrip(state: dict) -> dict:
    return json.loads(json.dumps(state, allow_nan=False))  # what a file or GET /state carries


def assert_same_state(restored: dict, original: dict, exact: set) -> None:
    assert set(restored) == set(original)
    for key, value in original.items():
        if key in NOT_RESTORED:
            continue
        if key in DERIVED:
            assert np.allclose(np.asarray(restored[key], dtype=float), np.asarray(value, dtype=float),
                               rtol=1e-9, atol=1e-12, equal_nan=True), key
        else:
            assert restored[key] == value, key
    assert exact <= set(original) - DERIVED


@pytest.mark.parametrize("name", NAMES)
def test_restored_state_is_identical(name):
    original = train(POLICIES[name](seed=3), 40)
    assert original.duplicates > 0 and sum(original.routes) == 40
    snapshot = roundtrip(original.state())
    restored = POLICIES[name](seed=99)
    restored.load_state(snapshot)
    stats = set(original.stats()) | {"duplicates", "routes"}
    assert_same_state(restored.state(), original.state(), stats)
    assert restored.stats() == original.stats()
    assert restored.means() == original.means()
    # and a restored router exports what it was given: restoring twice changes nothing
    again = POLICIES[name](seed=5)
    again.load_state(roundtrip(restored.state()))
    assert again.stats() == original.stats() and again.duplicates == original.duplicates


@pytest.mark.parametrize("name", NAMES)
def test_restored_router_decides_as_the_original(name):
    """Same seed, same statistics: the same decisions, route after route, feedback between.
    The original learned without routing, so both generators start untouched; a restore
    that left posteriors, means, best-arm sets or LinUCB's inverse stale decides otherwise."""
    original = train(POLICIES[name](seed=7), 30, route=False)
    restored = POLICIES[name](seed=7)
    restored.load_state(roundtrip(original.state()))
    rng = np.random.default_rng(11)
    chosen = []
    for step in range(300):
        x = features(rng)
        a, b = original.decide(request(x)).child, restored.decide(request(x)).child
        assert a == b, f"step {step}"
        chosen.append(a)
        if step % 30 == 29:  # under 50 feedbacks in all: the Gaussian sampler's re-estimate never draws
            reward = int(rng.integers(0, 5)) / 4.0
            original.learn(feedback(a, reward, x))
            restored.learn(feedback(a, reward, x))
    assert len(set(chosen)) > 1 or name in ("epsilon-greedy",)  # a real sequence, not one arm throughout
    assert restored.stats()["pulls"] == original.stats()["pulls"]


def _refusals(name: str, good: dict) -> list:
    """(label, bad state, the field its error must name)."""
    other_policy = {"epsilon-greedy": "ucb1", "ucb1": "epsilon-greedy", "lin-ucb": "ucb1",
                    "thompson-bernoulli": "thompson-gaussian", "thompson-gaussian": "thompson-bernoulli"}[name]
    cases = [
        ("another policy", roundtrip(train(POLICIES[other_policy](), 5).state()),
         "reward_model" if name.startswith("thompson") else "policy"),
        ("policy renamed", {**good, "policy": "ab-test"}, "policy"),
        ("other arms", {**good, "arms": ["a", "b", "c"]}, "arms"),
        ("fewer arms", {**good, "arms": good["arms"][:2]}, "arms"),
        ("another version", {**good, "version": 2}, "version"),
        ("no version", {k: v for k, v in good.items() if k != "version"}, "version"),
        ("not an object", [good], "version"),
        ("bad duplicates", {**good, "duplicates": "many"}, "duplicates"),
        ("infinite duplicates", {**good, "duplicates": math.inf}, "duplicates"),
    ]
    for stat in POLICIES[name]().stats():
        cases.append((f"missing {stat}", {k: v for k, v in good.items() if k != stat}, stat))
        for bad in (math.nan, math.inf, -math.inf, "1", None):
            values = list(good[stat]) if isinstance(good[stat], list) else list(np.ravel(good[stat]))
            values[-1] = bad
            cases.append((f"{stat} holds {bad!r}", {**good, stat: values}, stat))
        cases.append((f"{stat} too short", {**good, stat: list(good[stat])[:-1]}, stat))
        cases.append((f"{stat} not a list", {**good, stat: 5}, stat))
    for stat in ("pulls", "routes"):  # counts: a negative one (a hand-edited file) is refused
        values = list(good[stat])
        values[0] = -1.0
        cases.append((f"negative {stat}", {**good, stat: values}, stat))
    if name != "lin-ucb" and name != "thompson-gaussian":  # rewards in [0, 1]: successes <= pulls
        values = list(good["successes"])
        values[0] = good["pulls"][0] + 5
        cases.append(("more successes than pulls", {**good, "successes": values}, "successes"))
    if name == "lin-ucb":
        narrow = LinUCB(n_branches=3, n_features=2, seed=0)
        narrow.learn(feedback(0, 1.0, np.ones((1, 2))))
        cases.append(("another feature width", roundtrip(narrow.state()), "n_features"))
    return cases


@pytest.mark.parametrize("name", NAMES)
def test_load_state_refuses_what_is_not_its_own_and_changes_nothing(name):
    good = roundtrip(train(POLICIES[name](seed=2), 20).state())
    target = train(POLICIES[name](seed=4), 10, seed=8)  # has learned something a refusal must keep
    for label, bad, field in _refusals(name, good):
        before = json.dumps(target.state())
        with pytest.raises(ConfigError) as refused:
            target.load_state(copy.deepcopy(bad))
        assert field in refused.value.message, (label, refused.value.message)
        assert json.dumps(target.state()) == before, label
    target.load_state(good)  # and the good one still loads
    assert target.stats() == {stat: good[stat] for stat in target.stats()}


def test_lin_ucb_without_a_width_restores_its_own_snapshot():
    """A lin-ucb without n_features that never saw a request snapshots n_features null;
    restoring that (a restart before the first request) must not refuse to start."""
    fresh = LinUCB(n_branches=2, seed=0)
    restored = LinUCB(n_branches=2, seed=0)
    restored.load_state(roundtrip(fresh.state()))
    assert restored.state() == fresh.state()
    learned = LinUCB(n_branches=2, seed=0)
    learned.learn(feedback(1, 0.5, np.ones((2, 4))))
    restored.load_state(roundtrip(learned.state()))  # the width comes with the snapshot
    assert restored.n_features == 4 and restored.stats() == learned.stats()
    refusing = LinUCB(n_branches=2, seed=0)
    with pytest.raises(ConfigError, match="state.xx"):
        refusing.load_state({**roundtrip(learned.state()), "xx": [math.nan] * 32})
    assert refusing.n_features is None  # a refused snapshot does not fix the width either


def _add(stats: dict, deltas: list) -> dict:
    out = {name: list(values) for name, values in stats.items()}
    for delta in deltas:
        for name, changes in delta.items():
            for i, amount in changes.items():
                out[name][i] += amount
    return out


@pytest.mark.parametrize("name", NAMES)
def test_deltas_add_up_to_the_change_of_the_statistics(name):
    """What the redis store relies on: the increments sent for each feedback, summed,
    are exactly how much the statistics moved; a duplicate sends none; Seldon's
    send_feedback entry point sends them too."""
    router = POLICIES[name](seed=0)
    train(router, 5)
    sent = []

    def forward(delta, puid):
        assert router.lock.locked()  # under the router's lock: in the order applied
        sent.append((copy.deepcopy(delta), puid))

    router.share_updates(forward)
    before = router.stats()
    train(router, 40, seed=5)  # 40 feedbacks, 5 of them duplicates
    rng = np.random.default_rng(3)
    for _ in range(5):  # Seldon's entry point (no puid)
        router.send_feedback(features(rng, 2), [], 0.75, None, routing=int(rng.integers(3)))
    after = router.stats()
    assert len(sent) == 40 - 40 // 7 + 5
    assert [p for _, p in sent[-5:]] == [None] * 5 and all(p and p.startswith("p-5-") for _, p in sent[:-5])
    moved = _add(before, [d for d, _ in sent])
    routes = moved.pop("routes")
    assert routes == before["routes"]  # routes are no delta: a store counts them itself
    assert moved == {k: v for k, v in after.items() if k != "routes"}


@pytest.mark.parametrize("name", NAMES)
def test_set_stats_adds_the_pending_deltas_and_rebuilds(name):
    """A store sets Redis' sums plus what it has not sent yet: the router must end where
    one that learned everything itself is, posteriors and means included."""
    whole = train(POLICIES[name](seed=0), 30, route=False, puids=False)
    first = train(POLICIES[name](seed=0), 20, route=False, puids=False)  # the same first 20 feedbacks
    sums, means = first.stats(), first.means()
    pending = []
    first.share_updates(lambda delta, puid: pending.append(delta))
    train(first, 30, route=False, puids=False, start=20)  # and the last 10, as increments
    assert len(pending) == 10 and first.stats() == whole.stats()
    target = POLICIES[name](seed=0)
    calls = []

    def unsent():
        assert target.lock.locked()
        calls.append(1)
        return pending

    target.set_stats(sums, unsent)
    assert calls == [1]
    assert target.stats() == whole.stats()
    assert_same_state(target.state(), whole.state(), set())
    # without pending: exactly the sums given
    target.set_stats(sums)
    assert target.stats() == sums and target.means() == means


@pytest.mark.parametrize("name", NAMES)
def test_set_stats_refuses_bad_sums_and_changes_nothing(name):
    router = train(POLICIES[name](seed=0), 10)
    before = json.dumps(router.state())
    good = router.stats()
    for bad in ({"pulls": [1.0, math.nan, 0.0]}, {"pulls": [1.0]}, {"nope": [1.0]}, {"successes": 3}):
        with pytest.raises(ConfigError):
            router.set_stats({**good, **bad})
        assert json.dumps(router.state()) == before


@pytest.mark.parametrize("name", [n for n in NAMES if n != "lin-ucb"])
def test_not_additive_names_discount_and_window(name):
    assert POLICIES[name]().not_additive() is None
    assert POLICIES[name](discount=1.0).not_additive() is None  # 1 forgets nothing
    assert "discount" in POLICIES[name](discount=0.9).not_additive()
    assert "window" in POLICIES[name](window=10).not_additive()


def test_lin_ucb_is_additive():
    assert POLICIES["lin-ucb"]().not_additive() is None


def test_lin_ucb_feedback_that_would_overflow_changes_no_count():
    r = LinUCB(n_branches=2, n_features=2, ridge=1e-300, seed=0)  # a tiny ridge: A^-1 near 1e300
    before = json.dumps(r.state())
    with pytest.raises(BadRequest, match="overflow"):
        r.learn(feedback(0, 1.0, np.full((1, 2), 1e3)))
    assert json.dumps(r.state()) == before
