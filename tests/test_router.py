"""The base class contract: what `route` is called with, and what the server may assume."""

import numpy as np
import pytest

from seldon_routers import ALL_CHILDREN, NO_CHILDREN, Decision, Request, Router


class Plain(Router):
    def route(self, features, feature_names):
        return 1


class WithMeta(Router):
    def route(self, features, feature_names, meta=None):
        return len(meta["tags"])


class WithKwargs(Router):
    def route(self, features, feature_names, **kwargs):
        self.seen = kwargs
        return 0


class Learner(Router):
    def route(self, features, feature_names, **kwargs):
        return 0

    def send_feedback(self, features, feature_names, reward, truth, routing=None):
        self.got = (reward, routing)


def test_constants_match_seldon():
    assert (ALL_CHILDREN, NO_CHILDREN) == (-1, -2)


def test_route_gets_only_the_keywords_its_signature_takes():
    req = Request(features=np.zeros((1, 2)), meta={"puid": "p", "tags": {"a": 1}, "routing": {}, "requestPath": {}})
    assert Plain().decide(req) == 1
    assert WithMeta().decide(req) == 1
    r = WithKwargs()
    r.decide(req)
    assert r.seen["meta"]["puid"] == "p" and r.seen["request"] is req


def test_learns_is_true_only_when_send_feedback_is_overridden():
    assert not Plain().learns
    assert Learner().learns


def test_learn_passes_seldon_arguments():
    from seldon_routers import Feedback

    r = Learner()
    r.learn(Feedback(Request(), {}, 0.5, None, routing=0))
    assert r.got == (0.5, 0)


def test_decision_is_a_light_value():
    d = Decision(2, {"why": "x"})
    assert d.child == 2 and d.tags == {"why": "x"}
    assert Decision(1).tags is None


def test_request_rows_counts_batch_rows_only_for_arrays():
    assert Request(features=np.zeros((5, 2)), kind="ndarray").rows == 5
    assert Request(features="text", kind="strData").rows == 1
    assert Request().rows == 1


def test_unimplemented_route_says_which_class():
    class Empty(Router):
        pass

    with pytest.raises(NotImplementedError, match="Empty"):
        Empty().route(None, [])
