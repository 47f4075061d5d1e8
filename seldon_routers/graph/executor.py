"""The executor's walk over a predictor's graph, as Seldon Core 1.18.2 does it
(executor/predictor/predictor_process.go), over any `call(unit, path, body, headers)`.

Per node: the input call (/predict for a MODEL, /transform-input for a TRANSFORMER), then
the route (/route for a ROUTER, a uniform draw for RANDOM_ABTEST, else -1), then the
children (-1: all, concurrently, the lowest-index error wins; -2: none, the node's input is
the reply; N: child N), then /aggregate for a COMBINER (else child 0's reply), then
/transform-output for an OUTPUT_TRANSFORMER. Messages stay bytes, passed on unchanged, as
the executor passes them; only route replies and (for injection) replies are parsed.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Optional

from .deployment import Predictor, Unit, honoured_ratio_a
from .wire import failure_json

ALL, NONE = -1, -2
Call = Callable[[Unit, str, bytes, list], Awaitable[bytes]]


class UnitError(Exception):
    """A call that failed: the HTTP status and body the front answers with."""

    def __init__(self, status: int, body: bytes, own: bool = False):
        super().__init__(status)
        self.status, self.body = status, body
        self.own = own  # the executor's own failure payload, not a unit's reply


def failure(info: str, code: int = 500) -> UnitError:
    """The executor's own error payload (rest/client.go CreateErrorPayload)."""
    return UnitError(code, failure_json(code, info), own=True)


async def gather_all(calls) -> list:
    """Every call run concurrently to its end; then the lowest index's error, if any, is raised
    (upstream waits for every goroutine, then returns the first error in child order)."""
    replies = await asyncio.gather(*calls, return_exceptions=True)
    for reply in replies:
        if isinstance(reply, BaseException):
            raise reply
    return replies


@dataclass
class Context:
    headers: list  # forwarded to every unit call
    routing: dict = field(default_factory=dict)  # the executor's per-request Routing map


class Executor:
    def __init__(self, predictor: Predictor, call: Call, rng: Optional[random.Random] = None,
                 routing_injection: bool = False):
        self.predictor, self.call = predictor, call
        self.rng = rng or random.Random()
        self.routing_injection = routing_injection

    async def predict(self, message: bytes, headers: list) -> bytes:
        return await self._predict(self.predictor.graph, message, Context(headers))

    async def feedback(self, message: bytes, headers: list) -> bytes:
        routing = feedback_routing(message, self.predictor)  # checked before any unit is called
        return await self._feedback(self.predictor.graph, message, headers, routing)

    # --- predictions -----------------------------------------------------------------------

    async def _predict(self, unit: Unit, message: bytes, ctx: Context) -> bytes:
        path = unit.calls_input
        if path:
            ctx.routing[unit.name] = -1
            message = await self.call(unit, path, message, ctx.headers)
        message = await self._children(unit, message, ctx)
        if unit.calls_output:
            message = await self.call(unit, "/transform-output", message, ctx.headers)
        if self.routing_injection:
            message = inject_routing(message, ctx.routing)
        return message

    async def _children(self, unit: Unit, message: bytes, ctx: Context) -> bytes:
        if not unit.children:
            return message  # a leaf records no route
        route = await self._route(unit, message, ctx)
        if route == NONE:
            ctx.routing[unit.name] = NONE
            return message
        if route == ALL:
            try:
                replies = await gather_all(self._predict(c, message, ctx) for c in unit.children)
            finally:
                ctx.routing[unit.name] = ALL
        else:
            child = _child(unit, route)
            try:
                replies = [await self._predict(child, message, ctx)]
            finally:
                ctx.routing[unit.name] = route  # recorded even when the child failed, as upstream
        if unit.calls_aggregate:
            ctx.routing[unit.name] = -1
            return await self.call(unit, "/aggregate", seldon_message_list(replies), ctx.headers)
        return replies[0]

    async def _route(self, unit: Unit, message: bytes, ctx: Context) -> int:
        if unit.calls_route:
            try:
                reply = await self.call(unit, "/route", message, ctx.headers)
            except UnitError as exc:
                # A route has no payload to pass on: upstream keeps the router's status and
                # answers its own failure payload (server.go respondWithError).
                if exc.own:
                    raise
                err = failure(f"Internal service call from executor failed calling /route on "
                              f"{unit.name!r}: status code {exc.status}")
                err.status = exc.status
                raise err from None
            return read_route(unit, reply)
        if unit.is_abtest:
            return 0 if self.rng.random() < ratio_a(unit) else 1
        return ALL

    # --- feedback --------------------------------------------------------------------------

    async def _feedback(self, unit: Unit, message: bytes, headers: list, routing: dict) -> bytes:
        if unit.children:
            route = routing.get(unit.name, ALL)
            if route == ALL:
                await gather_all(self._feedback(c, message, headers, routing) for c in unit.children)
            elif route != NONE:  # -2: no child gets it (upstream indexes children[-2] and panics)
                await self._feedback(unit.children[route], message, headers, routing)
        if unit.calls_feedback:
            return await self.call(unit, "/send-feedback", message, headers)
        return message


