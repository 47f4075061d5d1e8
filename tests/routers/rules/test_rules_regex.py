"""Regexes of the rules router are bounded: RE2 (linear time, as Envoy's safe_regex) where
google-re2 is installed, else Python's re behind a guard (rules/regex.py). Both engines are
tested whatever this machine has: the guard is called by name."""

from __future__ import annotations

import subprocess
import sys

import pytest

from seldon_routers.errors import BadRequest, ConfigError
from seldon_routers.routers.rules import regex
from seldon_routers.routers.rules.matchers import string_matcher

re2_installed = pytest.mark.skipif(regex.re2 is None, reason="google-re2 is not installed (the rules extra has it)")
ENGINES = [pytest.param("re2", marks=re2_installed), "re"]


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("pattern, ignore_case, value, expected", [
    ("gpt-4o(-mini)?", False, "gpt-4o-mini", True),
    ("gpt-4o(-mini)?", False, "gpt-4o-mini-x", False),  # a full match, not a search
    ("gpt-4o(-mini)?", False, "xgpt-4o", False),
    ("LLAMA-[0-9]+b", True, "llama-70B", True),
    ("LLAMA-[0-9]+b", False, "llama-70B", False),
    ("/v1/models/[^/]+/infer", False, "/v1/models/m1/infer", True),
    ("(?P<tier>gold|silver)", False, "silver", True),
    ("", False, "", True),
])
def test_both_engines_match_alike(engine, pattern, ignore_case, value, expected):
    assert regex.compile_full(pattern, ignore_case, "f", pattern, engine)(value) is expected


@pytest.mark.parametrize("engine", ENGINES)
def test_a_pattern_over_the_length_limit_is_refused(engine):
    pattern = "a" * (regex.MAX_PATTERN + 1)
    with pytest.raises(ConfigError, match=rf"f.regex: the regex is {len(pattern)} characters, over the limit"):
        regex.compile_full(pattern, False, "f.regex", pattern, engine)
    assert regex.compile_full(pattern[:-1], False, "f", "", engine)("a" * regex.MAX_PATTERN)


@re2_installed
@pytest.mark.parametrize("pattern", [r"(a)\1", r"(?=x)a", r"a(?!b)", r"(?<=a)b"])
def test_re2_refuses_what_it_cannot_run_in_linear_time(pattern, capfd):
    with pytest.raises(ConfigError, match=r"h.regex: invalid regex .* \(RE2, the linear-time engine"):
        regex.compile_full(pattern, False, "h.regex", pattern, "re2")
    assert "re2.cc" not in capfd.readouterr().err  # said once, in the error, not logged by RE2 too


@pytest.mark.parametrize("pattern", ["(a+)+", "(a|aa)*", "(x*y*)*z", "((ab)+c)*", "(a{1,5})+", "(?:ab|b)+"])
def test_the_fallback_refuses_nested_repetition(pattern):
    with pytest.raises(ConfigError, match=r"f.regex: .* repeats a group .*install google-re2"):
        regex.compile_full(pattern, False, "f.regex", pattern, "re")


@pytest.mark.parametrize("pattern", ["[^/]+/.*", "a+b+c?", "(ab)?c+", "(abc){3}", "x(a|b)y", "[ab]+", "(?:a|b)+"])
def test_the_fallback_keeps_single_repetition(pattern):
    regex.compile_full(pattern, False, "f", pattern, "re")


def test_the_fallback_refuses_a_long_value_before_matching():
    full = regex.compile_full("a*b", False, "rules[0].match.headers.x.regex", "a*b", "re")
    assert full("a" * (regex.MAX_FALLBACK_VALUE - 1) + "b")  # at the limit: matched as usual
    with pytest.raises(BadRequest, match=r"rules\[0\].match.headers.x.regex: a value of 4098 characters"):
        full("a" * (regex.MAX_FALLBACK_VALUE + 1) + "b")


def test_the_fallback_still_reports_a_syntax_error():
    with pytest.raises(ConfigError, match=r"f: invalid regex '\(': missing \)"):
        regex.compile_full("(", False, "f", "(", "re")


EVIL = r"""
from seldon_routers.routers.rules.matchers import string_matcher
m = string_matcher({"regex": "(a+)+b"}, "f")
print(m("a" * 100_000 + "!"))
"""


@re2_installed
def test_a_backtracking_pattern_answers_on_a_long_value():
    """(a+)+b on 40 a's is 2^40 steps for Python's re; RE2 answers on 100,000. In a
    subprocess so that a regression fails by its timeout instead of hanging the suite."""
    out = subprocess.run([sys.executable, "-c", EVIL], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip() == "False", out.stderr


def test_a_matcher_built_from_config_uses_the_installed_engine():
    matcher = string_matcher({"regex": "a+", "invert": True}, "f")
    assert matcher("b") and not matcher("aaa") and not matcher(None)
    if regex.re2 is None:
        with pytest.raises(ConfigError, match="install google-re2"):
            string_matcher({"regex": "(a+)+"}, "f")
    else:
        assert not string_matcher({"regex": "(a+)+"}, "f")("a" * 50 + "!")
