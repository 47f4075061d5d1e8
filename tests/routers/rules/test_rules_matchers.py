"""The matchers as pure functions: tables of (matcher config, value, expected)."""

import json
import re

import pytest

from seldon_routers import ConfigError
from seldon_routers.errors import BadRequest
from seldon_routers.routers.rules.matchers import (PATH_KINDS, as_text, glob_regex, json_field, path_pattern,
                                                   string_matcher)

MISSING = None


@pytest.mark.parametrize("spec, value, expected", [
    ({"exact": "llama"}, "llama", True),
    ({"exact": "llama"}, "Llama", False),
    ({"exact": "llama", "ignore_case": True}, "LLAMA", True),
    ("llama", "llama", True),  # a plain string is {exact: ...}
    ({"prefix": "lla"}, "llama-3", True),
    ({"prefix": "LLA", "ignore_case": True}, "llama-3", True),
    ({"suffix": "-3"}, "llama-3", True),
    ({"suffix": "-3"}, "llama-3b", False),
    ({"contains": "ma-"}, "llama-3", True),
    ({"contains": "x"}, "llama-3", False),
    # regex is a full match, as Envoy's safe_regex
    ({"regex": "lla"}, "llama", False),
    ({"regex": "lla.*"}, "llama", True),
    ({"regex": "(bge|e5)-.+"}, "bge-large", True),
    ({"regex": "LLAMA", "ignore_case": True}, "llama", True),
    # invert flips a value's result...
    ({"exact": "llama", "invert": True}, "mistral", True),
    ({"exact": "llama", "invert": True}, "llama", False),
    # ...but a missing value fails every value matcher, inverted or not
    ({"exact": "llama"}, MISSING, False),
    ({"exact": "llama", "invert": True}, MISSING, False),
    ({"regex": ".*", "invert": True}, MISSING, False),
    ({"prefix": ""}, MISSING, False),
    ({"prefix": ""}, "", True),
    # present: true must be there (even empty), false must be absent
    ({"present": True}, "", True),
    ({"present": True}, MISSING, False),
    ({"present": False}, MISSING, True),
    ({"present": False}, "x", False),
    ({"present": True, "invert": True}, MISSING, True),
    # repeated values arrive joined by ",": match the joined string
    ({"exact": "a,b"}, "a,b", True),
    ({"contains": "b"}, "a,b", True),
    ({"exact": 3}, "3", True),  # `exact: 3` in YAML is the text "3"
    ({"exact": True}, "true", True),
])
def test_string_matcher(spec, value, expected):
    assert string_matcher(spec, "f")(value) is expected


@pytest.mark.parametrize("pattern, path, expected", [
    ("/a/*", "/a/b", True),
    ("/a/*", "/a/b/c", False),  # * is one segment
    ("/a/*", "/a/", False),  # ...and not an empty one
    ("/a/*/c", "/a/b/c", True),
    ("/a/**", "/a", True),  # ** is any number of segments, zero included
    ("/a/**", "/a/b", True),
    ("/a/**", "/a/b/c/d", True),
    ("/a/**", "/ab", False),
    ("/seldon.protos.*/*", "/seldon.protos.Router/Route", True),
    ("/seldon.protos.*/*", "/seldonXprotos.Router/Route", False),  # . is literal
    ("/v1/*.json", "/v1/x.json", True),
    ("**", "/anything/at/all", True),
    ("/route", "/route", True),
    ("/route", "/routes", False),
])
def test_glob(pattern, path, expected):
    assert bool(re.fullmatch(glob_regex(pattern, "f"), path)) is expected
    assert string_matcher({"glob": pattern}, "f", PATH_KINDS)(path) is expected


@pytest.mark.parametrize("pattern", ["/a/**/b", "/**/a", "/a/b**", "/a/x**/"])
def test_double_star_must_be_last_whole_segment(pattern):
    with pytest.raises(ConfigError, match=r"path.glob: '\*\*' must be the whole last segment"):
        string_matcher({"glob": pattern}, "path", PATH_KINDS)


