"""Property tests on every built-in router behind the DataPlane, in process (fast enough for
thousands of calls; test_bad_input_served.py shows the same defects through real servers).

Whatever a call carries, its answer is a success or the client's fault (4xx), never a 5xx;
a refused feedback changes no state; the feedback metrics keep a bounded set of labels; and
one accepted feedback teaches a bandit at most MAX_ROWS rows."""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest
from google.protobuf import json_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seldon_routers import ClassifierRouter
from seldon_routers.errors import RouterError
from seldon_routers.proto import prediction_pb2 as pb
from seldon_routers.registry import resolve
from seldon_routers.request import MAX_ROWS
from seldon_routers.server.dataplane import DataPlane

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
UNIT = "u"
RULES = {"children": ["a", "b"], "fallback": "a", "sticky_key": "tag:user",
         "rules": [{"match": {"tags": {"tier": {"prefix": "g"}}}, "to": "b"},
                   {"match": {"json": {"model": {"exact": "m"}, "n.0": {"present": True}}},
                    "to": [{"child": "a", "weight": 1}, {"child": "b", "weight": 1}]}]}
SCHEDULE = {"children": ["a", "b"], "default": "a", "sticky_key": "tag:user",
            "windows": [{"days": "mon-fri", "start": "00:00", "end": "24:00", "to": [{"child": "a", "weight": 1},
                                                                               {"child": "b", "weight": 1}]}]}
FIXED_CLOCK = 1_700_000_000.0  # canary and time-of-day: a refused call must not differ by the time it took


def builtins() -> dict:
    make = lambda name, **kw: resolve(name)(**kw)  # noqa: E731
    return {
        "thompson": make("thompson-sampling", n_branches=2, seed=0),
        "thompson-gaussian": make("thompson-sampling", n_branches=2, seed=0, reward_model="gaussian"),
        "epsilon-greedy": make("epsilon-greedy", n_branches=2, seed=0, window=50),
        "ucb1": make("ucb1", n_branches=2, discount=0.9),
        "lin-ucb": make("lin-ucb", n_branches=2, seed=0),
        "canary": make("canary", min_reward=0.5, sticky_key="tag:user", interval=3600, seed=0,
                       clock=lambda: FIXED_CLOCK),
        "canary-margin": make("canary", margin=0.1, reward_range="0:1", interval=3600, seed=0,
                              clock=lambda: FIXED_CLOCK),
        "ab-test": make("ab-test", weights="1:3", seed=0, sticky_key="tag:user"),
        "rules": make("rules", config=json.dumps(RULES), seed=0),
        "time-of-day": make("time-of-day", config=json.dumps(SCHEDULE), seed=0, clock=lambda: FIXED_CLOCK),
        "classifier": ClassifierRouter(model=lambda batch: batch.reshape(len(batch), -1) @ np.eye(4, dtype=np.float32),
                                       input_shape="4", class_to_child=[0, 0, 1, 1], branch_names="low:high",
                                       min_confidence=0.3, fallback=-1),
    }


NAMES = ["thompson", "thompson-gaussian", "epsilon-greedy", "ucb1", "lin-ucb", "canary", "canary-margin", "ab-test",
         "rules", "time-of-day", "classifier"]


@pytest.fixture(scope="module")
def planes():
    out = {}
    for name, router in builtins().items():
        dp = DataPlane(router, unit_id=UNIT)
        dp.load()
        out[name] = dp
    assert sorted(out) == sorted(NAMES)
    yield out
    for dp in out.values():
        getattr(dp.router, "close", lambda: None)()  # the classifier's batcher thread


# --- what a call may carry ---------------------------------------------------------------

def nested(depth: int, leaf, as_object: bool):
    value = leaf
    for _ in range(depth):
        value = {"a": value} if as_object else [value]
    return value


scalars = (st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=False, allow_infinity=False)
           | st.sampled_from([-1.0, 0.0, 0.5, 1.0, 3.4e38, -3.4e38, 1e-45]) | st.text(max_size=4))
values = st.recursive(scalars, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=3), kids,
                                                                                         max_size=3), max_leaves=12)
