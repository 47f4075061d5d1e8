"""Router parameters: Seldon's PREDICTIVE_UNIT_PARAMETERS and `--param name=value`,
turned into typed constructor arguments, checked against the constructor's signature.
"""

from __future__ import annotations

import collections.abc
import inspect
import json
import re
import types
import typing
from typing import Any, Iterable

from .errors import ConfigError

# The words Seldon's wrapper (distutils' strtobool) reads as booleans.
TRUE_WORDS = frozenset({"y", "yes", "t", "true", "on", "1"})
FALSE_WORDS = frozenset({"n", "no", "f", "false", "off", "0"})


def parse_bool(value: str, name: str) -> bool:
    """Like distutils' strtobool, which Seldon's wrapper uses for BOOL parameters."""
    text = str(value).strip().lower()
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    raise ConfigError(f"parameter {name!r}: {value!r} is not a boolean")


_SELDON_TYPES = {"INT": int, "FLOAT": float, "DOUBLE": float, "STRING": str, "BOOL": parse_bool}


def from_seldon_json(text: str) -> dict[str, Any]:
    """Seldon's JSON list of {"name", "value", "type"} to a dict of typed values."""
    try:
        items = json.loads(text) if text.strip() else []
    except ValueError as exc:
        raise ConfigError(f"parameters: not valid JSON: {exc}") from None
    if not isinstance(items, list):
        raise ConfigError("parameters: expected a JSON list of {name, value, type}")
    out = {}
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or "value" not in item:
            raise ConfigError(f"parameters[{i}]: expected {{\"name\", \"value\", \"type\"}}, got {item!r}")
        name, kind = item["name"], str(item.get("type", "STRING")).upper()
        if kind not in _SELDON_TYPES:
            raise ConfigError(f"parameter {name!r}: unknown type {kind!r} (one of {', '.join(_SELDON_TYPES)})")
        convert = _SELDON_TYPES[kind]
        try:
            out[name] = convert(item["value"], name) if convert is parse_bool else convert(item["value"])
        except (TypeError, ValueError):
            raise ConfigError(f"parameter {name!r}: {item['value']!r} is not a valid {kind}") from None
    return out


def from_pairs(pairs: Iterable[str]) -> dict[str, str]:
    """Repeated `--param name=value` flags; values stay strings until coerced."""
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"--param {pair!r}: expected name=value")
        out[name.strip()] = value
    return out


def _coerce(value: Any, annotation: Any, name: str) -> Any:
    """Converts a string from the command line to the type the constructor declares."""
    if not isinstance(value, str) or annotation is inspect.Parameter.empty:
        return value
    options = typing.get_args(annotation) if typing.get_origin(annotation) is typing.Union else (annotation,)
    if options == (str,) or options == (str, type(None)):
        return value
    for option in options:  # a typed option first (float | str: "60" is 60.0, "5m" stays text)
        try:
            if option is bool:
                return parse_bool(value, name)
            if option in (int, float):
                return option(value)
            if option in (list, dict):
                parsed = json.loads(value)
                if isinstance(parsed, option):
                    return parsed
        except (ValueError, ConfigError):
            continue
    if str in options:
        return value
    expected = " or ".join(getattr(o, "__name__", str(o)) for o in options if o is not type(None))
    raise ConfigError(f"parameter {name!r}: {value!r} is not a valid {expected}")


def build(cls: type, params: dict[str, Any]):
    """Instantiates `cls(**params)`, naming the parameter at fault when one is wrong."""
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # unresolvable annotations: take strings as they are
        hints = {}
    signature = inspect.signature(cls.__init__)
    accepts_any = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    kwargs = {}
    for name, value in params.items():
        if name not in signature.parameters and not accepts_any:
            known = [p for p in signature.parameters if p != "self"]
            raise ConfigError(f"parameter {name!r}: {cls.__qualname__} takes no such parameter "
                              f"(it takes: {', '.join(known) or 'none'})")
        kwargs[name] = _coerce(value, hints.get(name, inspect.Parameter.empty), name)
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{cls.__qualname__}: invalid parameters: {exc}") from exc


def _python_only(hint) -> bool:
    """A callable (an injected clock, a model function) cannot come from a parameter string."""
    options = typing.get_args(hint) if _is_union(hint) else (hint,)
    return any(o is not type(None) and (typing.get_origin(o) or o) is collections.abc.Callable for o in options)


def _is_union(hint) -> bool:
    origin = typing.get_origin(hint)
    return origin is typing.Union or (hasattr(types, "UnionType") and origin is types.UnionType)


def type_name(hint) -> str:
    """A readable name for an annotation: `int`, `str | list`; None leaves an optional's
    list (a default of None says it), `list[str]` stays as written."""
    if hint is None:
        return ""
    if _is_union(hint):
        return " | ".join(type_name(o) for o in typing.get_args(hint) if o is not type(None))
    if typing.get_origin(hint) is not None:
        return str(hint).replace("typing.", "")
    return getattr(hint, "__name__", str(hint))


def summary(doc: str | None) -> str:
    """A docstring's first sentence, its lines joined: `seldon-router list`'s description.
    A sentence ends at `.`, `!` or `?` followed by a space and a capital (so "e.g. this"
    and "3.5" do not end one), or at the first paragraph's end."""
    paragraph = inspect.cleandoc(doc or "").split("\n\n")[0]
    text = " ".join(paragraph.split())
    end = re.search(r"[.!?](?=\s+[A-Z])", text)
    return text[: end.end()] if end else text


def describe(cls: type) -> list[dict]:
    """The constructor's parameters that Seldon parameters can set, for `seldon-router list`:
    name, type (readable, see type_name), default and whether it is required."""
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:
        hints = {}
    out = []
    for name, p in inspect.signature(cls.__init__).parameters.items():
        if name == "self" or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            continue
        hint = hints.get(name)
        if _python_only(hint):
            continue
        out.append({"name": name, "type": type_name(hint),
                    "default": None if p.default is p.empty else p.default,
                    "required": p.default is p.empty})
    return out
