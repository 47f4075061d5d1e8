"""Shared cases and helpers for the transport tests: the payload forms (a JSON message, its
protobuf twin and what the router must see), the invalid messages and what the error
must name, and small REST / gRPC call helpers."""

from __future__ import annotations

import base64
import json
import os
import struct
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import requests
from google.protobuf import any_pb2, json_format, struct_pb2

import servers
from seldon_routers.proto import prediction_pb2 as pb

ECHO_UNIT = "echo"
HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]


def router_env() -> dict:
    """Environment for a server process that imports echo_router by path."""
    path = os.pathsep.join(filter(None, [str(HERE), str(REPO), os.environ.get("PYTHONPATH", "")]))
    return {"PYTHONPATH": path}


def serve(*args: str, attempts: int = 3, env: dict | None = None) -> servers.RouterProcess:
    """`seldon-router serve ARGS` on free ports; retried, since a port picked free can be
    taken by another process before the server binds it. env: instead of router_env()."""
    for attempt in range(attempts):
        try:
            return servers.start_router(*args, env=env or router_env(), cwd=str(REPO))
        except (RuntimeError, TimeoutError):
            if attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


def serve_learning(unit: str) -> servers.RouterProcess:
    """A learning router's process, for the fuzz tests: epsilon-greedy, 3 children, seed 0."""
    return serve("epsilon-greedy", "--unit-id", unit, "--param", "n_branches=3", "--param", "seed=0")


def varint(n: int) -> bytes:
    """Protobuf's base-128 varint of n >= 0 (for wire data built by hand)."""
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def packed(msg) -> str:
    """base64 of the bytes an Any holding `msg` carries."""
    a = any_pb2.Any()
    a.Pack(msg)
    return b64(a.value)


def array(dtype: str, shape: list, values) -> dict:
    return {"type": "array", "dtype": dtype, "shape": shape, "values": values}


# --- payload forms ---------------------------------------------------------------------

@dataclass
class Payload:
    id: str
    message: dict  # the SeldonMessage in proto3 JSON
    kind: str
    features: dict  # echo_router.describe_features of what the router must receive
    names: list
    rows: int = 1
    meta: dict | None = None  # the meta the router must receive (None: empty meta)


_value_json = {"k": [1, "two", None, True]}
_inner_message = pb.SeldonMessage(strData="inner")

