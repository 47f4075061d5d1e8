"""The shared typed readers (seldon_routers/routers/_params.py) as pure functions: tables
of (value, expected) and of refusals, each naming the field."""

import numpy as np
import pytest

from seldon_routers import ConfigError
from seldon_routers.routers._params import (arguments, child, children, choice, duration, fraction, integer, items,
                                            number, optional, positive_int, real, reals, weights)


@pytest.mark.parametrize("value, seconds", [
    ("5m", 300.0),  # the ModelRoute canary example's analysis.interval
    ("30s", 30.0),
    ("60s", 60.0),
    ("1h", 3600.0),
    ("1h30m", 5400.0),
    ("1.5h", 5400.0),
    ("2m30s", 150.0),
    ("250ms", 0.25),
    ("100us", 1e-4),
    ("100µs", 1e-4),
    ("1000000ns", 1e-3),
    (".5s", 0.5),
    ("0", 0.0),  # Go's ParseDuration: "0" alone needs no unit
    ("0s", 0.0),
    (" 10s ", 10.0),
    (300, 300.0),  # a number is seconds
    (2.5, 2.5),
])
def test_duration(value, seconds):
    assert duration(value, "f") == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["", "5", "300", "5 m", "5min", "-5m", "1d", "m", "5m-", "s5", "1.2.3s", True,
                                   None, -1, float("nan"), float("inf"), ["5m"]])
def test_bad_duration_names_the_field(value):
    with pytest.raises(ConfigError, match=r"^spec.canary.analysis.interval: expected a duration"):
        duration(value, "spec.canary.analysis.interval")


NAMES = ["stable", "candidate", "shadow"]


@pytest.mark.parametrize("ref, special, expected", [
    ("candidate", False, 1), (" candidate ", False, 1), (2, False, 2), ("2", False, 2), (" 0 ", False, 0),
    (np.int64(1), False, 1), ("+1", False, 1), (-1, True, -1), ("-2", True, -2), (" -1 ", True, -1)])
def test_a_child_by_name_or_index_reads_alike_in_every_family(ref, special, expected):
    assert child(ref, NAMES, "f", special) == expected


@pytest.mark.parametrize("ref, special", [
    ("nope", False), (3, False), ("3", False), (-1, False), ("-2", False), (-3, True), (True, False), (1.0, False),
    (None, False), ("", False), ([1], False)])
def test_an_unknown_child_names_the_field_the_children_and_what_is_accepted(ref, special):
    with pytest.raises(ConfigError) as refused:
        child(ref, NAMES, "rules[0].to", special)
    message = refused.value.message
    assert message.startswith(f"rules[0].to: unknown child {ref!r} (children: stable, candidate, shadow); "
                              "expected a name or an index 0..2"), message
    assert ("-1 (all children) or -2 (none)" in message) == special


def test_children_not_named_yet_take_indices_only():
    assert child("4", None, "fallback", True) == 4 and child(-2, None, "fallback", True) == -2
    with pytest.raises(ConfigError, match=r"^fallback: unknown child 'a' \(children: none named\)"):
        child("a", None, "fallback", True)


@pytest.mark.parametrize("value, kwargs, expected", [
    (0, {}, 0.0), (2.5, {"lo": 0.0}, 2.5), (1, {"lo": 0.0, "hi": 1.0}, 1.0), (np.float32(0.5), {}, 0.5)])
def test_number_takes_finite_numbers_within_bounds(value, kwargs, expected):
    assert number(value, "f", **kwargs) == expected and type(number(value, "f", **kwargs)) is float


@pytest.mark.parametrize("value, kwargs, message", [
    (True, {}, "f: must be a finite number, got True"),
    (float("nan"), {}, "f: must be a finite number, got nan"),
    (float("inf"), {"lo": 0.0}, "f: must be a number >= 0, got inf"),
    (0, {"lo": 0.0, "lo_open": True}, "f: must be a number > 0, got 0"),
    (1, {"lo": 0.0, "hi": 1.0, "hi_open": True}, r"f: must be a number within \[0, 1\), got 1"),
    ("0.5", {}, "f: must be a finite number, got '0.5'")])
def test_number_refuses_naming_the_field_and_the_bounds(value, kwargs, message):
    with pytest.raises(ConfigError, match=f"^{message}$"):
        number(value, "f", **kwargs)


def test_fraction_integer_and_positive_int():
    assert fraction(0, "f") == 0.0 and fraction(1, "f") == 1.0
    for bad, kwargs in ((1.5, {}), (0, {"lo_open": True}), (1, {"hi_open": True})):
        with pytest.raises(ConfigError, match="^f: must be a number within"):
            fraction(bad, "f", **kwargs)
    assert integer(3.0, "n") == 3 and type(integer(3.0, "n")) is int and integer(0, "n") == 0
    assert positive_int(1, "n") == 1
    for bad in (0, -1, 2.5, True, "3", None, float("inf")):
        with pytest.raises(ConfigError, match=f"^n: must be an integer >= 1, got {bad!r}$".replace("(", r"\(")):
            positive_int(bad, "n")
    assert optional(positive_int, None, "n") is None and optional(positive_int, 2, "n") == 2


