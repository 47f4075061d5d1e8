"""A condition block (headers, query, path, tags, json) compiled to one predicate over a
Request: every condition in a block must hold (AND); an empty block holds for all."""

from __future__ import annotations

from typing import Any, Callable, Optional

from ...errors import ConfigError
from ...request import Request
from .matchers import KINDS, PATH_KINDS, as_text, json_field, string_matcher

Predicate = Callable[[Request], bool]
SOURCES = ("headers", "query", "path", "tags", "json")


def _header(name: str) -> Callable[[Request], Optional[str]]:
    name = name.lower()  # Request.headers has lower-case names, repeats joined by ","
    return lambda r: r.headers.get(name)


def _query(name: str) -> Callable[[Request], Optional[str]]:
    def get(r: Request) -> Optional[str]:
        values = r.query.get(name)
        return ",".join(values) if values else None  # repeats joined by ",", as headers
    return get


def _tag(name: str) -> Callable[[Request], Optional[str]]:
    field = f"meta.tags.{name}"
    return lambda r: as_text((r.meta.get("tags") or {}).get(name), field)


def _json(path: str, field: str) -> Callable[[Request], Optional[str]]:
    get = json_field(path, field)
    return lambda r: get(r.features) if r.kind == "jsonData" else None


def _named(spec: Any, field: str, getter) -> list:
    if not isinstance(spec, dict):
        raise ConfigError(f"{field}: expected a map of name -> matcher, got {spec!r}")
    out = []
    for name, matcher in spec.items():
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{field}: names must be non-empty strings, got {name!r}")
        out.append((getter(name), string_matcher(matcher, f"{field}.{name}", KINDS)))
    return out


def compile_block(spec: Any, field: str) -> tuple[Predicate, bool]:
    """The block's predicate, and whether it reads anything at all (an empty block matches
    every request). Header, query and path conditions need this project's server."""
    if spec is None:
        spec = {}
    if not isinstance(spec, dict):
        raise ConfigError(f"{field}: expected a map with some of {', '.join(SOURCES)}, got {spec!r}")
    unknown = sorted(set(spec) - set(SOURCES))
    if unknown:
        raise ConfigError(f"{field}: unknown key {unknown[0]!r} (one of {', '.join(SOURCES)})")
    checks = []
    if "headers" in spec:
        checks += _named(spec["headers"], f"{field}.headers", _header)
    if "query" in spec:
        checks += _named(spec["query"], f"{field}.query", _query)
    if "tags" in spec:
        checks += _named(spec["tags"], f"{field}.tags", _tag)
    if "json" in spec:
        checks += _named(spec["json"], f"{field}.json", lambda p: _json(p, f"{field}.json.{p}"))
    if "path" in spec:
        checks.append((lambda r: r.path or None, string_matcher(spec["path"], f"{field}.path", PATH_KINDS)))
    checks = tuple(checks)
    if not checks:
        return (lambda r: True), False
    if len(checks) == 1:
        [(get, match)] = checks
        return (lambda r: match(get(r))), True
    return (lambda r: all(match(get(r)) for get, match in checks)), True
