"""The DataPlane in process, no transport: raw input in, reply bytes or a protobuf message
out. Both transports call exactly these four entry points (route_json, feedback_json,
route_proto, feedback_proto), so what a rule says here holds over REST and gRPC alike:
readiness, admission, the router's hooks (tags, metrics, Seldon-style classes), attributing
feedback, and what is counted in the unit's Prometheus registry."""

from __future__ import annotations

import asyncio
import json

import pytest

from seldon_routers import BadRequest, Decision, Router
from seldon_routers.errors import NotReady, RouterFailed, TooManyRequests
from seldon_routers.proto import prediction_pb2 as pb
from seldon_routers.server.dataplane import DataPlane
from server_cases import ECHO_UNIT, fb  # fb: a feedback whose routing names ECHO_UNIT

UNIT = ECHO_UNIT


def run(coro):
    return asyncio.run(coro)


def ready(router, **kw) -> DataPlane:
    dp = DataPlane(router, unit_id=UNIT, **kw)
    run(dp.start())
    return dp


def sample(dp: DataPlane, name: str, **labels) -> float:
    return dp.metrics.registry.get_sample_value(name, {k: str(v) for k, v in labels.items()}) or 0.0


class Second(Router):
    """Child 1, tagged; counts decisions and feedback."""

    n_children = 3

    def __init__(self):
        self.decided, self.learned = 0, []

    def decide(self, request):
        self.decided += 1
        return Decision(1, {"why": "second"})

    def send_feedback(self, features, feature_names, reward, truth, routing=None, **kwargs):
        self.learned.append((routing, reward))


def test_route_json_is_seldons_reply_with_the_route_under_the_unit():
    dp = ready(Second())
    reply = json.loads(run(dp.route_json({"data": {"ndarray": [[1, 2]]}, "meta": {"puid": "p-1"}})))
    assert reply == {"data": {"names": ["t:0"], "ndarray": [[1]]},
                     "meta": {"puid": "p-1", "tags": {UNIT: {"why": "second"}}, "routing": {UNIT: 1}}}
    assert sample(dp, "seldon_router_routes_total", child=1) == 1
    assert sample(dp, "seldon_router_request_seconds_count", endpoint="route", transport="rest") == 1


def test_route_proto_answers_as_route_json_does():
    dp = ready(Second())
    reply = pb.SeldonMessage.FromString(run(dp.route_proto(pb.SeldonMessage(strData="x", meta=pb.Meta(puid="g")))))
    assert dict(reply.meta.routing) == {UNIT: 1} and reply.meta.puid == "g"
    assert reply.meta.tags[UNIT].struct_value["why"] == "second"
    assert sample(dp, "seldon_router_request_seconds_count", endpoint="route", transport="grpc") == 1


def test_nothing_is_served_before_start_and_the_router_is_not_called():
    router = Second()
    dp = DataPlane(router, unit_id=UNIT)
    assert not dp.serving_ready()
    with pytest.raises(NotReady, match="not ready"):
        run(dp.route_json({"strData": "x"}))
    with pytest.raises(NotReady):
        run(dp.feedback_json(fb(routing=0)))
    assert router.decided == 0 and router.learned == []
    run(dp.start())
    assert dp.serving_ready() and json.loads(run(dp.route_json({"strData": "x"})))["meta"]["routing"] == {UNIT: 1}


def test_feedback_is_attributed_by_the_units_routing_and_counted():
    router = Second()
    dp = ready(router)
    message = fb(routing=2, reward=0.5)
    message["response"]["meta"]["routing"] = {UNIT: 2, "another-unit": 0}
    assert json.loads(run(dp.feedback_json(message))) == {"meta": {}, "data": {"ndarray": []}}
    assert router.learned == [(2, 0.5)]
    assert sample(dp, "seldon_router_feedback_total", child=2) == 1
    assert sample(dp, "seldon_router_reward_sum", child=2) == 0.5
    assert sample(dp, "seldon_router_reward_count", child=2) == 1


@pytest.mark.parametrize("routing,names", [(None, (f"no entry for unit {UNIT!r}",)), (3, ("not one of", "0..2")),
                                           (-1, ("not one of",))])