PAYLOADS = [
    Payload("ndarray", {"data": {"names": ["a", "b"], "ndarray": [[1, 2], [3, 4.5]]}},
            "ndarray", array("float64", [2, 2], [[1.0, 2.0], [3.0, 4.5]]), ["a", "b"], rows=2),
    Payload("ndarray-mixed", {"data": {"ndarray": [["x", 1]]}},
            "ndarray", array("object", [1, 2], [["x", 1]]), []),
    Payload("tensor", {"data": {"names": ["a", "b", "c"], "tensor": {"shape": [1, 3], "values": [1, 2, 3]}}},
            "tensor", array("float64", [1, 3], [[1.0, 2.0, 3.0]]), ["a", "b", "c"]),
    Payload("tensor-flat", {"data": {"tensor": {"values": [0.5, -1]}}},
            "tensor", array("float64", [2], [0.5, -1.0]), [], rows=2),
    Payload("tftensor-float", {"data": {"names": ["x", "y"], "tftensor": {
                "dtype": "DT_FLOAT", "tensorShape": {"dim": [{"size": "1"}, {"size": "2"}]}, "floatVal": [1, 2]}}},
            "tftensor", array("float32", [1, 2], [[1.0, 2.0]]), ["x", "y"]),
    Payload("tftensor-int64", {"data": {"tftensor": {
                "dtype": "DT_INT64", "tensorShape": {"dim": [{"size": "2"}]}, "int64Val": ["5", "-6"]}}},
            "tftensor", array("int64", [2], [5, -6]), [], rows=2),
    Payload("tftensor-string", {"data": {"tftensor": {
                "dtype": "DT_STRING", "tensorShape": {"dim": [{"size": "2"}]}, "stringVal": [b64(b"a"), b64(b"bc")]}}},
            "tftensor", array("object", [2], [{"b64": b64(b"a")}, {"b64": b64(b"bc")}]), [], rows=2),
    Payload("tftensor-bool", {"data": {"tftensor": {
                "dtype": "DT_BOOL", "tensorShape": {"dim": [{"size": "1"}, {"size": "2"}]}, "boolVal": [True, False]}}},
            "tftensor", array("bool", [1, 2], [[True, False]]), []),
    Payload("tftensor-content", {"data": {"tftensor": {
                "dtype": "DT_FLOAT", "tensorShape": {"dim": [{"size": "2"}]},
                "tensorContent": b64(struct.pack("<2f", 1.5, -2.0))}}},
            "tftensor", array("float32", [2], [1.5, -2.0]), [], rows=2),
    Payload("tftensor-half", {"data": {"tftensor": {
                "dtype": "DT_HALF", "tensorShape": {"dim": [{"size": "1"}]}, "halfVal": [15360]}}},
            "tftensor", array("float16", [1], [1.0]), []),
    Payload("names-only", {"data": {"names": ["a", "b"]}}, "", {"type": "none"}, ["a", "b"]),
    Payload("strData", {"strData": "hello \u2713"}, "strData", {"type": "str", "value": "hello \u2713"}, []),
    Payload("binData", {"binData": b64(b"\x00\x01\xfe\xff")}, "binData",
            {"type": "bytes", "b64": b64(b"\x00\x01\xfe\xff")}, []),
    Payload("jsonData", {"jsonData": {"a": [1, "x", None, True, {"b": 2.5}]}}, "jsonData",
            {"type": "json", "value": {"a": [1, "x", None, True, {"b": 2.5}]}}, []),
    Payload("jsonData-scalar", {"jsonData": 3}, "jsonData", {"type": "json", "value": 3}, []),
    Payload("jsonData-null", {"jsonData": None}, "jsonData", {"type": "none"}, []),
    Payload("customData-value", {"customData": {"@type": "type.googleapis.com/google.protobuf.Value",
                                                "value": _value_json}},
            "customData", {"type": "custom", "type_url": "type.googleapis.com/google.protobuf.Value",
                           "b64": packed(json_format.ParseDict(_value_json, struct_pb2.Value()))}, []),
    Payload("customData-seldon", {"customData": {"@type": "type.googleapis.com/seldon.protos.SeldonMessage",
                                                 "strData": "inner"}},
            "customData", {"type": "custom", "type_url": "type.googleapis.com/seldon.protos.SeldonMessage",
                           "b64": packed(_inner_message)}, []),
    Payload("meta", {"strData": "m", "meta": {"puid": "p-1", "tags": {"t": "v", "n": 1, "nested": {"a": [1, 2]}},
                                              "routing": {"other": 1, "r2": -1}, "requestPath": {"m1": "img:1"}}},
            "strData", {"type": "str", "value": "m"}, [],
            meta={"puid": "p-1", "tags": {"t": "v", "n": 1, "nested": {"a": [1, 2]}},
                  "routing": {"other": 1, "r2": -1}, "requestPath": {"m1": "img:1"}}),
    Payload("empty", {}, "", {"type": "none"}, []),
]
PAYLOAD_IDS = [p.id for p in PAYLOADS]

EMPTY_META = {"puid": "", "tags": {}, "routing": {}, "requestPath": {}}


def expected_view(p: Payload) -> dict:
    return {"kind": p.kind, "features": p.features, "names": p.names, "rows": p.rows,
            "meta": p.meta or EMPTY_META}


def view_core(view: dict) -> dict:
    """The transport-neutral part of an echo view (no path, headers, query)."""
    return {k: view[k] for k in ("kind", "features", "names", "rows", "meta")}


def to_proto(message: dict, cls=pb.SeldonMessage):
    return json_format.ParseDict(message, cls())


# --- invalid messages ------------------------------------------------------------------

@dataclass
class Bad:
    id: str
    body: Any  # a JSON value, or raw bytes sent as they are
    names: tuple  # substrings the error's info must contain (the field at fault)


def _tf(**fields) -> dict:
    return {"data": {"tftensor": fields}}


