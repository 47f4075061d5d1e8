"""One error hierarchy for the whole package.

Routers and the codec raise these; only the transports (server/rest.py, server/grpc.py)
turn them into HTTP statuses and gRPC codes, so the mapping lives in one place: here.
The gRPC code is kept as a name so this module needs no grpc import.
"""

from __future__ import annotations

import reprlib


class RouterError(Exception):
    """Base of every error this package raises on purpose."""

    http_status = 500
    grpc_code = "INTERNAL"
    reason = "MICROSERVICE_INTERNAL_ERROR"

    # Extra reply headers (Retry-After, x-ratelimit-*): HTTP headers, gRPC trailing metadata.
    headers: dict = {}
    # (type, code) of an OpenAI-style `error` object the reply carries beside Seldon's
    # `status`, for the errors an OpenAI client must understand (LLM routers, the gateway).
    openai_error: tuple | None = None

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def header_pairs(self) -> list:
        """`headers` as lower-case (name, value) strings: HTTP headers, gRPC metadata."""
        return [(str(k).lower(), str(v)) for k, v in self.headers.items()]


class BadRequest(RouterError):
    """The request (or feedback) is malformed or names something that does not exist."""

    http_status = 400
    grpc_code = "INVALID_ARGUMENT"
    reason = "MICROSERVICE_BAD_DATA"


class NotFound(RouterError):
    """No such endpoint, or no route matches the request."""

    http_status = 404
    grpc_code = "NOT_FOUND"
    reason = "NOT_FOUND"


class NoRoute(NotFound):
    """No rule matches the request and the router has no fallback child."""

    reason = "NO_ROUTE"


class MethodNotAllowed(RouterError):
    http_status = 405
    grpc_code = "UNIMPLEMENTED"
    reason = "METHOD_NOT_ALLOWED"


class NotDefined(BadRequest):
    """A call of Seldon's unit API that a router does not define (aggregate: only a COMBINER
    aggregates). REST answers 400, as Seldon's wrapper does; gRPC has a code for it."""

    grpc_code = "UNIMPLEMENTED"


class PayloadTooLarge(RouterError):
    http_status = 413
    grpc_code = "RESOURCE_EXHAUSTED"
    reason = "PAYLOAD_TOO_LARGE"


class RequestTimeout(RouterError):
    """The client did not send its whole request within the read timeout (--read-timeout):
    408, and the connection closes (the rest of a slow body is not worth reading)."""

    http_status = 408
    grpc_code = "DEADLINE_EXCEEDED"
    reason = "REQUEST_TIMEOUT"
    headers = {"Connection": "close"}


class HeadersTooLarge(RouterError):
    """A request line and headers over the server's limit (uvicorn's httptools keeps any
    amount in memory): 431, and the connection closes. OpenAI's error object too, since the
    gateway's server refuses it before any app (REST or gateway) sees the request."""

    http_status = 431
    grpc_code = "RESOURCE_EXHAUSTED"
    reason = "HEADERS_TOO_LARGE"
    headers = {"Connection": "close"}
    openai_error = ("invalid_request_error", "request_headers_too_large")


class TooManyRequests(RouterError):
    """More requests in flight than the server was configured to accept."""

    http_status = 429
    grpc_code = "RESOURCE_EXHAUSTED"
    reason = "TOO_MANY_REQUESTS"


class RateLimited(TooManyRequests):
    """A user over a requests- or tokens-per-minute limit (the LLM routers): 429 with
    Retry-After and x-ratelimit-* headers, and OpenAI's error body."""

    reason = "RATE_LIMITED"
    openai_error = ("rate_limit_error", "rate_limit_exceeded")

    def __init__(self, message: str, headers: dict):
        super().__init__(message)
        self.headers = headers


class UnknownModel(NotFound):
    """The request's `model` is served by none of the router's children (OpenAI's 404)."""

    reason = "MODEL_NOT_FOUND"
    openai_error = ("invalid_request_error", "model_not_found")


class NoCapacity(RouterError):
    """No child can serve the request within its objective (the `slo` strategy, when set
    to refuse rather than answer best effort): 429 or 503, as configured."""

    grpc_code = "RESOURCE_EXHAUSTED"
    reason = "NO_CAPACITY"
    openai_error = ("server_error", "no_capacity")

    def __init__(self, message: str, http_status: int = 503, headers: dict | None = None):
        super().__init__(message)
        self.http_status = http_status
        self.grpc_code = "RESOURCE_EXHAUSTED" if http_status == 429 else "UNAVAILABLE"
        self.headers = headers or {}


class Unauthorized(RouterError):
    """An admin action (or a restricted /state) without the right bearer token."""

    http_status = 401
    grpc_code = "UNAUTHENTICATED"
    reason = "UNAUTHORIZED"
    headers = {"WWW-Authenticate": 'Bearer realm="seldon-router admin"'}


class Conflict(RouterError):
    """An admin action this router, or its state store, cannot take."""

    http_status = 409
    grpc_code = "FAILED_PRECONDITION"
    reason = "CONFLICT"


class NotReady(RouterError):
    http_status = 503
    grpc_code = "UNAVAILABLE"
    reason = "NOT_READY"


class StoreUnavailable(RouterError):
    """The state store cannot take this feedback now (unreachable, and its buffer full)."""

    http_status = 503
    grpc_code = "UNAVAILABLE"
    reason = "STATE_STORE_UNAVAILABLE"


class RouterFailed(RouterError):
    """The router's own code raised, or returned a decision that is not a valid route."""

    http_status = 500
    grpc_code = "INTERNAL"
    reason = "MICROSERVICE_INTERNAL_ERROR"


class ConfigError(RouterError, ValueError):
    """Invalid configuration or parameter: stops start-up with a message naming the field."""

    reason = "CONFIG_ERROR"


# What an error message shows of a client's value: a few levels of nesting, a few items per
# container, short strings. Python's repr of a value nested ~1000 deep (JSON allows 1024 here)
# raises RecursionError, and a quoted 16 MB body would flood the reply and the logs.
_QUOTE = reprlib.Repr()
_QUOTE.maxlevel, _QUOTE.maxlist, _QUOTE.maxtuple, _QUOTE.maxdict = 3, 6, 6, 6
_QUOTE.maxstring, _QUOTE.maxlong, _QUOTE.maxother = 80, 40, 80
QUOTE_LIMIT = 200


def quote(value, limit: int = QUOTE_LIMIT) -> str:
    """`value` as an error message quotes it: repr-like, at most 3 levels deep and `limit`
    characters long; never raises (a value whose repr fails reads as its type)."""
    try:
        text = _QUOTE.repr(value)
    except Exception:  # e.g. a container subclass reprlib leaves to its own (recursive) repr
        text = f"<{type(value).__name__}>"
    return clip(text, limit)


def clip(text: str, limit: int = QUOTE_LIMIT) -> str:
    """A message from elsewhere (a library's exception) cut to `limit` characters: such
    messages may quote the client's value whole."""
    return text if len(text) <= limit else text[:limit - 3] + "..."
