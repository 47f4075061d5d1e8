"""The Seldon-style adapter: plain classes (no Router base) served as they are."""

import pytest

from seldon_routers import Feedback, Request

from seldon_routers.adapter import SeldonStyle, as_router, class_name


class PlainSeldon:
    """No Router base: what a user of Seldon's wrapper already has."""

    def __init__(self):
        self.calls = []

    def route(self, features, feature_names):
        return 1

    def tags(self):
        return {"plain": True}


class PlainLearner(PlainSeldon):
    n_children = 2

    def route(self, features, feature_names, meta=None):
        self.calls.append(meta)
        return 0

    def send_feedback(self, features, feature_names, reward, truth, routing=None):
        self.calls.append((reward, routing))

    def load_state(self, state):
        self.calls.append(state)


def test_the_adapter_passes_meta_only_to_a_route_that_takes_it_and_feedback_only_to_a_learner():
    meta = {"puid": "p", "tags": {}, "routing": {}, "requestPath": {}}
    plain, learner = as_router(PlainSeldon()), as_router(PlainLearner())
    assert isinstance(plain, SeldonStyle) and as_router(learner) is learner
    assert plain.decide(Request(meta=meta)) == 1 and learner.decide(Request(meta=meta)) == 0
    assert learner.inner.calls == [meta]
    assert not plain.learns and plain.learn(Feedback(Request(), {}, 1.0, None, routing=0)) is None
    assert learner.learns and learner.n_children == 2
    learner.learn(Feedback(Request(), {}, 0.5, None, routing=1))
    assert learner.inner.calls[-1] == (0.5, 1)
    assert class_name(plain) == "PlainSeldon" and plain.describe() == "PlainSeldon"


def test_the_adapter_has_exactly_the_hooks_the_plain_class_has():
    plain, learner = as_router(PlainSeldon()), as_router(PlainLearner())
    assert plain.has_hook("tags") and plain.tags() == {"plain": True}
    assert not plain.has_hook("metrics") and plain.metrics() == []
    assert not plain.restores and learner.restores
    with pytest.raises(NotImplementedError):
        plain.load_state({})
    learner.load_state({"s": 1})
    assert learner.inner.calls[-1] == {"s": 1}
