"""Helpers shared by routers over a fixed set of named children (arms)."""

from __future__ import annotations

import json
from typing import Sequence

from ..errors import ConfigError


def parse_json(text: str, field: str, what: str = "valid JSON"):
    """A JSON parameter; invalid JSON is a ConfigError naming the field."""
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{field}: not {what}: {exc}") from None


def parse_list(value, field: str, convert=str) -> list:
    """A list parameter given as a list, a JSON list, or Seldon's 'a:b:c' string."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            value = parse_json(text, field, "a valid JSON list")
        else:
            value = text.split(":") if text else []
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{field}: expected a list or 'a:b:c', got {type(value).__name__}")
    try:
        return [convert(v) for v in value]
    except (TypeError, ValueError):
        raise ConfigError(f"{field}: every item must be a {convert.__name__}, got {value!r}") from None


def resolve_arms(n_branches, branch_names, field_names=("n_branches", "branch_names")) -> list[str]:
    """Child names from n_branches and/or branch_names; they must agree when both are given."""
    names = parse_list(branch_names, field_names[1]) if branch_names is not None else None
    if n_branches is not None:
        if isinstance(n_branches, bool) or not isinstance(n_branches, int) or n_branches < 1:
            raise ConfigError(f"{field_names[0]}: must be an integer >= 1, got {n_branches!r}")
        if names is not None and len(names) != n_branches:
            raise ConfigError(
                f"{field_names[1]}: {len(names)} names given for {field_names[0]}={n_branches}")
    if names is None:
        names = [str(i) for i in range(n_branches if n_branches is not None else 0)]
    if len(set(names)) != len(names):
        raise ConfigError(f"{field_names[1]}: names must be unique, got {names}")
    return names


def normalise_weights(weights: Sequence[float], field: str = "weights") -> list[float]:
    """Relative weights (any non-negative scale, e.g. 1:1:2) to probabilities summing to 1."""
    for w in weights:
        if not (w >= 0 and w != float("inf")):  # also rejects NaN
            raise ConfigError(f"{field}: weights must be finite and >= 0, got {list(weights)}")
    total = float(sum(weights))
    if total <= 0:
        raise ConfigError(f"{field}: at least one weight must be > 0, got {list(weights)}")
    return [w / total for w in weights]
