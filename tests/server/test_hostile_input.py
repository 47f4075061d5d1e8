"""Hostile shapes against a real `seldon-router serve` process, over REST and gRPC: deeply
nested JSON, huge numbers, long strings in every field, huge and many headers, clients that
send a byte at a time (--read-timeout), a connection flood past --max-in-flight. Each is a
clear 4xx (gRPC: INVALID_ARGUMENT / RESOURCE_EXHAUSTED) or a closed connection, never a 5xx,
and a probe client's route still succeeds meanwhile and afterwards."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
import threading
import time

import grpc
import pytest
import requests
from google.protobuf import json_format

from seldon_routers.proto import prediction_pb2 as pb
from server_cases import ECHO_UNIT, varint as _varint, assert_seldon_error, fb, grpc_call, grpc_error, post_json, serve

READ_TIMEOUT = 2.0  # seconds: short, so the slow clients' cases end soon
SLACK = 10.0  # what a loaded machine may add to it: a bound against a hang, not a latency check
ROUTE = "/seldon.protos.Router/Route"
BIG = "x" * 1_000_000


@pytest.fixture(scope="module")
def rp():
    server = serve("echo_router.EchoRouter", "--unit-id", ECHO_UNIT, "--read-timeout", str(READ_TIMEOUT))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def channel(rp):
    options = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]
    with grpc.insecure_channel(rp.grpc_target, options=options) as ch:
        yield ch


def state(rp) -> dict:
    return requests.get(rp.url + "/state", timeout=10).json()["state"]


def probe(rp) -> None:
    """A well-behaved client's route: it must succeed whatever the others do."""
    r = post_json(rp.url + "/route", {"strData": "probe"})
    assert r.status_code == 200, (r.status_code, r.text[:500])
    with grpc.insecure_channel(rp.grpc_target) as ch:
        assert grpc_call(ch, ROUTE, pb.SeldonMessage(strData="probe")).meta.routing[ECHO_UNIT] == 0


# --- raw HTTP -----------------------------------------------------------------------------

