"""Route replies: the cached protobuf reply is always the one built afresh."""

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
