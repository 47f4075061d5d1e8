"""The one vocabulary routers read their parameters with: a typed reader per kind of value
(numbers within bounds, counts, fractions, durations, lists, children), each checking one
value and raising ConfigError that names the field, so every family says the same thing
about the same mistake. Values arrive typed (Python, Seldon's INT/FLOAT/BOOL parameters)
or as strings coerced by the constructor's annotations (params.py); both pass through here.
"""

from __future__ import annotations

import json
import math
import numbers
import re
from typing import Any, Callable, Optional, Sequence

from ..errors import ConfigError

ALL, NONE = -1, -2  # the special routes a child reference may allow (router.ALL_CHILDREN, NO_CHILDREN)
_INT = re.compile(r"[+-]?\d+")


def _is_number(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def number(value, field: str, lo: float = -math.inf, hi: float = math.inf, *, lo_open: bool = False,
           hi_open: bool = False) -> float:
    """A finite number within [lo, hi] (an open end excludes the bound)."""
    ok = _is_number(value) and math.isfinite(value) and (lo < value if lo_open else lo <= value) \
        and (value < hi if hi_open else value <= hi)
    if not ok:
        if lo == -math.inf and hi == math.inf:
            raise ConfigError(f"{field}: must be a finite number, got {value!r}")
        if hi == math.inf:
            where = f"{'>' if lo_open else '>='} {lo:g}"
        elif lo == -math.inf:
            where = f"{'<' if hi_open else '<='} {hi:g}"
        else:
            where = f"within {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
        raise ConfigError(f"{field}: must be a number {where}, got {value!r}")
    return float(value)


def fraction(value, field: str, *, lo_open: bool = False, hi_open: bool = False) -> float:
    """A number within [0, 1] (a share, a probability)."""
    return number(value, field, 0.0, 1.0, lo_open=lo_open, hi_open=hi_open)


def integer(value, field: str, minimum: int = 0) -> int:
    """An integer >= minimum (an integral float such as 3.0 is taken as 3)."""
    if _is_number(value) and math.isfinite(value) and value == int(value) and value >= minimum:
        return int(value)
    raise ConfigError(f"{field}: must be an integer >= {minimum}, got {value!r}")


def positive_int(value, field: str) -> int:
    return integer(value, field, 1)


# A router's children are a graph's branches or a fleet's pods: every one costs state (and a
# row of arrays), so a count past this is a typo (or a config as an attack), refused at start.
MAX_CHILDREN = 10_000


def n_children(value, field: str = "n_branches") -> int:
    n = positive_int(value, field)
    if n > MAX_CHILDREN:
        raise ConfigError(f"{field}: at most {MAX_CHILDREN:,} children, got {n:,}")
    return n


_RATIO = re.compile(r"\s*([+-]?[\d.]+(?:e[+-]?\d+)?)\s*/\s*([\d.]+(?:e[+-]?\d+)?)\s*", re.I)


def real(value, field: str, lo: float = -math.inf, hi: float = math.inf, *, lo_open: bool = False) -> float:
    """A number as `number` reads it, also given as text: '0.5', or a ratio '1/255' (the
    exact scale a decimal parameter would round)."""
    if isinstance(value, str):
        text, ratio = value.strip(), _RATIO.fullmatch(value)
        try:
            value = float(ratio[1]) / float(ratio[2]) if ratio else float(text)
        except (ValueError, ZeroDivisionError):
            raise ConfigError(f"{field}: expected a number or a ratio like 1/255, got {text!r}") from None
    return number(value, field, lo, hi, lo_open=lo_open)


def reals(value, field: str, lo: float = -math.inf, *, lo_open: bool = False) -> list[float]:
    """A list of numbers: a list, a JSON list, '0.485,0.456,0.406' or Seldon's 'a:b:c'."""
    if isinstance(value, str) and not value.strip().startswith("["):
        value = [v for v in re.split(r"[,:\s]+", value.strip()) if v]
    elif _is_number(value):
        value = [value]
    values = items(value, field, lambda v: v)
    if not values:
        raise ConfigError(f"{field}: expected one or more numbers, got {value!r}")
    return [real(v, field, lo, lo_open=lo_open) for v in values]


def optional(reader: Callable, value, field: str, *args, **kwargs):
    """reader(value, ...), or None for None: the reader of an optional parameter."""
    return None if value is None else reader(value, field, *args, **kwargs)


# Go's time.ParseDuration units, which Kubernetes' metav1.Duration (a ModelRoute's timeout,
# a canary's analysis interval, Flagger's interval) is written in: "300ms", "30s", "5m", "1h30m".
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_WHOLE = re.compile(rf"(?:{_PART.pattern})+")


def duration(value, field: str) -> float:
    """A duration in seconds, >= 0: a Go/Kubernetes duration string ("30s", "5m",
    "1h30m", "250ms"; "0" alone needs no unit), or a number of seconds. (A parameter
    annotated float | str arrives as a number when its text is one: params.py.)"""
    if _is_number(value):
        if not math.isfinite(value) or value < 0:
            raise ConfigError(f"{field}: expected a duration >= 0, got {value!r}")
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if text == "0":
            return 0.0
        if _WHOLE.fullmatch(text):
            return sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _PART.findall(text))
    raise ConfigError(f"{field}: expected a duration like 30s, 5m or 1h30m (units h, m, s, ms, us, ns), "
                      f"got {value!r}")


