"""The transport-neutral view of one call: what a router may look at.

REST and gRPC, JSON and protobuf all decode into these same objects (see codec/), so a
router never knows or cares which transport carried the request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

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
        self._pairs = pairs
        self._map = None

    def _built(self) -> dict:
        if self._map is None:
            out: dict = {}
            for name, value in self._pairs:
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

    def __iter__(self) -> Iterator[str]:
        return iter(self._built())

    def __len__(self) -> int:
        return len(self._built())

    def __repr__(self) -> str:
        return f"Headers({self._built()!r})"


def empty_meta() -> dict:
    return {"puid": "", "tags": {}, "routing": {}, "requestPath": {}}


@dataclass
class Request:
    """One Route call (or the request half of a feedback).

    features: a numpy array for ndarray/tensor/tftensor data, a str for strData, bytes
    for binData, the decoded JSON for jsonData, a CustomData for customData, None when
    the message carried no data. meta has the keys puid, tags, routing, requestPath, as
    the Seldon wrapper's `meta` keyword. headers have lower-case names, repeated values
    joined by ","; query maps a name to its list of values.
    """

    features: Any = None
    feature_names: list = field(default_factory=list)
    kind: str = ""
    meta: dict = field(default_factory=empty_meta)
    headers: Mapping[str, str] = field(default_factory=Headers)
    path: str = ""
    query: Mapping[str, list] = field(default_factory=dict)

    @property
    def payload(self) -> Any:
        """The raw strData, binData, jsonData or customData; None for tensor data."""
        return self.features if self.kind in RAW_KINDS else None

    @property
    def rows(self) -> int:
        """How many rows (instances) the request carries: 1 unless it is a batch array."""
        shape = getattr(self.features, "shape", None)
        if self.kind in ("ndarray", "tensor", "tftensor") and shape:
            return int(shape[0])
        return 1

    @property
    def puid(self) -> str:
        return self.meta.get("puid", "")


@dataclass
class Feedback:
    """One SendFeedback call.

    routing is the child that served the request, read from the response's
    meta.routing under this unit's id; None when the response did not say.
    """

    request: Request
    response_meta: dict
    reward: float
    truth: Any
    routing: int | None = None