def test_feedback_a_learning_router_cannot_attribute_is_refused_before_it_learns(routing, names):
    router = Second()
    dp = ready(router)
    with pytest.raises(BadRequest) as info:
        run(dp.feedback_json(fb(routing=routing)))
    for name in names:
        assert name in info.value.message
    assert router.learned == []
    assert sample(dp, "seldon_router_errors_total", endpoint="feedback", code=400) == 1


def test_a_router_that_does_not_learn_takes_feedback_without_routing():
    class Fixed(Router):
        def route(self, features, feature_names):
            return 0

    dp = ready(Fixed())
    assert json.loads(run(dp.feedback_json({"reward": 1, "request": {"meta": {"puid": "q"}}}))) == {
        "meta": {"puid": "q"}, "data": {"ndarray": []}}


def test_a_failing_router_is_a_router_failure_naming_it_and_counted_as_500():
    class Broken(Router):
        def route(self, features, feature_names):
            raise KeyError("lost")

    dp = ready(Broken())
    with pytest.raises(RouterFailed, match=r"router Broken failed in route: KeyError: 'lost'"):
        run(dp.route_json({"strData": "x"}))
    assert sample(dp, "seldon_router_errors_total", endpoint="route", code=500) == 1


def test_calls_over_max_in_flight_are_refused_while_the_others_run():
    class Slow(Router):
        def __init__(self):
            self.entered, self.release = asyncio.Event(), asyncio.Event()

        async def decide(self, request):
            self.entered.set()
            await self.release.wait()
            return 0

    async def scenario():
        router = Slow()
        dp = DataPlane(router, unit_id=UNIT, max_in_flight=1)
        await dp.start()
        first = asyncio.ensure_future(dp.route_json({"strData": "a"}))
        await router.entered.wait()
        with pytest.raises(TooManyRequests, match="more than 1 requests in flight"):
            await dp.route_json({"strData": "b"})
        router.release.set()
        assert json.loads(await first)["meta"]["routing"] == {UNIT: 0}
        assert dp.in_flight == 0
        assert json.loads(await dp.route_json({"strData": "c"}))["meta"]["routing"] == {UNIT: 0}  # free again

    run(scenario())


def test_tags_and_custom_metrics_of_the_router_reach_every_reply():
    class Hooked(Router):
        def route(self, features, feature_names):
            return 0

        def tags(self):
            return {"model": "v2"}

        def metrics(self):
            return [{"type": "COUNTER", "key": "calls", "value": 1}]

    dp = ready(Hooked())
    meta = json.loads(run(dp.route_json({"strData": "x"})))["meta"]
    assert meta["tags"] == {"model": "v2", UNIT: {"route": 0}}
    assert meta["metrics"] == [{"type": "COUNTER", "key": "calls", "value": 1}]
    meta = json.loads(run(dp.feedback_json({"reward": 0})))["meta"]
    assert meta == {"tags": {"model": "v2"}, "metrics": [{"type": "COUNTER", "key": "calls", "value": 1}]}
    assert sample(dp, "seldon_router_custom_calls_total") == 2


def test_a_plain_seldon_wrapper_class_is_served_as_it_is():
    class SeldonStyle:  # no base class: what seldon-core-microservice loads
        def __init__(self):
            self.seen = []

        def route(self, features, feature_names):
            return int(features.sum() > 10)

        def send_feedback(self, features, feature_names, reward, truth, routing=None):
            self.seen.append((routing, reward))

    user = SeldonStyle()
    dp = ready(user)
    assert json.loads(run(dp.route_json({"data": {"ndarray": [[20]]}})))["meta"]["routing"] == {UNIT: 1}
    run(dp.feedback_json(fb(routing=1, reward=1.0)))
    assert user.seen == [(1, 1.0)]
    with pytest.raises(BadRequest, match="routing"):  # it learns: feedback must name a child
        run(dp.feedback_json(fb(routing=None)))


def test_state_metadata_and_health_describe_the_unit():
    dp = ready(Second(), router_name="second")
    state = json.loads(dp.state_json())
    assert isinstance(state.pop("pid"), int)
    assert state == {"router": "second", "unit": UNIT, "state": {}, "store": {"kind": "memory"}}
    assert dp.metadata()["custom"] == {"type": "ROUTER", "unit": UNIT, "n_children": "3"}  # strings, as Seldon's
    assert json.loads(dp.health_status()) == {"strData": "healthy", "meta": {}}
