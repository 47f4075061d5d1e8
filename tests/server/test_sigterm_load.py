"""SIGTERM while a real `seldon-router serve` is under load: 16 client threads (REST and gRPC)
calling route then feedback, and the signal mid-stream. Every REST request whose bytes were
sent before the signal (a gRPC call: made before it) is answered 200; after it a call may be refused (connection refused or
closed, 503, UNAVAILABLE), never a 5xx or INTERNAL; every call the server took is answered
(the learned state after exit counts exactly the routes and feedbacks acknowledged); exit 0.
Once in one process (the state from its final file snapshot) and once under --workers 2 (the
state in Redis)."""

from __future__ import annotations

import http.client
import json
import signal
import threading
import time
from dataclasses import dataclass

import grpc
import requests

from redis_server import RedisServer, need_redis
from seldon_routers.proto import prediction_pb2 as pb
from server_cases import serve
from servers import free_port
from support import ClientThreads, wait_until

UNIT = "eg"
ROUTER = ("epsilon-greedy", "--unit-id", UNIT, "--param", "n_branches=3", "--param", "seed=1",
          "--graceful-timeout", "10", "--log-level", "warning")
THREADS = 16  # half REST, half gRPC
WARM_UP = 200  # calls answered before the signal
FEATURES = {"data": {"ndarray": [[1.0, 2.0]]}}


@dataclass
class Call:
    transport: str
    endpoint: str
    started: float
    sent: float  # REST: the request's last byte written (gRPC: as started; the library sends it)
    ended: float
    outcome: str  # "ok", "refused" (allowed after the signal) or what went wrong
    arm: int | None = None


class Load(ClientThreads):
    """THREADS clients, each calling route then feedback (to the arm routed) until told to stop."""

    def __init__(self, rp):
        super().__init__()
        self.rp, self.calls, self.lock = rp, [], threading.Lock()
        self.threads = [threading.Thread(target=self._rest if i % 2 else self._grpc, daemon=True)
                        for i in range(THREADS)]

    def answered(self) -> int:
        with self.lock:
            return sum(c.outcome == "ok" for c in self.calls)

    def _record(self, call: Call) -> Call:
        with self.lock:
            self.calls.append(call)
        return call

    def _rest(self) -> None:
        conn = None
        while not self.stop.is_set():
            conn = conn or http.client.HTTPConnection("127.0.0.1", self.rp.http_port, timeout=30)
            routed = self._rest_call(conn, "route", FEATURES)
            if routed.outcome == "ok":
                body = {"request": FEATURES, "response": {"meta": {"routing": {UNIT: routed.arm}}}, "reward": 1.0}
                routed = self._rest_call(conn, "feedback", body)
            if routed.outcome != "ok":
                conn.close()
                conn = None  # a new connection for the next call
                time.sleep(0.01)  # refused: the server is going; do not spin

    def _rest_call(self, conn, endpoint: str, body: dict) -> Call:
        path = "/route" if endpoint == "route" else "/send-feedback"
        started = sent = time.monotonic()
        arm = None
        try:
            conn.request("POST", path, json.dumps(body).encode(), {"Content-Type": "application/json"})
            sent = time.monotonic()
            reply = conn.getresponse()
            data = reply.read()
            if reply.status == 200:
                outcome = "ok"
                if endpoint == "route":
                    arm = json.loads(data)["meta"]["routing"][UNIT]
            else:
                outcome = "refused" if reply.status == 503 else f"HTTP {reply.status}: {data[:200]!r}"
        except (ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine) as exc:
            # not sent: refused. Sent, then the connection closed unanswered: allowed only for a
            # request sent after the signal (a keep-alive connection the server was closing).
            outcome = "refused" if sent == started else f"cut: {type(exc).__name__}"
        return self._record(Call("rest", endpoint, started, sent, time.monotonic(), outcome, arm))

    def _grpc(self) -> None:
        with grpc.insecure_channel(self.rp.grpc_target) as channel:
            route = channel.unary_unary("/seldon.protos.Router/Route",
                                        request_serializer=pb.SeldonMessage.SerializeToString,
                                        response_deserializer=pb.SeldonMessage.FromString)
            feedback = channel.unary_unary("/seldon.protos.Router/SendFeedback",
                                           request_serializer=pb.Feedback.SerializeToString,
                                           response_deserializer=pb.SeldonMessage.FromString)
            features = pb.SeldonMessage(data=pb.DefaultData(ndarray=_list_value([[1.0, 2.0]])))
            while not self.stop.is_set():
                routed = self._grpc_call("route", route, features)
                if routed.outcome == "ok":
                    message = pb.Feedback(request=features, reward=1.0,
                                          response=pb.SeldonMessage(meta=pb.Meta(routing={UNIT: routed.arm})))
                    routed = self._grpc_call("feedback", feedback, message)
                if routed.outcome != "ok":
                    time.sleep(0.01)

    def _grpc_call(self, endpoint: str, stub, message) -> Call:
        started = time.monotonic()
        arm = None
        try:
            reply = stub(message, timeout=30)
            outcome = "ok"
            if endpoint == "route":
                arm = reply.meta.routing[UNIT]
        except grpc.RpcError as exc:
            outcome = "refused" if exc.code() == grpc.StatusCode.UNAVAILABLE else f"{exc.code()}: {exc.details()}"
        return self._record(Call("grpc", endpoint, started, started, time.monotonic(), outcome, arm))