ROUTE_ERRORS = [
    Bad("malformed-json", b'{"data": {"ndarray": [[1, 2]', ("invalid JSON",)),
    Bad("not-utf8", b'{"strData": "\xff"}', ("invalid JSON",)),
    Bad("empty-body", b"", ("empty",)),
    Bad("body-array", [1, 2], ("body",)),
    Bad("body-string", "strData", ("body",)),
    Bad("strData-int", {"strData": 5}, ("strData",)),
    Bad("ndarray-str", {"data": {"ndarray": "x"}}, ("data.ndarray",)),
    Bad("data-list", {"data": [1]}, ("data",)),
    Bad("routing-str", {"meta": {"routing": {"a": "x"}}}, ("meta.routing.a",)),
    Bad("routing-float", {"meta": {"routing": {"a": 1.5}}}, ("meta.routing.a",)),
    Bad("routing-bool", {"meta": {"routing": {"a": True}}}, ("meta.routing.a",)),
    Bad("routing-int64", {"meta": {"routing": {"a": 2**40}}}, ("meta.routing.a",)),
    Bad("routing-list", {"meta": {"routing": [1]}}, ("meta.routing",)),
    Bad("names-int", {"data": {"names": [1], "ndarray": [[1]]}}, ("data.names",)),
    Bad("names-str", {"data": {"names": "ab"}}, ("data.names",)),
    Bad("two-data-fields", {"strData": "a", "binData": "AA=="}, ("strData", "binData")),
    Bad("data-and-jsonData", {"data": {"ndarray": [[1]]}, "jsonData": None}, ("data", "jsonData")),
    Bad("two-tensor-forms", {"data": {"ndarray": [[1]], "tensor": {"values": [1]}}}, ("ndarray", "tensor")),
    Bad("tensor-shape-mismatch", {"data": {"tensor": {"shape": [2, 2], "values": [1, 2, 3]}}}, ("data.tensor",)),
    Bad("tensor-shape-negative", {"data": {"tensor": {"shape": [-1], "values": [1]}}}, ("data.tensor.shape",)),
    Bad("tensor-shape-float", {"data": {"tensor": {"shape": [1.5], "values": [1]}}}, ("data.tensor.shape",)),
    Bad("tensor-values-str", {"data": {"tensor": {"shape": [1], "values": "x"}}}, ("data.tensor.values",)),
    Bad("tensor-values-nested", {"data": {"tensor": {"values": [[1], 2]}}}, ("data.tensor.values",)),
    Bad("tensor-shape-object", {"data": {"tensor": {"shape": {}, "values": [1]}}}, ("data.tensor.shape",)),
    Bad("tensor-values-zero", {"data": {"tensor": {"values": 0}}}, ("data.tensor.values",)),
    # The element count of these shapes overflows int64 (65536**4 == 2**64 wraps to 0).
    Bad("tensor-shape-overflow", {"data": {"tensor": {"shape": [65536] * 4, "values": []}}}, ("data.tensor",)),
    # Tensor.shape is int32: 2**31 is no valid shape (the JSON mapping of int32 rejects it too)
    # counts agree (0 == 0), yet numpy cannot index an array with these dimensions
    Bad("tensor-zero-size-huge-dims", {"data": {"tensor": {"shape": [2**31 - 1, 2**31 - 1, 0], "values": []}}},
        ("data.tensor",)),
    Bad("tensor-shape-int32", {"data": {"tensor": {"shape": [2**31, 0], "values": []}}}, ("data.tensor.shape",)),
    Bad("tftensor-shape-mismatch", _tf(dtype="DT_FLOAT", tensorShape={"dim": [{"size": "1"}, {"size": "3"}]},
                                       floatVal=[1, 2]), ("data.tftensor",)),
    Bad("tftensor-shape-overflow", _tf(dtype="DT_FLOAT", tensorShape={"dim": [{"size": str(2**32)}] * 2}),
        ("data.tftensor",)),
    Bad("tftensor-dtype", _tf(dtype="DT_NOPE"), ("data.tftensor",)),
    Bad("tftensor-dtype-unsupported", _tf(dtype="DT_COMPLEX64"), ("data.tftensor",)),
    Bad("tftensor-unknown-field", _tf(dtype="DT_FLOAT", floatVal=[1], bogus=1), ("data.tftensor",)),
    Bad("tftensor-value-type", _tf(dtype="DT_FLOAT", floatVal=["x"]), ("data.tftensor",)),
    Bad("tftensor-negative-dim", _tf(dtype="DT_FLOAT", tensorShape={"dim": [{"size": "-1"}]}), ("data.tftensor",)),
    Bad("tftensor-content-size", _tf(dtype="DT_FLOAT", tensorShape={"dim": [{"size": "2"}]},
                                     tensorContent=b64(b"\0\0\0\0")), ("data.tftensor.tensorContent",)),
    Bad("tftensor-uint8-range", _tf(dtype="DT_UINT8", tensorShape={"dim": [{"size": "1"}]}, intVal=[300]),
        ("data.tftensor",)),
    Bad("tftensor-half-range", _tf(dtype="DT_HALF", tensorShape={"dim": [{"size": "1"}]}, halfVal=[70000]),
        ("data.tftensor",)),
    Bad("binData-bad-base64", {"binData": "!!!"}, ("binData",)),
    Bad("binData-not-string", {"binData": [1]}, ("binData",)),
    Bad("customData-unknown-type", {"customData": {"@type": "type.googleapis.com/no.such.Type"}}, ("customData",)),
    Bad("customData-no-type", {"customData": {"value": 1}}, ("customData",)),
    Bad("customData-not-object", {"customData": 5}, ("customData",)),
    Bad("customData-bad-inner", {"customData": {"@type": "type.googleapis.com/seldon.protos.SeldonMessage",
                                                "strData": 5}}, ("customData",)),
    Bad("meta-not-object", {"meta": []}, ("meta",)),
    Bad("puid-int", {"meta": {"puid": 5}}, ("meta.puid",)),
    Bad("tags-list", {"meta": {"tags": [1]}}, ("meta.tags",)),
    Bad("requestPath-int", {"meta": {"requestPath": {"a": 1}}}, ("meta.requestPath",)),
]


