"""Replies: the cached protobuf Route reply is always the one built afresh; feedback and
health replies have the shapes Seldon's wrapper gives them."""

import json

import numpy as np
import pytest

from seldon_routers.codec import replies
from seldon_routers.proto import prediction_pb2 as pb


def routed(tags, puid="", metrics=()):
    return replies.Routed(1, "u", {"u": tags}, puid, list(metrics), tags)


def test_cached_reply_equals_a_fresh_one_and_follows_changed_tags():
    cache = replies.ProtoRouteReplies()
    tags = {"route": 1, "branch": "b", "propensity": 0.25}
    for puid in ("", "p-1", "p-2"):
        r = routed(tags, puid)
        assert pb.SeldonMessage.FromString(cache.route(r)) == replies.route_proto(r)
    tags["propensity"] = 0.5  # the same dict, mutated: the reply must say 0.5
    reply = pb.SeldonMessage.FromString(cache.route(routed(tags)))
    assert reply.meta.tags["u"].struct_value.fields["propensity"].number_value == 0.5


def test_unhashable_tags_and_metrics_are_built_afresh():
    cache = replies.ProtoRouteReplies()
    r = routed({"route": 1, "scores": [0.1, 0.9]}, "p", [{"type": "GAUGE", "key": "k", "value": 2.0}])
    assert pb.SeldonMessage.FromString(cache.route(r)) == replies.route_proto(r)


def test_cache_is_bounded():
    cache = replies.ProtoRouteReplies(max_entries=8)
    for i in range(50):
        cache.route(routed({"route": 1, "i": i}))
    assert len(cache._cache) <= 8


def test_bool_and_number_tags_with_equal_values_stay_distinct():
    cache = replies.ProtoRouteReplies()
    as_bool = pb.SeldonMessage.FromString(cache.route(routed({"x": True})))
    as_int = pb.SeldonMessage.FromString(cache.route(routed({"x": 1})))
    assert as_bool.meta.tags["u"].struct_value.fields["x"].WhichOneof("kind") == "bool_value"
    assert as_int.meta.tags["u"].struct_value.fields["x"].WhichOneof("kind") == "number_value"


@pytest.mark.parametrize("status, body", [
    (None, {"strData": "healthy"}),  # no health_status() hook: what the wrapper says
    ("fine", {"strData": "fine"}),
    (b"x", {"binData": "eA=="}),
    ({"ok": True, "n": 2}, {"jsonData": {"ok": True, "n": 2}}),
    ([1, 2], {"data": {"names": [], "tensor": {"shape": [2], "values": [1, 2]}}}),
    (np.array([[1, 2]]), {"data": {"names": ["t:0", "t:1"], "tensor": {"shape": [1, 2], "values": [1, 2]}}}),
])
def test_health_status_has_the_form_seldon_s_wrapper_gives_each_type(status, body):
    """seldon_core 1.18.2 seldon_methods.health_status, as run in its venv."""
    assert json.loads(replies.health_json(status)) == {**body, "meta": {}}


def test_a_feedback_reply_carries_an_empty_ndarray_as_the_wrapper_s_does():
    assert json.loads(replies.feedback_json({"puid": "p1"})) == {"meta": {"puid": "p1"}, "data": {"ndarray": []}}
    msg = pb.SeldonMessage.FromString(replies.empty_data_proto_bytes({"puid": "p1"}))
    assert msg.meta.puid == "p1" and msg.WhichOneof("data_oneof") == "data" and len(msg.data.ndarray.values) == 0
