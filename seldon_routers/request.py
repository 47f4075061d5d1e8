"""The transport-neutral view of one call: what a router may look at.

REST and gRPC, JSON and protobuf all decode into these same objects (see codec/), so a
router never knows or cares which transport carried the request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping

from .errors import BadRequest, quote

# Which SeldonMessage form carried the data; "" when the message had none.
DATA_KINDS = ("ndarray", "tensor", "tftensor", "strData", "binData", "jsonData", "customData")
RAW_KINDS = ("strData", "binData", "jsonData", "customData")


@dataclass(frozen=True)
class CustomData:
    """A `customData` payload: a google.protobuf.Any, kept packed."""

    type_url: str
    value: bytes


class Headers(Mapping):
    """Request headers, built from the transport's raw pairs only when a router reads them:
    lower-case names, repeated names joined by "," (Envoy's rule)."""

    __slots__ = ("_pairs", "_map")

    def __init__(self, pairs=()):
        self._pairs = pairs  # (name, value) pairs, or a function returning them
        self._map = None

    def _built(self) -> dict:
        if self._map is None:
            out: dict = {}
            for name, value in (self._pairs() if callable(self._pairs) else self._pairs) or ():
                if isinstance(name, bytes):
                    name = name.decode("latin-1")
                if isinstance(value, bytes):  # ASGI headers, gRPC "-bin" metadata
                    value = value.decode("latin-1")
                name = name.lower()
                out[name] = f"{out[name]},{value}" if name in out else value
            self._map = out
        return self._map

    def __getitem__(self, name: str) -> str:
        return self._built()[name.lower()]

    def get(self, name: str, default=None):
        # Mapping.get goes through a KeyError for a missing name: routers ask for headers
        # that are mostly absent (a strategy, a session), on every request.
        return self._built().get(name.lower(), default)

    def __iter__(self) -> Iterator[str]:
        return iter(self._built())

    def __len__(self) -> int:
        return len(self._built())

    def __repr__(self) -> str:
        return f"Headers({self._built()!r})"


# The most rows one request may count (a bandit learns reward * rows successes from a
# feedback): more would let one prediction outweigh ten thousand others.
MAX_ROWS = 10_000
# The deepest nesting a router reads a value to (as text, or as a sticky key). Deeper than
# protobuf carries (its parser stops at 100 nested messages: 49 levels of lists in a tag),
# so only JSON sends such values, and Python's repr/json.dumps give up near 1000.
MAX_DEPTH = 64


def rows_of(features, field: str = "features") -> int:
    """Rows of a `features` value (as the Seldon wrapper passes it too): an array's first
    dimension, else 1. Rows come from data present: an array with no values has none
    (a tensor of shape [2147483647, 0] is 0 bytes of data), and more than MAX_ROWS is a
    BadRequest naming `field`."""
    shape = getattr(features, "shape", None)
    if not shape:
        return 1
    if not getattr(features, "size", 1):
        return 0
    rows = int(shape[0])
    if rows > MAX_ROWS:
        raise BadRequest(f"{field}: {rows} rows in one request; a feedback counts at most {MAX_ROWS} "
                         "(split the batch)")
    return rows


def too_deep(value, limit: int = MAX_DEPTH) -> bool:
    """Whether lists and dicts in `value` nest deeper than `limit` (iteratively: no recursion)."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, tuple, dict)):
            if depth >= limit:
                return True
            stack.extend((x, depth + 1) for x in (item.values() if isinstance(item, dict) else item))
    return False


def empty_meta() -> dict:
    return {"puid": "", "tags": {}, "routing": {}, "requestPath": {}}


class Request:
    """One Route call (or the request half of a feedback).

    features: a numpy array for ndarray/tensor/tftensor data, a str for strData, bytes
    for binData, the decoded JSON for jsonData, a CustomData for customData, None when
    the message carried no data. Tensor data is decoded on first access, so a router
    that never reads it never pays for it; a malformed tensor then raises BadRequest
    (a 400) at that access. meta has the keys puid, tags, routing, requestPath, as the
    Seldon wrapper's `meta` keyword. headers have lower-case names, repeated values
    joined by ","; query maps a name to its list of values. tried: the children this request
    was sent to and failed on (the gateway's retries), which a router may avoid; empty on a
    first try.
    """

    __slots__ = ("_features", "_decode", "feature_names", "kind", "meta", "headers", "path", "query", "tried")

    def __init__(self, features: Any = None, feature_names: list | None = None, kind: str = "",
                 meta: dict | None = None, headers: Mapping[str, str] | None = None, path: str = "",
                 query: Mapping[str, list] | None = None):
        self._features = features
        self._decode: Callable[[], Any] | None = None
        self.feature_names = [] if feature_names is None else feature_names
        self.kind = kind
        self.meta = empty_meta() if meta is None else meta
        self.headers = Headers() if headers is None else headers
        self.path = path
        self.query = {} if query is None else query
        self.tried: tuple = ()

    @classmethod
    def from_seldon(cls, features: Any, feature_names: list | None = None, meta: dict | None = None) -> "Request":
        """The view of Seldon's wrapper arguments (features, feature_names, meta), the kind
        told by the features' type as the wire would have said it: an array for tensor
        data, str for strData, bytes for binData, other JSON values for jsonData."""
        if features is None:
            kind = ""
        elif isinstance(features, str):
            kind = "strData"
        elif isinstance(features, bytes):
            kind = "binData"
        elif isinstance(features, CustomData):
            kind = "customData"
        elif hasattr(features, "shape") and hasattr(features, "dtype"):
            kind = "ndarray"
        else:
            kind = "jsonData"
        return cls(features, feature_names, kind, meta)

    @property
    def features(self) -> Any:
        if self._decode is not None:
            decode, self._decode = self._decode, None
            self._features = decode()
        return self._features

    @features.setter
    def features(self, value: Any) -> None:
        self._features, self._decode = value, None

    def defer_features(self, decode: Callable[[], Any]) -> None:
        """Sets the features to decode(), called when (and if) a router first reads them."""
        self._decode = decode

    @property
    def payload(self) -> Any:
        """The raw strData, binData, jsonData or customData; None for tensor data."""
        return self.features if self.kind in RAW_KINDS else None

    @property
    def rows(self) -> int:
        """How many rows (instances) the request carries: 1 unless it is a batch array (0
        when the array holds no values); more than MAX_ROWS is a BadRequest."""
        return self.rows_at("data")

    def rows_at(self, field: str) -> int:
        """`rows`, with errors naming `field` (the request's data: `request.data` in a feedback)."""
        if self.kind not in ("ndarray", "tensor", "tftensor"):
            return 1
        return rows_of(self.features, f"{field}.{self.kind}")

    @property
    def puid(self) -> str:
        return self.meta.get("puid", "")

    def __repr__(self) -> str:
        # quote: a client's features or tags can nest deeper than repr recurses
        return (f"Request(kind={self.kind!r}, features={quote(self.features)}, "
                f"feature_names={quote(self.feature_names)}, meta={quote(self.meta)}, path={quote(self.path)})")


@dataclass
class Feedback:
    """One SendFeedback call.

    routing is the child that served the request, read from the response's
    meta.routing under this unit's id; None when the response did not say.
    reward_given is False when a JSON feedback had no reward (it then reads 0.0, as
    protobuf, which cannot tell a missing float from 0, always does). response is the
    view of the response message (its data decoded only when read).
    """

    request: Request
    response_meta: dict
    reward: float
    truth: Any
    routing: int | None = None
    reward_given: bool = True
    # The response's data (an LLM completion's OpenAI body, with its `usage`, as jsonData);
    # None from Seldon's wrapper, which passes no response.
    response: Request | None = None

    @classmethod
    def from_seldon(cls, features: Any, feature_names: list | None, reward, truth: Any,
                    routing: int | None = None) -> "Feedback":
        """The view of Seldon's send_feedback arguments (no puid, no tags: the wrapper passes none)."""
        return cls(Request.from_seldon(features, feature_names), empty_meta(), reward, truth, routing,
                   reward_given=reward is not None)

    @property
    def rows(self) -> int:
        """The rows of the feedback's request (see Request.rows); errors name request.data."""
        return self.request.rows_at("request.data")