def _child(unit: Unit, route: int) -> Unit:
    # Upstream indexes the children without a check (a Go panic); here it is a clear 500: the
    # router answered it. (Feedback's routes are the client's, checked by feedback_routing.)
    if not 0 <= route < len(unit.children):
        raise failure(f"route of {unit.name!r} is {route}, but it has {len(unit.children)} children "
                      f"(a route is -2, -1 or 0..{len(unit.children) - 1})")
    return unit.children[route]


def ratio_a(unit: Unit) -> float:
    """RANDOM_ABTEST's share of child 0 (its value is checked when the file is loaded)."""
    ratio = honoured_ratio_a(unit.parameters)
    return 0.5 if ratio is None else float(ratio.get("value"))


def _load(raw: bytes):
    """JSON, or None where it is none (or nests past what the parser recurses to)."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return None


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def read_route(unit: Unit, reply: bytes) -> int:
    """The route in a router's reply (util.ExtractRouteFromSeldonJson): a SeldonMessage's
    first `ndarray` value (or first of its first row), `tensor.values[0]` or
    `tftensor.intVal[0]` (`int_val`, the proto field name, too: jsonpb reads both), truncated
    to int; any other JSON object is -1 (upstream: any other SeldonMessage; jsonpb refuses an
    object that is none); else a JSON array of ints. Upstream a value that is no number reads
    as 0 and an empty array panics; here those, and any value of the wrong shape, are a 500
    naming the router and saying what it answered."""
    doc = _load(reply)
    if isinstance(doc, list) and doc and all(_is_int(v) for v in doc):
        return doc[0]

    def bad(what: str) -> UnitError:
        return failure(f"router {unit.name!r}: /route answered {what}: {reply[:200]!r}")

    if not isinstance(doc, dict):
        raise bad("neither a SeldonMessage nor a JSON array of ints")
    data = doc.get("data")
    data = data if isinstance(data, dict) else {}
    if "ndarray" in data:
        where, values = "data.ndarray", data["ndarray"]
        if isinstance(values, list) and values and isinstance(values[0], list):
            where, values = "data.ndarray[0]", values[0]
    elif "tensor" in data:
        tensor = data["tensor"]
        if not isinstance(tensor, dict):
            raise bad(f"data.tensor as a {type(tensor).__name__}, not an object")
        where, values = "data.tensor.values", tensor.get("values")
    elif "tftensor" in data:
        tf = data["tftensor"]
        if not isinstance(tf, dict):
            raise bad(f"data.tftensor as a {type(tf).__name__}, not an object")
        key = "intVal" if "intVal" in tf else "int_val"
        where, values = f"data.tftensor.{key}", tf.get(key)
    else:
        return ALL
    if not isinstance(values, list) or not values:
        raise bad(f"no route: {where} is no list of numbers")
    first = values[0]
    if isinstance(first, bool) or not isinstance(first, (int, float)):
        raise bad(f"no route number: {where}[0] is {first!r}")
    if not math.isfinite(first):
        raise bad(f"no route: {where}[0] is {first!r}")
    return int(first)  # truncates towards zero, as Go's int(float64)


def feedback_routing(message: bytes, predictor: Predictor | None = None) -> dict:
    """`response.meta.routing` of a Feedback; {} (every child) where it is absent or unreadable,
    as util.RouteFromFeedbackJsonMeta answers -1 when the Feedback does not parse. A value
    that is a number but no route is the client's error, a 400 naming
    `response.meta.routing.<name>`: not finite, not whole (upstream's jsonpb refuses 1.5 and
    then sends to every child), or, for a node of `predictor` with children, not -2, -1 or
    0..children-1 (upstream indexes its children with it and panics)."""
    doc = _load(message)
    try:
        routing = doc["response"]["meta"]["routing"]
    except (TypeError, KeyError):
        return {}
    if not isinstance(routing, dict):
        return {}
    fanout = {u.name: len(u.children) for u in predictor.units()} if predictor else {}
    found = {}
    for name, v in routing.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            continue  # not a number: as absent
        where = f"response.meta.routing.{name}"
        if not (_is_int(v) or (math.isfinite(v) and v == int(v))):
            raise failure(f"{where}: expected a route, an integer, got {v!r}", 400)
        route, n = int(v), fanout.get(name, 0)
        if n and not -2 <= route < n:
            raise failure(f"{where}: {name!r} has {n} children; a route is -2, -1 or 0..{n - 1}, "
                          f"got {route}", 400)
        found[name] = route
    return found


def inject_routing(message: bytes, routing: dict) -> bytes:
    """util.InsertRouteToSeldonPredictPayload: meta.routing replaced by the request's routing
    map, only where the reply is a JSON object whose `meta` is an object; else unchanged (and
    unchanged where it would not serialise back to JSON: 1e400 reads as inf)."""
    doc = _load(message)
    if isinstance(doc, dict) and isinstance(doc.get("meta"), dict):
        doc["meta"]["routing"] = dict(routing)
        try:
            return json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()
        except (ValueError, RecursionError):
            return message
    return message


def seldon_message_list(replies: list) -> bytes:
    """What /aggregate receives: {"seldonMessages": [...]} (rest CombineSeldonMessagesToJson)."""
    return b'{"seldonMessages":[' + b",".join(replies) + b"]}"
