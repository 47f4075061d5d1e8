"""Checks shared by the JSON and protobuf decoders, so both apply the same rules."""

from __future__ import annotations

import math

import numpy as np

from ..errors import BadRequest, quote

DATA_FIELDS = ("data", "binData", "strData", "jsonData", "customData")
INT32 = (-(2**31), 2**31 - 1)


def reward(value) -> float:
    """Feedback's reward is a protobuf float: both transports see float32 precision,
    printed shortest (0.9 stays 0.9), and it must be finite."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadRequest(f"reward: expected a number, got {type(value).__name__}")
    with np.errstate(over="ignore"):
        narrowed = np.float32(value)
    if not math.isfinite(narrowed):
        raise BadRequest(f"reward: must be a finite float32, got {quote(value)}")
    return float(str(narrowed))  # numpy prints a float32 shortest


def routing_for(meta: dict, unit_id: str):
    """The child this unit chose for a request, from a response's meta.routing."""
    return meta.get("routing", {}).get(unit_id)