def test_items_read_lists_json_lists_and_seldon_colon_strings():
    assert items("a:b:c", "names") == ["a", "b", "c"] and items(" [1, 2] ", "w", float) == [1.0, 2.0]
    assert items(["x"], "names") == ["x"] and items("", "names") == []
    with pytest.raises(ConfigError, match="^w: every item must be a float"):
        items("1:x", "w", float)
    with pytest.raises(ConfigError, match="^w: not a valid JSON list"):
        items("[1,", "w", float)
    with pytest.raises(ConfigError, match="^names: expected a list or 'a:b:c', got int"):
        items(3, "names")


def test_children_from_n_branches_and_or_names():
    assert children(3, None) == ["0", "1", "2"] and children(None, "a:b") == ["a", "b"]
    assert children(2, ["a", "b"]) == ["a", "b"]
    with pytest.raises(ConfigError, match="^branch_names: 3 names given for n_branches=2"):
        children(2, "a:b:c")
    with pytest.raises(ConfigError, match="^branch_names: names must be unique"):
        children(None, "a:a")
    with pytest.raises(ConfigError, match="^n_branches: must be an integer >= 1, got 0"):
        children(0, None)
    # a count no fleet has: refused before anything is sized by it
    with pytest.raises(ConfigError, match="^n_branches: at most 10,000 children, got 1,000,000,000"):
        children(10 ** 9, None)
    with pytest.raises(ConfigError, match="^branch_names: at most 10,000 children, got 10,001"):
        children(None, [str(i) for i in range(10_001)])


def test_choice_weights_and_arguments():
    assert choice("onnx", "backend", ("auto", "onnx")) == "onnx"
    with pytest.raises(ConfigError, match="^inputs: expected tensor or text, got 'image'$"):
        choice("image", "inputs", ("tensor", "text"))
    with pytest.raises(ConfigError, match="^b: expected a, b or c, got 'd'$"):
        choice("d", "b", ("a", "b", "c"))
    assert weights([1, 1, 2]) == [0.25, 0.25, 0.5]
    for bad in ([0, 0], [-1, 2], [float("nan")], [float("inf"), 1]):
        with pytest.raises(ConfigError, match="^weights: "):
            weights(bad)

    class Example:
        def __init__(self, a, b=2):
            self.got = arguments(locals())

    assert Example(1).got == {"a": 1, "b": 2}


@pytest.mark.parametrize("value, expected", [
    ("1/255", 1 / 255), (" 1 / 255 ", 1 / 255), ("0.5", 0.5), ("2e-3", 0.002), ("1e-3/2", 0.0005), (0.25, 0.25),
    (3, 3.0)])
def test_real_reads_numbers_and_ratios(value, expected):
    assert real(value, "image_scale") == expected


@pytest.mark.parametrize("value, message", [
    ("abc", "expected a number or a ratio like 1/255, got 'abc'"), ("1/0", "expected a number or a ratio"),
    ("1/2/3", "expected a number or a ratio"), ("inf", "must be a number > 0"), ("0", "must be a number > 0"),
    ("-1/255", "must be a number > 0"), (True, "must be a number > 0"), (None, "must be a number > 0")])
def test_bad_real_names_the_field(value, message):
    with pytest.raises(ConfigError, match=f"^image_scale: {message}"):
        real(value, "image_scale", 0.0, lo_open=True)


@pytest.mark.parametrize("value, expected", [
    ("0.485,0.456,0.406", [0.485, 0.456, 0.406]), ("0.485, 0.456 0.406", [0.485, 0.456, 0.406]),
    ("1:2:3", [1.0, 2.0, 3.0]), ("[0.5, \"1/4\"]", [0.5, 0.25]), ([1, 2], [1.0, 2.0]), (0.5, [0.5]),
    ("7", [7.0])])
def test_reals_reads_per_channel_lists(value, expected):
    assert reals(value, "image_mean") == expected


@pytest.mark.parametrize("value, message", [
    ("", "expected one or more numbers"), ("[]", "expected one or more numbers"), ("0.5,x", "got 'x'"),
    ({"r": 1}, "expected a list"), ("[1, null]", "must be a number > 0, got None"), ("1,0", "must be a number > 0")])
def test_bad_reals_name_the_field(value, message):
    with pytest.raises(ConfigError, match=f"^image_std: .*{message}"):
        reals(value, "image_std", 0.0, lo_open=True)
