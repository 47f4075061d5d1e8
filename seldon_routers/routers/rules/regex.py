"""Regexes of the `rules` router, bounded so that no request can make a match run long.

Envoy's `safe_regex` is RE2: linear in the value's length, whatever the pattern. With
google-re2 installed (the `server` and `rules` extras, and the images, have it) patterns
compile with RE2, and what RE2 cannot run in linear time (backreferences, lookaround) is
refused at start-up. Without it (the bare core under Seldon's own wrapper) Python's `re`
backtracks, so a documented guard stands in (docs/security.md):
  - a pattern whose repetition holds another repetition or an alternation, the shapes of
    exponential backtracking such as `(a+)+` or `(a|aa)*`, is refused at start-up;
  - a value longer than MAX_FALLBACK_VALUE characters is refused (400) before matching,
    which bounds the polynomial cases (`\\d*\\d*\\d*x`) the shape check lets through.
Either way a pattern is at most MAX_PATTERN characters.
"""

from __future__ import annotations

import re
from typing import Callable, Optional

from ...errors import BadRequest, ConfigError

try:
    import re2
except ImportError:  # the core stays numpy-only: the guard below stands in
    re2 = None

MAX_PATTERN = 1024  # characters; Envoy bounds RE2's program size instead (max_program_size)
MAX_FALLBACK_VALUE = 4096  # characters a backtracking match may see (headers are about 8 KB in all)
ENGINE = "re2" if re2 is not None else "re"

FullMatch = Callable[[str], bool]


def compile_full(source: str, ignore_case: bool, field: str, shown: str,
                 engine: Optional[str] = None) -> FullMatch:
    """A full-match test of `source`; a ConfigError names `field` and the pattern as the
    user wrote it (`shown`). engine: "re2" or "re" (default: RE2 where installed)."""
    engine = engine or ENGINE
    if len(source) > MAX_PATTERN:
        raise ConfigError(f"{field}: the regex is {len(source)} characters, over the limit of {MAX_PATTERN}")
    if engine == "re2":
        return _re2(source, ignore_case, field, shown)
    return _guarded_re(source, ignore_case, field, shown)


def _re2(source: str, ignore_case: bool, field: str, shown: str) -> FullMatch:
    options = re2.Options()
    options.case_sensitive = not ignore_case
    options.log_errors = False  # the ConfigError says it; RE2 would also write to stderr
    try:
        rx = re2.compile(source, options)
    except re2.error as exc:
        reason = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise ConfigError(f"{field}: invalid regex {shown!r}: {reason} (RE2, the linear-time engine Envoy "
                          "uses too: no backreferences or lookaround)") from None
    full = rx.fullmatch
    return lambda value: full(value) is not None


def _guarded_re(source: str, ignore_case: bool, field: str, shown: str) -> FullMatch:
    try:
        rx = re.compile(source, re.IGNORECASE if ignore_case else 0)
    except re.error as exc:
        raise ConfigError(f"{field}: invalid regex {shown!r}: {exc}") from None
    if _nested_repetition(source):
        raise ConfigError(f"{field}: regex {shown!r} repeats a group that itself repeats or alternates, which "
                          "can take exponential time with Python's re; install google-re2 "
                          "(pip install 'seldon-routers[rules]') to match it in linear time, or rewrite it")
    full = rx.fullmatch

    def matches(value: str) -> bool:
        if len(value) > MAX_FALLBACK_VALUE:
            raise BadRequest(f"{field}: a value of {len(value)} characters is over the {MAX_FALLBACK_VALUE} a "
                             "regex rule matches without google-re2")
        return full(value) is not None
    return matches


_REPEATS = ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT")


def _nested_repetition(source: str) -> bool:
    """True when a repetition (*, +, {n,m}) holds a repetition or an alternation."""
    try:
        from re import _parser as parser  # Python 3.11+
    except ImportError:  # pragma: no cover - 3.10
        import sre_parse as parser

    def walk(items, inside_repeat: bool) -> bool:
        for op, arg in items:
            name = str(op)
            if name in _REPEATS:
                low, high, sub = arg
                if inside_repeat and high != 1:
                    return True
                if walk(sub, inside_repeat or high > 1):
                    return True
            elif name == "BRANCH":
                if inside_repeat:
                    return True
                if any(walk(branch, inside_repeat) for branch in arg[1]):
                    return True
            elif name == "SUBPATTERN":
                if walk(arg[-1], inside_repeat):
                    return True
            elif name in ("ASSERT", "ASSERT_NOT"):
                if walk(arg[1], inside_repeat):
                    return True
        return False

    return walk(parser.parse(source), False)
