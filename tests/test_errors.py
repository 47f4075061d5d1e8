"""errors.quote: how an error message shows a client's value."""

import json

from seldon_routers.errors import QUOTE_LIMIT, quote


def test_small_values_read_as_repr():
    for value in ("x", 1, -1.5, None, True, [1, "a"], {"k": [1, 2]}):
        assert quote(value) == repr(value)


def test_a_value_nested_past_the_recursion_limit_is_quoted_three_levels_deep():
    """repr() of it raised RecursionError: the error about it became a 500."""
    deep = json.loads("[" * 900 + "1" + "]" * 900)
    assert quote(deep) == "[[[[...]]]]"
    assert quote({"a": {"b": {"c": {"d": 1}}}}) == "{'a': {'b': {'c': {...}}}}"


def test_long_values_are_cut_short():
    assert len(quote("x" * 100_000)) < 100
    assert len(quote(list(range(100_000)))) < 100
    assert len(quote(10 ** 5000)) < 100  # int -> str refuses past 4300 digits; reprlib cuts first
    text = quote([["y" * 70] * 6] * 6)
    assert len(text) == QUOTE_LIMIT and text.endswith("...")


def test_a_value_whose_repr_fails_still_quotes():
    class Loop(list):  # reprlib leaves a subclass to its own repr
        def __repr__(self):
            raise RecursionError("as a self-referencing subclass's repr might")

    assert quote(Loop()).startswith("<Loop")
