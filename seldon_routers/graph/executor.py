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
import random
from dataclasses import dataclass, field
from typing import Awaitable, Callable, Optional

from .deployment import Predictor, Unit

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
    body = json.dumps({"status": {"code": code, "info": info, "status": "FAILURE"}}).encode()
    return UnitError(code, body, own=True)


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
        return await self._feedback(self.predictor.graph, message, headers, feedback_routing(message))

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
            replies = await asyncio.gather(*(self._predict(c, message, ctx) for c in unit.children),
                                           return_exceptions=True)
            ctx.routing[unit.name] = ALL
            for reply in replies:  # in child order: the lowest index's error wins
                if isinstance(reply, BaseException):
                    raise reply
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
                replies = await asyncio.gather(*(self._feedback(c, message, headers, routing)
                                                 for c in unit.children), return_exceptions=True)
                for reply in replies:
                    if isinstance(reply, BaseException):
                        raise reply
            else:
                await self._feedback(_child(unit, route, "feedback's response.meta.routing"),
                                     message, headers, routing)
        if unit.calls_feedback:
            return await self.call(unit, "/send-feedback", message, headers)
        return message


def _child(unit: Unit, route: int, source: str = "route") -> Unit:
    # Upstream indexes the children without a check (a Go panic); here it is a clear 500.
    if not 0 <= route < len(unit.children):
        raise failure(f"{source} of {unit.name!r} is {route}, but it has {len(unit.children)} children "
                      f"(a route is -2, -1 or 0..{len(unit.children) - 1})")
    return unit.children[route]


def ratio_a(unit: Unit) -> float:
    """RANDOM_ABTEST's ratioA: honoured only when it is the unit's only parameter (components.go)."""
    params = unit.parameters
    if len(params) == 1 and params[0].get("name") == "ratioA":
        try:
            return float(params[0].get("value"))
        except (TypeError, ValueError):
            raise failure(f"{unit.name}: parameter ratioA: expected a number, "
                          f"got {params[0].get('value')!r}") from None
    return 0.5


def read_route(unit: Unit, reply: bytes) -> int:
    """The route in a router's reply (util.ExtractRouteFromSeldonJson): a SeldonMessage's
    first `ndarray` value (or first of its first row), `tensor.values[0]` or
    `tftensor.intVal[0]`, truncated to int; any other SeldonMessage is -1; else a JSON array
    of ints. Upstream a value that is no number reads as 0 and an empty array panics; here
    both are a 500 naming the router."""
    try:
        doc = json.loads(reply)
    except ValueError:
        doc = None
    if isinstance(doc, list) and doc and all(isinstance(v, int) and not isinstance(v, bool) for v in doc):
        return doc[0]
    if not isinstance(doc, dict):
        raise failure(f"router {unit.name!r}: /route answered neither a SeldonMessage nor a JSON array of "
                      f"ints: {reply[:200]!r}")
    data = doc.get("data")
    data = data if isinstance(data, dict) else {}
    if "ndarray" in data:
        values = data["ndarray"]
        first = values[0] if isinstance(values, list) and values else None
        if isinstance(first, list):
            first = first[0] if first else None
    elif "tensor" in data:
        values = (data["tensor"] or {}).get("values") or []
        first = values[0] if values else None
    elif "tftensor" in data:
        values = (data["tftensor"] or {}).get("intVal") or []
        first = values[0] if values else None
    else:
        return ALL
    if isinstance(first, bool) or not isinstance(first, (int, float)):
        raise failure(f"router {unit.name!r}: /route's data holds no route number: {reply[:200]!r}")
    return int(first)  # truncates towards zero, as Go's int(float64)


def feedback_routing(message: bytes) -> dict:
    """`response.meta.routing` of a Feedback; {} (every child) where it is absent or unreadable,
    as util.RouteFromFeedbackJsonMeta answers -1 when the Feedback does not parse."""
    try:
        doc = json.loads(message)
        routing = doc["response"]["meta"]["routing"]
    except (ValueError, TypeError, KeyError):
        return {}
    if not isinstance(routing, dict):
        return {}
    return {k: int(v) for k, v in routing.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)}


def inject_routing(message: bytes, routing: dict) -> bytes:
    """util.InsertRouteToSeldonPredictPayload: meta.routing replaced by the request's routing
    map, only where the reply is a JSON object whose `meta` is an object; else unchanged."""
    try:
        doc = json.loads(message)
    except ValueError:
        return message
    if isinstance(doc, dict) and isinstance(doc.get("meta"), dict):
        doc["meta"]["routing"] = dict(routing)
        return json.dumps(doc, separators=(",", ":")).encode()
    return message


def seldon_message_list(replies: list) -> bytes:
    """What /aggregate receives: {"seldonMessages": [...]} (rest CombineSeldonMessagesToJson)."""
    return b'{"seldonMessages":[' + b",".join(replies) + b"]}"