def request_bytes(path: str = "/route", body: bytes = b'{"strData": "a"}', headers=(), length=None) -> bytes:
    head = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json",
            f"Content-Length: {len(body) if length is None else length}", *headers]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def read_reply(sock: socket.socket, deadline: float) -> tuple:
    """(status, body) of the reply on `sock`, or (None, b"") when it closes without one."""
    data = b""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            break
        except ConnectionError:
            chunk = b""
        if not chunk:
            break
        data += chunk
        head, sep, body = data.partition(b"\r\n\r\n")
        length = [int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")]
        if sep and length and len(body) >= length[0]:
            return int(head.split()[1]), body[:length[0]]
    if not data:
        return None, b""
    raise AssertionError(f"an incomplete reply: {data[:300]!r}")


def exchange(rp, data: bytes) -> tuple:
    """Sends `data` (one request) and reads the reply; the server may close while it is sent."""
    with socket.create_connection(("127.0.0.1", rp.http_port), timeout=30) as sock:
        try:
            sock.sendall(data)
        except ConnectionError:
            pass
        return read_reply(sock, time.monotonic() + 30)


def assert_4xx(status, body: bytes, expected: int, *names: str) -> None:
    """The Seldon error `expected` naming `names`, or a connection closed without a reply."""
    if status is None:
        return
    assert status == expected, (status, body[:500])
    info = json.loads(body)["status"]["info"]
    for name in names:
        assert name in info, (name, info)


# --- deeply nested JSON, huge numbers -----------------------------------------------------

DEEP = b"[" * 10**5

ROUTE_BODIES = {
    "nested-body": DEEP,
    "nested-jsonData": b'{"jsonData": ' + DEEP,
    "nested-tags": b'{"strData": "x", "meta": {"tags": {"t": ' + DEEP,
    "1e400-in-data": b'{"data": {"ndarray": [[1e400]]}}',
    "100000-digits-in-data": b'{"data": {"ndarray": [[' + b"9" * 100_000 + b"]]}}",
}


@pytest.mark.parametrize("body", list(ROUTE_BODIES.values()), ids=list(ROUTE_BODIES))
def test_nested_or_huge_number_routes_are_400_and_route_nothing(rp, body):
    before = state(rp)["routed"]
    assert_seldon_error(post_json(rp.url + "/route", body), 400, "body")
    assert state(rp)["routed"] == before
    probe(rp)


FEEDBACK = json.dumps(fb()).encode()


@pytest.mark.parametrize("reward", [b"1e400", b"9" * 100_000, b"-1e400"], ids=["1e400", "100000-digits", "-1e400"])
def test_a_huge_reward_is_400_and_applies_nothing(rp, reward):
    body = FEEDBACK.replace(b'"reward": 1.0', b'"reward": ' + reward)
    assert body != FEEDBACK
    before = state(rp)["applied"]
    assert_seldon_error(post_json(rp.url + "/send-feedback", body), 400, "body")
    assert state(rp)["applied"] == before


@pytest.mark.parametrize("reward", [float("inf"), float("nan"), 3.4e38 * 10])
def test_grpc_a_non_finite_reward_is_invalid_argument_and_applies_nothing(rp, channel, reward):
    message = pb.Feedback(reward=reward)
    message.request.data.ndarray.values.add().list_value.values.add().number_value = 1
    message.response.meta.routing[ECHO_UNIT] = 0
    before = state(rp)["applied"]
    err = grpc_error(channel, "/seldon.protos.Router/SendFeedback", message)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "reward" in err.details(), err.details()
    assert state(rp)["applied"] == before


def _message_field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def deep_value(levels: int) -> bytes:
    """A google.protobuf.Value of `levels` lists in lists, as wire bytes (protobuf's own
    Python objects refuse to build one past their recursion limit)."""
    leaf = b"\x11" + bytes(8)  # number_value (field 2, a double): 0
    heads, size = [], len(leaf)
    for _ in range(levels):  # list_value (6) { values (1): [value] }, built outside in: no copies
        inner = _varint(1 << 3 | 2) + _varint(size)
        head = _varint(6 << 3 | 2) + _varint(size + len(inner)) + inner
        heads.append(head)
        size += len(head)
    return b"".join(reversed(heads)) + leaf


@pytest.mark.parametrize("where", ["jsonData", "meta.tags"])
def test_grpc_a_struct_nested_100000_deep_is_invalid_argument(rp, channel, where):
    value = deep_value(10**5)
    if where == "jsonData":
        raw = _message_field(6, value)  # SeldonMessage.jsonData
    else:  # SeldonMessage.meta (2) { tags (2): map entry { key (1): "t", value (2) } }
        raw = _message_field(2, _message_field(2, _message_field(1, b"t") + _message_field(2, value)))
    before = state(rp)["routed"]
    err = grpc_error(channel, ROUTE, raw)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and err.details().startswith("request"), err.details()
    assert state(rp)["routed"] == before
    probe(rp)


# --- long strings in every field ----------------------------------------------------------

LONG_MESSAGES = {
    "puid": {"strData": "a", "meta": {"puid": BIG}},
    "tag-key": {"strData": "a", "meta": {"tags": {BIG: 1}}},
    "tag-value": {"strData": "a", "meta": {"tags": {"t": BIG}}},
    "names": {"data": {"names": [BIG], "ndarray": [[1]]}},
    "strData": {"strData": BIG},
    "requestPath": {"strData": "a", "meta": {"requestPath": {BIG: BIG}}},
}


@pytest.mark.parametrize("message", list(LONG_MESSAGES.values()), ids=list(LONG_MESSAGES))
def test_a_megabyte_string_in_any_field_is_answered_over_both_transports(rp, channel, message):
    """Valid, if odd: routed (within the 16 MiB body limit), the string intact."""
    r = post_json(rp.url + "/route", message)
    assert r.status_code == 200, (r.status_code, r.text[:300])
    assert BIG in r.text
    reply = grpc_call(channel, ROUTE, json_format.ParseDict(message, pb.SeldonMessage()))
    assert BIG in str(reply.meta.tags[ECHO_UNIT])
    probe(rp)


# --- headers: huge, many; the path --------------------------------------------------------

HEADS = {
    "1MB-header-value": request_bytes(headers=[f"x-big: {BIG}"]),
    "10000-headers": request_bytes(headers=[f"x-hostile-{i}: v" for i in range(10_000)]),
    "100KB-path": request_bytes(path="/route" + "/p" * 50_000),
}


@pytest.mark.parametrize("data", list(HEADS.values()), ids=list(HEADS))
def test_an_oversized_request_head_is_431_or_closed_and_routes_nothing(rp, data):
    """httptools keeps any amount of headers in memory: a 64 KiB bound refuses them."""
    before = state(rp)["routed"]
    status, body = exchange(rp, data)
    assert_4xx(status, body, 431, "headers")
    assert state(rp)["routed"] == before
    probe(rp)


def test_headers_under_the_bound_are_served(rp):
    status, body = exchange(rp, request_bytes(headers=[f"x-echo-{i}: v" for i in range(1000)]))
    assert status == 200, body[:300]


@pytest.mark.parametrize("size", [20_000, 1_000_000])
def test_grpc_metadata_over_the_limit_is_resource_exhausted(rp, channel, size):
    """gRPC's own bound: 8 KiB (soft, refused at random between it and 16 KiB), 16 KiB (hard)."""
    err = grpc_error(channel, ROUTE, pb.SeldonMessage(strData="a"), metadata=(("x-big", "v" * size),))
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, (err.code(), err.details())
    assert "metadata" in err.details(), err.details()
    probe(rp)


def test_grpc_10000_metadata_entries_are_refused(rp, channel):
    metadata = tuple((f"x-hostile-{i}", "v") for i in range(10_000))
    err = grpc_error(channel, ROUTE, pb.SeldonMessage(strData="a"), metadata=metadata)
    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, (err.code(), err.details())
    probe(rp)


# --- slow clients: --read-timeout -------------------------------------------------------

def trickle(sock: socket.socket, data: bytes, stop: threading.Event) -> None:
    """Sends `data` a byte every 50 ms until `stop` (or the server closes)."""
    for i in range(len(data)):
        if stop.wait(0.05):
            return
        try:
            sock.sendall(data[i:i + 1])
        except OSError:
            return


@contextlib.contextmanager
def trickling(port: int):
    """`start(data, first)`: a client on a new connection to `port` that sends `first`, then
    trickles `data`; returns its socket. All are stopped and closed on leaving."""
    started = []

    def start(data: bytes, first: bytes = b""):
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        sock.sendall(first)
        stop = threading.Event()
        thread = threading.Thread(target=trickle, args=(sock, data, stop), daemon=True)
        thread.start()
        started.append((sock, stop, thread))
        return sock

    try:
        yield start
    finally:
        for sock, stop, thread in started:
            stop.set()
            thread.join(5)
            sock.close()


@pytest.fixture()
def slow_client(rp):
    with trickling(rp.http_port) as start:
        yield start


def test_a_body_sent_a_byte_at_a_time_is_408_and_routes_nothing(rp, slow_client):
    sock = slow_client(b" " * 10_000 + b"}", first=request_bytes(body=b'{"strData": "slow"', length=10_019))
    probe(rp)  # answered while the slow client holds its connection
    before = state(rp)["routed"]
    status, body = read_reply(sock, time.monotonic() + READ_TIMEOUT + SLACK)
    assert status == 408, body
    assert json.loads(body)["status"]["reason"] == "REQUEST_TIMEOUT"
    assert read_reply(sock, time.monotonic() + SLACK) == (None, b"")  # and the connection closes
    assert state(rp)["routed"] == before


@pytest.mark.parametrize("data", [b"", request_bytes()[:60]], ids=["nothing", "headers-a-byte-at-a-time"])
def test_a_connection_without_its_headers_in_time_is_closed(rp, slow_client, data):
    sock = slow_client(data)
    probe(rp)
    assert read_reply(sock, time.monotonic() + READ_TIMEOUT + SLACK) == (None, b"")


def test_a_body_cut_short_by_the_client_applies_nothing(rp):
    """A client gone mid-body left its first part, valid JSON here, to be applied."""
    before = state(rp)["applied"]
    with socket.create_connection(("127.0.0.1", rp.http_port), timeout=30) as sock:
        sock.sendall(request_bytes("/send-feedback", FEEDBACK, length=len(FEEDBACK) + 100))
        time.sleep(0.2)  # the app is reading the body by now
    for _ in range(20):  # a feedback applied shows at once; none does within a second
        assert state(rp)["applied"] == before
        time.sleep(0.05)
    probe(rp)


def test_grpc_a_connection_without_its_http2_preface_in_time_is_closed(rp):
    """grpc.server_handshake_timeout_ms, set from --read-timeout (grpc's default: 120 s)."""
    with socket.create_connection(("127.0.0.1", rp.grpc_port), timeout=30) as sock:
        probe(rp)
        assert closed(sock, time.monotonic() + READ_TIMEOUT + SLACK)


def closed(sock: socket.socket, deadline: float) -> bool:
    """Whether the server closes `sock` by `deadline` (reading what it sends until then)."""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            if not sock.recv(65536):
                return True
        except socket.timeout:
            return False
        except ConnectionError:
            return True
    return False


def _frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def _literal(name: bytes, value: bytes) -> bytes:  # HPACK: literal, not indexed, new name
    return b"\x00" + bytes([len(name)]) + name + bytes([len(value)]) + value


def test_grpc_a_message_sent_a_byte_at_a_time_does_not_stop_others(rp):
    """grpc-core bounds no call's receive time (only the client's deadline, or a maximum
    connection age, does): the slow call holds a stream, but no in-flight slot and no
    handler, and everyone else is answered."""
    headers = b"".join(_literal(n, v) for n, v in [
        (b":method", b"POST"), (b":scheme", b"http"), (b":path", ROUTE.encode()), (b":authority", b"x"),
        (b"content-type", b"application/grpc"), (b"te", b"trailers")])
    with socket.create_connection(("127.0.0.1", rp.grpc_port), timeout=30) as sock:
        sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + _frame(4, 0, 0, b"") + _frame(4, 1, 0, b"")
                     + _frame(1, 4, 1, headers) + _frame(0, 0, 1, b"\x00" + struct.pack(">I", 100)))
        for _ in range(3):
            sock.sendall(_frame(0, 0, 1, b"\x2a"))
            probe(rp)
            time.sleep(READ_TIMEOUT / 2)


