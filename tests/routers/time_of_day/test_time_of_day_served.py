"""The time-of-day router behind the real server's parts, in process (tests/servers.py
serving: built from string parameters as `seldon-router serve time-of-day` builds it), on the
real clock: windows placed around the time the test runs, so the expected window is
known. REST /route and gRPC Route carry its tags, /state shows the schedule, NoRoute is a
404 / NOT_FOUND, and a bad schedule stops start-up."""

import json
import subprocess
import sys
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import grpc
import pytest
import requests
from google.protobuf import json_format

from seldon_routers.proto import prediction_pb2 as pb
from servers import serving

ROUTER = "time-of-day"
BODY = {"data": {"ndarray": [[1.0, 2.0]]}}
ZONE = "Asia/Kolkata"  # +05:30 all year, given by the parameter over the config's UTC


STARTED = datetime.now(ZoneInfo(ZONE))


def hhmm(hours_from_now: float) -> str:
    return (STARTED + timedelta(hours=hours_from_now)).strftime("%H:%M")


def schedule(default=True) -> dict:
    """`now` holds the time for the next hour or so; `later` starts an hour from now."""
    doc = {"timezone": "UTC", "children": ["a", "b", "c"], "sticky_key": "header:x-user-id", "windows": [
        {"name": "later", "start": hhmm(1), "end": hhmm(2), "to": "c"},
        {"name": "now", "start": hhmm(-1), "end": hhmm(1), "to": [{"child": "a", "weight": 3},
                                                                   {"child": "b", "weight": 1}]}]}
    if not default:
        doc["windows"] = doc["windows"][:1]
    else:
        doc["default"] = "c"
    return doc


def tags_of(meta: dict, routing) -> dict:
    [(unit, tags)] = meta["tags"].items()
    assert int(routing(meta, unit)) == tags["route"]
    return tags


def rest_route(url, headers=None):
    r = requests.post(url + "/route", json=BODY, headers=headers or {}, timeout=10)
    assert r.status_code == 200, r.text
    return tags_of(r.json()["meta"], lambda meta, unit: meta["routing"][unit])


def grpc_route(target, metadata=()):
    with grpc.insecure_channel(target) as channel:
        call = channel.unary_unary("/seldon.protos.Router/Route", request_serializer=pb.SeldonMessage.SerializeToString,
                                   response_deserializer=pb.SeldonMessage.FromString)
        reply = call(json_format.ParseDict(BODY, pb.SeldonMessage()), metadata=metadata, timeout=10)
    return tags_of(json_format.MessageToDict(reply)["meta"], lambda meta, unit: reply.meta.routing[unit])


@pytest.fixture(scope="module")
def served():
    with serving(ROUTER, f"config={json.dumps(schedule())}", f"timezone={ZONE}", "seed=0", unit_id="tod") as rp:
        yield rp


def test_rest_route_tags_the_window_and_sticks_by_header(served):
    tags = rest_route(served.url, {"x-user-id": "user-1"})
    assert tags["window"] == "now" and tags["sticky"] is True
    assert tags["propensity"] == {"a": 0.75, "b": 0.25}[tags["branch"]]
    assert all(rest_route(served.url, {"x-user-id": "user-1"}) == tags for _ in range(5))
    with requests.Session() as s:
        seen = {s.post(served.url + "/route", json=BODY, timeout=10).json()["meta"]["tags"]["tod"]["branch"]
                for _ in range(100)}
    assert seen == {"a", "b"}  # without the key: a random draw


def test_grpc_route_tags_the_window_and_sticks_by_metadata(served):
    tags = grpc_route(served.grpc_target, (("x-user-id", "user-1"),))
    assert tags == rest_route(served.url, {"x-user-id": "user-1"})  # the same user, either transport
    assert grpc_route(served.grpc_target)["window"] == "now"


def test_state_shows_the_schedule(served):
    state = requests.get(served.url + "/state", timeout=10).json()["state"]
    assert state["timezone"] == ZONE and state["children"] == ["a", "b", "c"] and state["active"] == "now"
    assert state["windows"][1] == {"window": "now", "days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"],
                                   "start": hhmm(-1), "end": hhmm(1), "to": {"a": 0.75, "b": 0.25}}
    assert state["default"] == {"c": 1.0} and state["sticky_key"] == "header:x-user-id"
    assert state["next_change"].endswith(f"T{hhmm(1)}:00+05:30")  # `now` ends, `later` starts
    assert state["now"].endswith("+05:30")


def test_outside_every_window_without_default_is_404_and_not_found():
    with serving(ROUTER, f"config={json.dumps(schedule(default=False))}", f"timezone={ZONE}") as rp:
        r = requests.post(rp.url + "/route", json=BODY, timeout=10)
        assert r.status_code == 404 and r.json()["status"]["reason"] == "NO_ROUTE", r.text
        assert "is outside every window" in r.json()["status"]["info"]
        with pytest.raises(grpc.RpcError) as info:
            grpc_route(rp.grpc_target)
        assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_a_bad_schedule_stops_startup_naming_the_field():
    doc = schedule()
    doc["windows"][0]["end"] = "25:00"
    out = subprocess.run([sys.executable, "-m", "seldon_routers.cli", "serve", ROUTER, "--param",
                          f"config={json.dumps(doc)}"], capture_output=True, text=True, timeout=30)
    assert out.returncode == 2, out.stderr
    assert "windows[0] ('later').end: '25:00' is not a time of day" in out.stderr and "Traceback" not in out.stderr
