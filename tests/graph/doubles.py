"""Test doubles for the graph runner's tests: small real HTTP servers (threads, real sockets)
standing where a Seldon model or a scripted router would be. Each records the calls it gets."""

from __future__ import annotations

import json
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

# (path, headers (lower-case names), parsed body) -> (status, reply object or bytes)
Behaviour = Callable[[str, dict, object], tuple]


def tagged(name: str) -> Behaviour:
    """A model: the message back with meta.tags.unit = name (as the runner's stub answers)."""
    def answer(path, headers, body):
        if path == "/aggregate":
            body = body["seldonMessages"][0]
        meta = dict(body.get("meta") or {})
        meta["tags"] = {**(meta.get("tags") or {}), "unit": name}
        return 200, {**body, "meta": meta}
    return answer


def status(code: int, info: str) -> Behaviour:
    return lambda path, headers, body: (code, {"status": {"code": code, "info": info, "status": "FAILURE"}})


class Double:
    """One server on 127.0.0.1; `calls` is [(path, headers, body)] in arrival order."""

    def __init__(self, behaviour: Behaviour, log: list | None = None, name: str = ""):
        self.behaviour, self.name = behaviour, name
        self.calls: list = []
        self.log = log  # a list shared by several doubles: (name, path) in arrival order
        self.release = threading.Event()  # for doubles that hold their reply until released
        double = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw
                headers = {k.lower(): v for k, v in self.headers.items()}
                with lock:
                    double.calls.append((self.path, headers, body))
                    if double.log is not None:
                        double.log.append((double.name, self.path))
                code, reply = double.behaviour(self.path, headers, body)
                data = reply if isinstance(reply, bytes) else json.dumps(reply).encode()
                # One write, head and body: two small writes meet the client's delayed ACK (~40 ms).
                head = (f"HTTP/1.1 {code} {HTTPStatus(code).phrase}\r\ncontent-type: application/json\r\n"
                        f"content-length: {len(data)}\r\n\r\n").encode()
                self.wfile.write(head + data)

            def log_message(self, *args):
                pass

        lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def paths(self) -> list:
        return [c[0] for c in self.calls]

    def clear(self) -> None:
        self.calls.clear()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def held(double_ref: list) -> Behaviour:
    """Answers only once the double's `release` is set (a call the runner must time out on)."""
    def answer(path, headers, body):
        double_ref[0].release.wait(60)
        return 200, body
    return answer


FORMS = {  # how a router may answer route N, all read as N by the executor
    "ndarray": lambda n: {"data": {"names": ["t:0"], "ndarray": [[n]]}, "meta": {}},
    "ndarray-flat": lambda n: {"data": {"ndarray": [n]}},
    "tensor": lambda n: {"data": {"tensor": {"shape": [1, 1], "values": [n]}}},
    "tftensor": lambda n: {"data": {"tftensor": {"dtype": "DT_INT32", "intVal": [n]}}},
    "int_val": lambda n: {"data": {"tftensor": {"dtype": "DT_INT32", "int_val": [n]}}},  # the proto name
    "array": lambda n: [n],
    "float": lambda n: {"data": {"ndarray": [[n + 0.9]]}},  # truncated
    "strdata": lambda n: {"strData": str(n)},  # not DefaultData: -1 whatever it says
}


NONSENSE = {  # router replies that hold no route: the executor's 500, saying what the router answered
    "tensor-list": ({"data": {"tensor": [1]}}, "data.tensor as a list"),
    "nan": (b'{"data":{"ndarray":[[NaN]]}}', "data.ndarray[0][0] is nan"),
    "infinity": (b'{"data":{"tensor":{"values":[1e400]}}}', "data.tensor.values[0] is inf"),
    "values-null": ({"data": {"tensor": {"values": None}}}, "data.tensor.values is no list"),
    "tftensor-string": ({"data": {"tftensor": "1"}}, "data.tftensor as a str"),
}


class InFlight:
    """Doubles that count the calls they hold at once: each call waits (at most `wait` s)
    until `expect` are in flight together, then answers as `tagged(name)`."""

    def __init__(self, expect: int, wait: float = 10.0):
        self.expect, self.wait = expect, wait
        self.now = self.most = 0
        self.lock = threading.Lock()
        self.all_in = threading.Event()

    def behaviour(self, name: str) -> Behaviour:
        def answer(path, headers, body):
            with self.lock:
                self.now += 1
                self.most = max(self.most, self.now)
                if self.now >= self.expect:
                    self.all_in.set()
            self.all_in.wait(self.wait)
            with self.lock:
                self.now -= 1
            return tagged(name)(path, headers, body)
        return answer


def scripted_router(path, headers, body):
    """Routes as the request's x-route header says, in the form x-form names."""
    if path == "/send-feedback":
        return 200, {"meta": {"tags": {"unit": "r"}}, "data": {"names": [], "ndarray": []}}
    if "x-router-status" in headers:
        return int(headers["x-router-status"]), {"status": {"code": -1, "info": "router down"}}
    form = headers.get("x-form", "ndarray")
    if form in NONSENSE:
        return 200, NONSENSE[form][0]
    return 200, FORMS[form](int(headers.get("x-route", "0")))