deep = st.builds(nested, st.integers(1, 1000), scalars, st.booleans())  # JSON allows 1024 levels here
anything = values | deep
numbers = st.floats(allow_nan=False, allow_infinity=False, width=32) | st.integers(-5, 5)
shapes = st.lists(st.integers(0, 4) | st.sampled_from([2**31 - 1, MAX_ROWS + 1]), max_size=3)
data = st.one_of(
    st.builds(lambda shape, vals: {"data": {"tensor": {"shape": shape, "values": vals}}}, shapes,
              st.lists(numbers, max_size=8)),
    st.sampled_from([MAX_ROWS, MAX_ROWS + 1]).map(  # at the bound and past it
        lambda n: {"data": {"tensor": {"shape": [n, 1], "values": [0.5] * n}}}),
    st.builds(lambda v: {"data": {"ndarray": v}}, st.lists(st.lists(numbers, max_size=4) | numbers, max_size=4)
              | anything),
    st.builds(lambda v: {"jsonData": v}, anything | st.fixed_dictionaries({"model": anything, "n": anything})),
    st.builds(lambda v: {"data": {"tftensor": v}}, st.fixed_dictionaries(
        {"dtype": st.sampled_from(["DT_FLOAT", "DT_INT32", "DT_STRING"])},
        optional={"floatVal": anything, "tensorShape": anything})),
    st.builds(lambda v: {"customData": {"@type": "type.googleapis.com/google.protobuf.Value", "value": v}}, anything),
    st.builds(lambda v: {"strData": v}, st.text(max_size=4)),
    st.just({}),
)
routings = st.integers(-3, 2) | st.sampled_from([1000, 2999, -(2**31), 2**31 - 1]) | st.sampled_from(["1", 1.0]) | deep
tags = st.dictionaries(st.sampled_from(["tier", "user", "error"]), anything | st.sampled_from(["gold", "true", "0"]),
                       max_size=3)
metas = st.fixed_dictionaries({}, optional={"puid": st.text(max_size=3), "tags": tags,
                                            "routing": st.dictionaries(st.just(UNIT), routings, max_size=1)})
messages = st.builds(lambda d, m: {**d, "meta": m}, data, metas)
rewards = (st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from([-1.0, 0.0, 0.5, 1.0, 3.4e38, -3.4e38])
           | st.none())
feedbacks = st.builds(lambda req, meta, reward: {"request": req, "response": {"meta": meta},
                                                 **({} if reward is None else {"reward": reward})},
                      messages, metas, rewards)
names = st.sampled_from(NAMES)


def run(coroutine_factory) -> int:
    """The HTTP status of one call; anything but a RouterError escaping the dataplane fails."""
    try:
        asyncio.run(coroutine_factory())
    except RouterError as exc:
        assert exc.http_status < 500, exc.message
        return exc.http_status
    return 200


def as_proto(message: dict, cls):
    try:
        return json_format.ParseDict(message, cls())
    except (json_format.ParseError, RecursionError, ValueError, TypeError):
        return None  # not representable in protobuf: nothing to send over gRPC


def snapshot(dp: DataPlane) -> str:
    return json.dumps(dp.router.state(), sort_keys=True, default=str)


def pulls(dp: DataPlane) -> float:
    return sum(getattr(dp.router, "pulls", [0]))


# --- the properties ------------------------------------------------------------------------

@FUZZ
@given(name=names, message=messages)
def test_route_answers_a_success_or_the_clients_fault(planes, name, message):
    dp = planes[name]
    run(lambda: dp.route_json(message))
    proto = as_proto(message, pb.SeldonMessage)
    if proto is not None:
        run(lambda: dp.route_proto(proto))


@FUZZ
@given(name=names, body=feedbacks)
def test_feedback_answers_a_success_or_the_clients_fault_and_a_refusal_changes_nothing(planes, name, body):
    dp = planes[name]
    proto = as_proto(body, pb.Feedback)
    sends = [lambda: dp.feedback_json(body)] + ([lambda: dp.feedback_proto(proto)] if proto is not None else [])
    for send in sends:
        before, before_pulls = snapshot(dp), pulls(dp)
        if run(send) != 200:
            assert snapshot(dp) == before, (name, body)
        else:  # one prediction's batch: at most MAX_ROWS trials (a window or discount may take some off)
            assert pulls(dp) - before_pulls <= MAX_ROWS, (name, body)


def test_feedback_metric_labels_stay_within_the_children(planes):
    """Runs after the properties above (same module's planes): whatever they sent."""
    for name, dp in planes.items():
        labels = {s.labels["child"] for family in dp.metrics.registry.collect() for s in family.samples
                  if s.name.startswith(("seldon_router_feedback", "seldon_router_reward"))}
        assert labels <= {"-2", "-1", "0", "1", "other"}, (name, labels)