def fb(routing=0, **fields) -> dict:
    """A valid feedback for the echo unit (routing None: no entry), with overrides."""
    out = {"request": {"data": {"ndarray": [[1.0, 2.0]]}}, "reward": 1.0,
           "response": {"meta": {"routing": {ECHO_UNIT: routing}}} if routing is not None else {}}
    out.update(fields)
    return out


FEEDBACK_ERRORS = [
    Bad("malformed-json", b'{"reward": ', ("invalid JSON",)),
    Bad("body-array", [fb()], ("body",)),
    Bad("no-response", {"request": {"strData": "x"}, "reward": 1}, ("routing", ECHO_UNIT)),
    Bad("no-routing", fb(routing=None), ("routing", ECHO_UNIT)),
    Bad("routing-other-unit", fb(routing=None, response={"meta": {"routing": {"other": 0}}}), ("routing", ECHO_UNIT)),
    Bad("routing-too-big", fb(routing=2), ("routing", "not one of")),
    Bad("routing-99", fb(routing=99), ("routing", "not one of")),
    Bad("routing-negative", fb(routing=-1), ("routing", "not one of")),
    Bad("routing-str", fb(routing="zero"), ("response.meta.routing.echo",)),
    Bad("routing-float", fb(routing=0.5), ("response.meta.routing.echo",)),
    Bad("reward-str", fb(reward="1"), ("reward",)),
    Bad("reward-bool", fb(reward=True), ("reward",)),
    Bad("reward-overflow", fb(reward=1e39), ("reward",)),
    Bad("request-bad", fb(request={"strData": 5}), ("request.strData",)),
    Bad("request-not-object", fb(request=[1]), ("request",)),
    Bad("request-empty-list", fb(request=[]), ("request",)),
    Bad("response-empty-list", fb(response=[]), ("response: expected a JSON object",)),
    Bad("response-zero", fb(response=0), ("response: expected a JSON object",)),
    Bad("request-two-fields", fb(request={"strData": "a", "jsonData": 1}), ("request",)),
    Bad("truth-bad", fb(truth={"data": {"ndarray": "x"}}), ("truth.data.ndarray",)),
    Bad("truth-not-object", fb(truth=5), ("truth",)),
    Bad("response-not-object", fb(response=5), ("response",)),
    Bad("response-meta-not-object", fb(response={"meta": "x"}), ("response.meta",)),
]


# --- call helpers ------------------------------------------------------------------------

def post_json(url: str, body, **kw) -> requests.Response:
    """POSTs a JSON value (or raw bytes as they are) as application/json."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return requests.post(url, data=data, headers={"Content-Type": "application/json", **kw.pop("headers", {})},
                         timeout=10, **kw)


def assert_seldon_error(r: requests.Response, status: int, *names: str) -> dict:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json"), r.headers
    body = r.json()
    assert set(body) == {"status"}, body
    st = body["status"]
    assert st["status"] == 1 and st["code"] == -1, st
    assert isinstance(st["reason"], str) and st["reason"], st
    assert isinstance(st["info"], str), st
    for name in names:
        assert name in st["info"], (name, st["info"])
    return st


def _serialize(m) -> bytes:
    return m if isinstance(m, bytes) else m.SerializeToString()


def grpc_call(channel, method: str, message, reply_cls=pb.SeldonMessage, metadata=None, timeout: float = 10):
    """Calls /service/Method with a message (or raw bytes); returns the reply message."""
    stub = channel.unary_unary(method, request_serializer=_serialize, response_deserializer=reply_cls.FromString)
    return stub(message, metadata=metadata, timeout=timeout)


def grpc_error(channel, method: str, message, **kw) -> grpc.RpcError:
    try:
        reply = grpc_call(channel, method, message, **kw)
    except grpc.RpcError as exc:
        return exc
    raise AssertionError(f"{method} answered OK: {reply}")


def reply_dict(msg) -> dict:
    return json_format.MessageToDict(msg)


class ThreadedWerkzeug:
    """A WSGI app on a real socket: werkzeug's threaded server in a daemon thread."""

    def __init__(self, app):
        from werkzeug.serving import make_server

        self.port = servers.free_port()
        self.server = make_server("127.0.0.1", self.port, app, threaded=True)
        # A short poll: stop() waits for serve_forever to look again (0.5 s by default).
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self):
        self.server.shutdown()
        self.thread.join(5)
        self.server.server_close()