# A ModelRoute `path` string: no `*` is exact, a single trailing `*` a prefix (kthena's
# StringMatch has exact, prefix and regex), any other `*` the project's glob.
@pytest.mark.parametrize("text, spec, path, expected", [
    ("/v1/models/production/*", {"prefix": "/v1/models/production/"}, "/v1/models/production/infer", True),
    ("/v1/models/production/*", {"prefix": "/v1/models/production/"}, "/v1/models/production/", True),
    ("/v1/models/production/*", {"prefix": "/v1/models/production/"}, "/v1/models/production/versions/2/infer", True),
    ("/v1/models/production/*", {"prefix": "/v1/models/production/"}, "/v1/models/production", False),
    ("/v1/models/production/*", {"prefix": "/v1/models/production/"}, "/v1/models/productionX/infer", False),
    ("/v1/models/production/*", {"prefix": "/v1/models/production/"}, "/route", False),
    ("/v1/models/prod*", {"prefix": "/v1/models/prod"}, "/v1/models/production/infer", True),
    ("/v1/models/test/infer", {"exact": "/v1/models/test/infer"}, "/v1/models/test/infer", True),
    ("/v1/models/test/infer", {"exact": "/v1/models/test/infer"}, "/v1/models/test/infer/", False),
    ("/route", {"exact": "/route"}, "/route", True),
    ("/v1/models/*/infer", {"glob": "/v1/models/*/infer"}, "/v1/models/test/infer", True),
    ("/v1/models/*/infer", {"glob": "/v1/models/*/infer"}, "/v1/models/a/b/infer", False),
    ("/v1/models/**", {"glob": "/v1/models/**"}, "/v1/models", True),
    ("/v1/models/**", {"glob": "/v1/models/**"}, "/v1/models/a/b", True),
    ("/v1/models/*/versions/*", {"regex": "/v1/models/[^/]+/versions/.*"}, "/v1/models/a/versions/2/infer", True),
    ("/v1/models/*/versions/*", {"regex": "/v1/models/[^/]+/versions/.*"}, "/v1/models/a/b/versions/2", False),
    ("/v1.0/*", {"prefix": "/v1.0/"}, "/v1x0/predict", False),  # . is literal
    ("/a+b/*/c*", {"regex": r"/a\+b/[^/]+/c.*"}, "/a+b/x/cd/e", True),
])
def test_path_pattern(text, spec, path, expected):
    assert path_pattern(text, "f") == spec
    assert string_matcher(spec, "f", PATH_KINDS)(path) is expected


@pytest.mark.parametrize("text, match", [
    ("", r"f: expected a path"),
    (3, r"f: expected a path"),
    ("/a/**/b", r"f: '\*\*' must be the whole last segment"),
    ("/a/**/b*", r"f: '\*\*' must be the whole last segment"),
    ("/a/***", r"f: '\*\*' must be the whole last segment"),
])
def test_bad_path_pattern_names_the_field(text, match):
    with pytest.raises(ConfigError, match=match):
        path_pattern(text, "f")


@pytest.mark.parametrize("spec, match", [
    ({}, "exactly one of"),
    ({"exact": "a", "prefix": "b"}, "exactly one of"),
    ({"regex": "("}, r"f.regex: invalid regex"),
    ({"equals": "a"}, "unknown key 'equals'"),
    ({"glob": "/a/*"}, "unknown key 'glob'"),  # globs are for paths only
    ({"present": "yes"}, r"f.present: expected true or false"),
    ({"exact": "a", "invert": "no"}, r"f.invert: expected true or false"),
    ({"prefix": 3}, r"f.prefix: expected a string"),
    (["a"], "expected a matcher"),
])
def test_bad_matcher_names_the_field(spec, match):
    with pytest.raises(ConfigError, match=match):
        string_matcher(spec, "f")


DOC = {"model": "gpt-4o", "stream": True, "n": 2, "t": 0.5, "none": None,
       "messages": [{"role": "system"}, {"role": "user"}], "meta": {"a": 1}}


@pytest.mark.parametrize("path, expected", [
    ("model", "gpt-4o"),
    ("stream", "true"),  # JSON true -> "true"
    ("n", "2"),  # numbers as JSON writes them
    ("t", "0.5"),
    ("none", "null"),
    ("messages.0.role", "system"),
    ("messages.1.role", "user"),
    ("messages.2.role", None),
    ("meta", '{"a":1}'),
    ("absent", None),
    ("model.x", None),
])
def test_json_field(path, expected):
    assert json_field(path, "f")(DOC) == expected


def test_json_field_of_a_non_json_payload_is_missing():
    assert json_field("model", "f")("text") is None and json_field("0", "f")(["x"]) == "x"


@pytest.mark.parametrize("path", ["", "a..b", ".a", 3])
def test_bad_json_path(path):
    with pytest.raises(ConfigError, match="dotted path"):
        json_field(path, "f")


def test_as_text():
    assert [as_text(v) for v in ("x", True, False, 3, 2.5, None)] == ["x", "true", "false", "3", "2.5", None]


def test_as_text_of_a_value_nested_too_deep_is_a_bad_request_naming_the_field():
    """json.dumps raised RecursionError (a 500) on a tag nested ~1000 deep; the limit is a
    fixed depth, not wherever the stack happens to run out."""
    deep = json.loads("[" * 900 + "1" + "]" * 900)
    with pytest.raises(BadRequest, match=r"^meta.tags.tier: nested deeper than 64 levels"):
        as_text(deep, "meta.tags.tier")
    with pytest.raises(BadRequest, match=r"^jsonData.model: nested deeper"):
        json_field("model", "rules[0].match.json.model")({"model": {"a": deep}})
    ok = json.loads("[" * 64 + "]" * 64)  # 64 levels: within the limit
    assert as_text(ok) == "[" * 64 + "]" * 64