def _list_value(rows):
    from google.protobuf import struct_pb2

    value = struct_pb2.ListValue()
    value.extend(rows)
    return value


def sigterm_under_load(rp) -> tuple:
    """Load, SIGTERM once WARM_UP calls are answered, until the process exits; (calls, signalled, exit status)."""
    with Load(rp) as load:
        wait_until(lambda: load.answered() >= WARM_UP, timeout=60, what=f"{WARM_UP} calls answered")
        signalled = time.monotonic()
        rp.proc.send_signal(signal.SIGTERM)
        status = rp.proc.wait(30)
        time.sleep(0.2)  # calls now find nobody: refused, as they should be
    return load.calls, signalled, status


# A gRPC call that reaches the server at the very moment grpc.aio stops is cancelled by grpc
# core (CANCELLED): app.py's drain serves on for a moment after the signal and then refuses
# new calls with UNAVAILABLE, so only a call sent well after the signal can meet that moment.
CANCELLED = "StatusCode.CANCELLED: CANCELLED"


def check(calls: list, signalled: float, status: int) -> dict:
    """The drain's promises; returns the calls answered 200, by endpoint."""
    assert status == 0
    wrong = [c for c in calls if c.outcome not in ("ok", "refused") and not c.outcome.startswith("cut:")
             and not (c.outcome == CANCELLED and c.started > signalled)]
    assert not wrong, wrong[:5]  # never a 5xx, INTERNAL or UNKNOWN; nothing sent before the signal cancelled
    lost = [c for c in calls if c.sent < signalled and c.outcome != "ok"]
    assert not lost, lost[:5]  # sent before the signal: answered, none reset, none refused
    in_flight = [c for c in calls if c.started < signalled < c.ended and c.outcome == "ok"]
    assert in_flight, "no call was in flight at the signal: the test proved nothing"
    assert any(c.started > signalled and c.outcome != "ok" for c in calls)  # and new ones were refused
    ok = {e: sum(c.outcome == "ok" and c.endpoint == e for c in calls) for e in ("route", "feedback")}
    assert ok["route"] >= WARM_UP // 2
    return ok


def serve_from_file(path):
    return serve(*ROUTER, "--state", f"file:{path}", "--snapshot-interval", "3600")  # only the final snapshot


def test_sigterm_under_load_answers_every_call_taken(tmp_path):
    path = tmp_path / "state.json"
    rp = serve_from_file(path)
    try:
        ok = check(*sigterm_under_load(rp))
    finally:
        rp.stop(signal.SIGKILL)
    state = json.loads(path.read_bytes())
    # what the server took and answered: no call taken and dropped, none counted twice
    assert (sum(state["routes"]), sum(state["pulls"])) == (ok["route"], ok["feedback"])


def test_sigterm_under_load_with_two_workers(tmp_path):
    need_redis()
    redis = RedisServer(free_port(), tmp_path).start()
    try:
        state = ("--state", redis.url, "--state-namespace", "sigterm-load")
        rp = serve(*ROUTER, *state, "--workers", "2")
        try:
            ok = check(*sigterm_under_load(rp))
        finally:
            rp.stop(signal.SIGKILL)
        after = serve(*ROUTER, *state)  # a fresh process reads what the workers left in Redis
        try:
            learned = requests.get(after.url + "/state", timeout=5).json()["state"]
        finally:
            after.stop()
        assert (sum(learned["routes"]), sum(learned["pulls"])) == (ok["route"], ok["feedback"])
    finally:
        redis.stop()
