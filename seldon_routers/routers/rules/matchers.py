"""String, path and JSON-field matchers for the `rules` router: pure functions of a value,
compiled once at start-up, so they are table-tested without any I/O.

Semantics follow Envoy's StringMatcher: `regex` is a full match (RE2 where installed, as in
Envoy; regex.py bounds it either way), `ignore_case` applies to
every value matcher, and a missing value fails every value matcher, inverted or not
(Envoy's header matcher does the same), so `invert` never turns "absent" into "matched".
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable, Optional

from ...errors import BadRequest, ConfigError
from ...request import MAX_DEPTH, too_deep
from .regex import compile_full

VALUE_KINDS = ("exact", "prefix", "suffix", "contains", "regex")
KINDS = VALUE_KINDS + ("present",)
PATH_KINDS = KINDS + ("glob",)
_FLAGS = ("invert", "ignore_case")

Matcher = Callable[[Optional[str]], bool]  # None: the value is missing


def as_text(value: Any, field: str = "value") -> Optional[str]:
    """A tag's or JSON field's value as the string a matcher compares: strings as they are,
    everything else as JSON writes it (true, 3, 2.5, null, {"a":1}); None stays missing.
    A value nested deeper than MAX_DEPTH is a BadRequest naming `field` (json.dumps would
    raise RecursionError on it: a 500), whichever matcher reads it."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, (list, dict)) and too_deep(value):
        raise BadRequest(f"{field}: nested deeper than {MAX_DEPTH} levels; rules compare a value as its JSON "
                         "text, to that depth")
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def glob_regex(pattern: str, field: str) -> str:
    """A path glob as a regex: `*` is one segment (or part of one), `**` any number of
    segments, zero included, and only as the last segment (Istio/Envoy-style globs)."""
    segments = pattern.split("/")
    if any("**" in seg and (seg != "**" or i != len(segments) - 1) for i, seg in enumerate(segments)):
        raise ConfigError(f"{field}: '**' must be the whole last segment of the glob, got {pattern!r}")
    if pattern == "**":
        return ".*"
    tail = segments[-1] == "**"
    body = "/".join(
        "[^/]+" if seg == "*" else "[^/]*".join(re.escape(part) for part in seg.split("*"))
        for seg in (segments[:-1] if tail else segments))
    return body + "(?:/.*)?" if tail else body  # "/a/**" matches "/a" and all below it


def path_pattern(text: str, field: str) -> dict:
    """A MatrixInfer ModelRoute `path` string as a matcher config. MatrixInfer's own types
    match a URI only by exact, prefix or regex (kthena's StringMatch, compared with ==,
    strings.HasPrefix and a regex), while its ModelRoute reference writes a plain string
    such as `/v1/models/production/*`. So: no `*` is exact; a single trailing `*` makes what
    comes before it a prefix (every path below `/v1/models/production/`, at any depth, not
    `/v1/models/production` itself); any other `*` or `**` is this project's glob (`*` one
    segment or part of one, `**` all below), with a trailing `*` still the rest."""
    if not isinstance(text, str) or not text:
        raise ConfigError(f"{field}: expected a path like /v1/models/production/* or a matcher, got {text!r}")
    if "*" not in text:
        return {"exact": text}
    if not text.endswith("*") or text.endswith("**"):
        glob_regex(text, field)  # its errors name the path as written, not a `glob` key
        return {"glob": text}
    head = text[:-1]
    if "*" not in head:
        return {"prefix": head}
    return {"regex": glob_regex(head, field) + ".*"}  # glob_regex escapes the literal parts


def string_matcher(spec: Any, field: str, kinds: tuple = KINDS) -> Matcher:
    """A matcher from its config: a plain string is shorthand for {exact: ...}."""
    if isinstance(spec, (str, int, float, bool)):
        spec = {"exact": as_text(spec)}
    if not isinstance(spec, dict):
        raise ConfigError(f"{field}: expected a matcher like {{exact: VALUE}}, got {spec!r}")
    unknown = sorted(set(spec) - set(kinds) - set(_FLAGS))
    if unknown:
        raise ConfigError(f"{field}: unknown key {unknown[0]!r} (one of {', '.join(kinds + _FLAGS)})")
    chosen = [k for k in kinds if k in spec]
    if len(chosen) != 1:
        raise ConfigError(f"{field}: exactly one of {', '.join(kinds)} must be set, got {chosen or 'none'}")
    kind, arg = chosen[0], spec[chosen[0]]
    invert, ignore_case = spec.get("invert", False), spec.get("ignore_case", False)
    for flag, value in (("invert", invert), ("ignore_case", ignore_case)):
        if not isinstance(value, bool):
            raise ConfigError(f"{field}.{flag}: expected true or false, got {value!r}")
    if kind == "present":
        if not isinstance(arg, bool):
            raise ConfigError(f"{field}.present: expected true or false, got {arg!r}")
        return lambda v: ((v is not None) == arg) != invert
    if not isinstance(arg, str):
        if kind == "exact" and isinstance(arg, (int, float, bool)):
            arg = as_text(arg)  # `exact: 3` in YAML means the text "3"
        else:
            raise ConfigError(f"{field}.{kind}: expected a string, got {arg!r}")
    if kind in ("regex", "glob"):
        source = glob_regex(arg, f"{field}.glob") if kind == "glob" else arg
        full = compile_full(source, ignore_case, f"{field}.{kind}", arg)
        return lambda v: v is not None and full(v) != invert
    want = arg.lower() if ignore_case else arg
    test = {"exact": str.__eq__, "prefix": str.startswith, "suffix": str.endswith,
            "contains": str.__contains__}[kind]
    if ignore_case:
        return lambda v: v is not None and test(v.lower(), want) != invert
    return lambda v: v is not None and test(v, want) != invert


_MISSING = object()


def json_field(path: str, field: str) -> Callable[[Any], Optional[str]]:
    """A getter for a dotted path into decoded JSON (`model`, `messages.0.role`): a
    number indexes a list; anything absent, or a JSON payload absent, reads as missing."""
    if not isinstance(path, str) or not path or any(not part for part in path.split(".")):
        raise ConfigError(f"{field}: expected a dotted path like model or messages.0.role, got {path!r}")
    parts = tuple(int(p) if p.isdigit() else p for p in path.split("."))
    where = f"jsonData.{path}"  # what a request's error names

    def get(doc: Any) -> Optional[str]:
        for part in parts:
            if isinstance(doc, dict):
                doc = doc.get(str(part), _MISSING)
            elif isinstance(doc, list) and isinstance(part, int) and part < len(doc):
                doc = doc[part]
            else:
                return None
            if doc is _MISSING:
                return None
        return "null" if doc is None else as_text(doc, where)  # JSON null is a value: "null"
    return get
