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


# --- one entry point per call, bridged to the other form ---------------------------------

class Decider(Router):
    """The rich form only."""
    n_children = 3

    def decide(self, request):
        self.seen = request
        return Decision(np.int64(2), {"why": "rich"})  # a numpy integer, as numpy code returns


class Learner2(Router):
    def decide(self, request):
        return 0

    def learn(self, feedback):
        self.got = feedback


def test_a_router_writing_decide_serves_seldon_s_route_with_a_python_int():
    r = Decider()
    child = r.route(np.zeros((2, 3)), ["a", "b", "c"], meta={"puid": "p1", "tags": {"t": 1}, "routing": {},
                                                              "requestPath": {}})
    assert child == 2 and type(child) is int  # Seldon's wrapper refuses anything but int
    req = r.seen
    assert req.kind == "ndarray" and req.rows == 2 and req.feature_names == ["a", "b", "c"]
    assert req.puid == "p1" and req.meta["tags"] == {"t": 1}


@pytest.mark.parametrize("features, kind", [
    ("hello", "strData"), (b"\x00\x01", "binData"), ({"model": "m"}, "jsonData"), ([1, "a"], "jsonData"),
    (None, ""), (np.zeros((1, 1)), "ndarray")])
def test_the_request_view_of_seldon_s_arguments_tells_the_kind_as_the_wire_would(features, kind):
    r = Decider()
    r.route(features, [])
    assert r.seen.kind == kind and r.seen.features is features
    assert r.seen.payload is (features if kind not in ("ndarray", "") else None)


def test_a_bad_decision_through_the_bridge_is_the_router_s_failure():
    from seldon_routers.errors import RouterFailed

    class Wild(Router):
        n_children = 2

        def decide(self, request):
            return request.features

    with pytest.raises(RouterFailed, match="returned route 5, outside -2..1"):
        Wild().route(5, [])
    with pytest.raises(RouterFailed, match="a route must be an integer"):
        Wild().route("x", [])
    with pytest.raises(RouterFailed, match="a route must be an integer"):
        Wild().route(True, [])


def test_an_async_decide_is_awaited_under_seldon_s_synchronous_route():
    class Async(Router):
        async def decide(self, request):
            return Decision(1)

    assert Async().route(None, []) == 1


def test_an_async_decide_called_through_route_inside_a_running_loop_is_refused_cleanly(recwarn):
    import asyncio
    import gc

    from seldon_routers import RouterError

    class Async(Router):
        async def decide(self, request):
            return 1

    async def inside():
        with pytest.raises(RouterError, match="inside a running event loop"):
            Async().route(None, [])

    asyncio.run(inside())
    gc.collect()
    assert not [w for w in recwarn if "never awaited" in str(w.message)]


def test_a_router_writing_learn_serves_seldon_s_send_feedback():
    r = Learner2()
    assert r.learns
    r.send_feedback(np.zeros((4, 1)), ["x"], 0.25, "truth", routing=1)
    fb = r.got
    assert (fb.reward, fb.truth, fb.routing, fb.reward_given) == (0.25, "truth", 1, True)
    assert fb.request.rows == 4 and fb.request.kind == "ndarray" and fb.request.puid == ""
    r.send_feedback(None, [], None, None)  # no reward at all: the rich form can tell
    assert r.got.reward_given is False and r.got.routing is None


def test_a_router_that_does_not_learn_takes_feedback_as_a_no_op():
    assert not Plain().learns and not Decider().learns
    assert Decider().send_feedback(None, [], 1.0, None, routing=0) is None
    assert Decider().learn(Feedback(Request(), {}, 1.0, None, routing=0)) is None


def test_writing_neither_form_is_named_in_both():
    class Empty(Router):
        pass

    with pytest.raises(NotImplementedError, match="Empty must implement decide"):
        Empty().decide(Request())
    with pytest.raises(NotImplementedError, match="Empty must implement decide"):
        Empty().route(None, [])


def test_every_builtin_writes_one_form_per_call():
    """Built-ins are ordinary subclasses: the rich form for routing and feedback, with the
    bandits' measured fast paths (bench/bandits_speed.py) the only second forms."""
    import inspect

    from seldon_routers import registry
    from seldon_routers.routers.bandits.base import Bandit

    for name in registry.BUILTINS:
        cls = registry.resolve(name)
        assert cls._writes_decide, name
        fast = {"route", "send_feedback"} if issubclass(cls, Bandit) else set()
        for form in fast:  # Seldon's form written once, in the bandits' base class
            assert inspect.getmodule(getattr(cls, form)) is inspect.getmodule(Bandit), (name, form)
        assert cls._writes_route == ("route" in fast), name
        assert cls._writes_send_feedback == ("send_feedback" in fast), name
        assert not cls._writes_send_feedback or cls._writes_learn, name


# --- optional hooks: declared as no-ops, invisible to Seldon's hasattr() ----------------

def test_hooks_a_router_does_not_write_are_absent_for_seldon_s_hasattr_probes():
    from seldon_routers import ABTest

    r = ABTest()
    for hook in ("tags", "metrics", "health_status", "init_metadata"):
        assert not hasattr(r, hook), hook  # the wrapper would call it on every request
        assert not r.has_hook(hook)
        assert callable(getattr(Router, hook)) and getattr(Router, hook).__doc__  # declared, documented
    for hook in ("load", "close", "register_metrics", "state"):
        assert hasattr(r, hook)  # harmless no-ops the wrapper may call


def test_a_written_hook_is_visible_and_can_call_the_declared_one():
    class Tagged(Plain):
        def tags(self):
            return {**super().tags(), "mine": 1}

        def metrics(self):
            return super().metrics() + [{"type": "COUNTER", "key": "k", "value": 1}]

    r = Tagged()
    assert hasattr(r, "tags") and r.has_hook("tags") and r.tags() == {"mine": 1}
    assert r.metrics() == [{"type": "COUNTER", "key": "k", "value": 1}]
    assert not hasattr(r, "health_status")


def test_restores_is_true_only_for_a_router_writing_load_state():
    from seldon_routers import ABTest, ThompsonSampling

    assert ThompsonSampling(n_branches=2).restores and not ABTest().restores and not Plain().restores