# --- a connection flood past --max-in-flight ---------------------------------------------

FLOOD = 200
IN_FLIGHT = 4


@pytest.fixture(scope="module")
def held():
    """A router whose every call takes 2 s, at most IN_FLIGHT at once."""
    server = serve("echo_router.SlowRouter", "--unit-id", "slow", "--param", "delay=2",
                   "--max-in-flight", str(IN_FLIGHT), "--read-timeout", str(READ_TIMEOUT))
    yield server
    server.stop()


async def _flood(url: str) -> list:
    import aiohttp

    async def one(session):
        try:
            async with session.post(url + "/route", json={"strData": "f"}) as r:
                return r.status
        except aiohttp.ClientError:  # refused or closed: as good as a 429
            return None

    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), timeout=timeout) as session:
        return await asyncio.gather(*(one(session) for _ in range(FLOOD)))


def test_a_rest_connection_flood_gets_429_or_closed_never_5xx(held):
    statuses = asyncio.run(_flood(held.url))
    assert set(statuses) <= {200, 429, None}, sorted(set(map(str, statuses)))
    assert 1 <= statuses.count(200) < FLOOD and statuses.count(429) >= FLOOD // 2, statuses
    r = post_json(held.url + "/route", {"strData": "after"})
    assert r.status_code == 200, r.text


def test_a_grpc_call_flood_gets_resource_exhausted_never_internal(held):
    with grpc.insecure_channel(held.grpc_target) as ch:
        stub = ch.unary_unary(ROUTE, request_serializer=pb.SeldonMessage.SerializeToString,
                              response_deserializer=pb.SeldonMessage.FromString)
        calls = [stub.future(pb.SeldonMessage(strData="f"), timeout=60) for _ in range(FLOOD)]
        codes = [call.code() for call in calls]
        assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}, set(codes)
        assert codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) >= FLOOD // 2, codes
        assert grpc_call(ch, ROUTE, pb.SeldonMessage(strData="after")).meta.routing["slow"] == 1
