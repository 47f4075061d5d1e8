"""The base class contract: what `route` is called with, and what the server may assume."""

import json

import numpy as np
import pytest

from seldon_routers import ALL_CHILDREN, NO_CHILDREN, Decision, Feedback, Request, Router
from seldon_routers.errors import BadRequest
from seldon_routers.request import MAX_ROWS, rows_of, too_deep


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


def test_rows_come_from_values_present():
    """A tensor of shape [2147483647, 0] is no data at all: it counted 2**31 - 1 rows, and a
    bandit credited that many pulls to one arm."""
    assert Request(features=np.zeros((2**31 - 1, 0)), kind="tensor").rows == 0
    assert Request(features=np.zeros((3, 0)), kind="tensor").rows == 0
    assert Request(features=np.zeros((0,)), kind="ndarray").rows == 0
    assert Request(features=np.float64(2.0), kind="tftensor").rows == 1  # a scalar is one row
    assert rows_of(np.zeros((2**31 - 1, 0))) == 0 and rows_of([1, 2]) == 1


def test_more_rows_than_the_bound_is_a_bad_request_naming_the_field():
    assert Request(features=np.zeros((MAX_ROWS, 1)), kind="ndarray").rows == MAX_ROWS
    big = Request(features=np.zeros((MAX_ROWS + 1, 1)), kind="tftensor")
    with pytest.raises(BadRequest, match=rf"^data.tftensor: {MAX_ROWS + 1} rows in one request; a feedback "
                                         rf"counts at most {MAX_ROWS}"):
        big.rows
    with pytest.raises(BadRequest, match=r"^request.data.tftensor: "):
        Feedback(big, {}, 1.0, None, routing=0).rows
    with pytest.raises(BadRequest, match=r"^features: "):
        rows_of(np.zeros((MAX_ROWS + 1,)))


def test_too_deep_measures_nesting_without_recursion():
    deep = []
    for _ in range(4999):  # 5000 lists: deeper than any recursive walk survives
        deep = [deep]
    assert too_deep(deep) and too_deep(deep, 4999) and not too_deep(deep, 5000)
    assert not too_deep({"a": [1, {"b": 2}]}, 3) and too_deep({"a": [1, {"b": [2]}]}, 3)
    assert not too_deep("x" * 10, 0) and too_deep([], 0)


def test_request_repr_survives_a_deep_tag():
    deep = json.loads("[" * 900 + "]" * 900)
    assert "'t': [[...]]" in repr(Request(meta={"puid": "", "tags": {"t": deep}, "routing": {}, "requestPath": {}}))


def test_unimplemented_route_says_which_class():
    class Empty(Router):
        pass

    with pytest.raises(NotImplementedError, match="Empty"):
        Empty().route(None, [])