def choice(value, field: str, options: Sequence[str]) -> str:
    if value not in options:
        expected = " or ".join(options) if len(options) < 3 else f"{', '.join(options[:-1])} or {options[-1]}"
        raise ConfigError(f"{field}: expected {expected}, got {value!r}")
    return value


def json_text(text: str, field: str, what: str = "valid JSON"):
    """A JSON parameter; invalid JSON is a ConfigError naming the field."""
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{field}: not {what}: {exc}") from None


def items(value, field: str, convert: Callable = str) -> list:
    """A list given as a list, a JSON list, or Seldon's 'a:b:c' string, each item converted."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            value = json_text(text, field, "a valid JSON list")
        else:
            value = text.split(":") if text else []
    if not isinstance(value, (list, tuple)):
        raise ConfigError(f"{field}: expected a list or 'a:b:c', got {type(value).__name__}")
    try:
        return [convert(v) for v in value]
    except (TypeError, ValueError):
        raise ConfigError(f"{field}: every item must be a {convert.__name__}, got {value!r}") from None


def children(n_branches, branch_names, fields: tuple = ("n_branches", "branch_names")) -> list[str]:
    """The children's names from n_branches and/or branch_names (they must agree when both
    are given); default names are the indices."""
    names = items(branch_names, fields[1]) if branch_names is not None else None
    if n_branches is not None:
        n_branches = n_children(n_branches, fields[0])
        if names is not None and len(names) != n_branches:
            raise ConfigError(f"{fields[1]}: {len(names)} names given for {fields[0]}={n_branches}")
    if names is None:
        names = [str(i) for i in range(n_branches if n_branches is not None else 0)]
    elif len(names) > MAX_CHILDREN:
        raise ConfigError(f"{fields[1]}: at most {MAX_CHILDREN:,} children, got {len(names):,}")
    if len(set(names)) != len(names):
        raise ConfigError(f"{fields[1]}: names must be unique, got {names}")
    return names


def child(ref: Any, names: Optional[Sequence[str]], field: str, special: bool = False) -> int:
    """A child by name or by index (an int, or its digits, spaces ignored); with `special`,
    also -1 (all children) and -2 (none). `names` None: the children are not known yet,
    so only indices are read."""
    text = ref.strip() if isinstance(ref, str) else ref
    if isinstance(text, str) and names is not None and text in names:
        return list(names).index(text)
    index = None
    if isinstance(text, numbers.Integral) and not isinstance(text, bool):
        index = int(text)
    elif isinstance(text, str) and _INT.fullmatch(text):
        index = int(text)
    if index is not None and ((special and index in (ALL, NONE)) or
                              (index >= 0 and (names is None or index < len(names)))):
        return index
    known = ", ".join(names) if names else "none named"
    top = f"0..{len(names) - 1}" if names else "0 or more"
    expected = f"a name or an index {top}" + (", or -1 (all children) or -2 (none)" if special else "")
    raise ConfigError(f"{field}: unknown child {ref!r} (children: {known}); expected {expected}")


def weights(values: Sequence[float], field: str = "weights") -> list[float]:
    """Relative weights (any non-negative scale, e.g. 1:1:2) to probabilities summing to 1."""
    for w in values:
        if not (_is_number(w) and 0 <= w < math.inf):  # also refuses NaN
            raise ConfigError(f"{field}: weights must be finite and >= 0, got {list(values)}")
    total = float(sum(values))
    if total <= 0:
        raise ConfigError(f"{field}: at least one weight must be > 0, got {list(values)}")
    return [w / total for w in values]


def arguments(frame: dict) -> dict:
    """A constructor's own arguments, from `locals()` taken first thing: what its family's
    config reader takes, so the signature (which Seldon parameters are checked against and
    `seldon-router list` shows) is written once."""
    return {name: value for name, value in frame.items() if name not in ("self", "__class__")}
