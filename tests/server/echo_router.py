"""Routers for the transport tests, served by import path (`echo_router.EchoRouter`, with
tests/server on PYTHONPATH) or mounted in-process (Flask).

EchoRouter reports what it SAW: its decision's tags hold the request view the server
built (kind, features, names, meta, selected headers, path, query), so a test can check
the decoding end to end, and compare REST with gRPC. It learns: each applied feedback is
counted and recorded in state(), which GET /state serves, so a test can check that a
rejected call changed nothing.
"""

from __future__ import annotations

import asyncio
import base64

import numpy as np
import orjson

from seldon_routers import Decision, Router
from seldon_routers.request import CustomData

ECHO_HEADER_PREFIX = "x-echo"


def _plain(x):
    """A JSON-able copy of a decoded value (bytes as {"b64": ...})."""
    if isinstance(x, bytes):
        return {"b64": base64.b64encode(x).decode()}
    if isinstance(x, dict):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_plain(v) for v in x]
    if isinstance(x, np.generic):
        return _plain(x.item())
    return x


MAX_LIST_NODES = 100_000


def _list_nodes(shape) -> int:
    """How many Python objects ndarray.tolist() makes (a (2**31, 0) array: 2**31 lists)."""
    total, n = 0, 1
    for d in shape:
        n *= d
        total += n
    return total


def describe_features(features) -> dict:
    if features is None:
        return {"type": "none"}
    if isinstance(features, np.ndarray):
        values = (_plain(features.tolist()) if _list_nodes(features.shape) <= MAX_LIST_NODES
                  else f"omitted: {features.size} values")
        return {"type": "array", "dtype": features.dtype.name, "shape": list(features.shape), "values": values}
    if isinstance(features, str):
        return {"type": "str", "value": features}
    if isinstance(features, bytes):
        return {"type": "bytes", "b64": base64.b64encode(features).decode()}
    if isinstance(features, CustomData):
        return {"type": "custom", "type_url": features.type_url,
                "b64": base64.b64encode(features.value).decode()}
    return {"type": "json", "value": _plain(features)}


def _safe(view: dict) -> dict:
    """The view itself when it serialises (tags must), else a note: fuzzed requests can
    be deeper than any JSON encoder nests."""
    try:
        orjson.dumps(view)
        return view
    except (TypeError, orjson.JSONEncodeError) as exc:
        return {"unserialisable": str(exc)}


def describe(request) -> dict:
    headers = {k: v for k, v in request.headers.items() if k.startswith(ECHO_HEADER_PREFIX)}
    return _safe({
        "kind": request.kind,
        "features": describe_features(request.features),
        "names": list(request.feature_names),
        "meta": _plain(request.meta),
        "rows": request.rows,
        "headers": headers,
        "path": request.path,
        "query": {k: list(v) for k, v in request.query.items()},
    })


class EchoRouter(Router):
    """Always child 0; tags {"view": <the request as the router saw it>}. Learns."""

    n_children = 2
    name = "echo"

    def __init__(self):
        self.routed = 0
        self.applied = 0
        self.last_feedback = None
        self._pending = None

    def decide(self, request):
        self.routed += 1
        return Decision(0, tags={"view": describe(request)})

    def learn(self, feedback):
        self._pending = {
            "request": describe(feedback.request),
            "response_meta": _plain(feedback.response_meta),
            "reward": feedback.reward,
            "truth": describe_features(feedback.truth),
            "routing": feedback.routing,
        }
        return super().learn(feedback)

    def send_feedback(self, features, feature_names, reward, truth, routing=None, **kwargs):
        self.applied += 1
        self.last_feedback = _safe(self._pending or {})

    def state(self) -> dict:
        return {"routed": self.routed, "applied": self.applied, "last_feedback": self.last_feedback}


class ScriptedRouter(Router):
    """Returns the decision a jsonData request asks for: {"return": "<case>"}.

    Cases are the invalid decisions the server must refuse (a str, out-of-range ints,
    a float, a bool, None, an exception) and the valid ones it must normalise (a numpy
    integer, -1, -2)."""

    n_children = 2

    CASES = {
        "str": lambda: "1",
        "99": lambda: 99,
        "2": lambda: 2,
        "-3": lambda: -3,
        "float": lambda: 1.0,
        "bool": lambda: True,
        "none": lambda: None,
        "decision-str": lambda: Decision("0"),
        "np.int64": lambda: np.int64(1),
        "np.int32-decision": lambda: Decision(np.int32(1), {"why": "numpy"}),
        "-1": lambda: -1,
        "-2": lambda: -2,
    }

    def decide(self, request):
        case = request.features["return"]
        if case == "raise":
            raise ValueError("scripted failure")
        return self.CASES[case]()


class SlowRouter(Router):
    """An async router that takes `delay` seconds per decision: for drain tests."""

    n_children = 2

    def __init__(self, delay: float = 1.0):
        self.delay = delay
        self.started = 0

    async def decide(self, request):
        self.started += 1
        await asyncio.sleep(self.delay)
        return Decision(1, {"slept": self.delay})

    def state(self) -> dict:
        return {"started": self.started}
