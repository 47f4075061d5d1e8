"""WeightedChoice (routers/_weights.py), shared by ab-test, rules, time-of-day and canary:
`pick(u)` maps every u in [0, 1) to a child with weight > 0, even where the normalised
weights' floating-point sum falls short of 1 (the rounding guard), and never to a child
whose weight is 0."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from seldon_routers import ConfigError
from seldon_routers.routers._weights import WeightedChoice

U_MAX = math.nextafter(1.0, 0.0)  # the largest u a uniform draw in [0, 1) can give


@pytest.mark.parametrize("weights,short_of_one", [
    ([1] * 7, True),  # normalised: 1/7 each, summing to 0.9999999999999998
    ([1] * 10, True),  # 0.9999999999999999 == U_MAX
    ([1] * 10 + [0, 0], True),  # zero weights after the last positive one
    ([0, 1, 0], False),
    ([0.7, 0.2, 0.1], False),  # sums to a little over 1
    ([3, 0], False),
])
def test_the_largest_u_lands_on_the_last_child_with_weight(weights, short_of_one):
    children = [10 + i for i in range(len(weights))]  # children need not be 0..n-1
    choice = WeightedChoice(children, weights)
    assert (list(itertools.accumulate(choice.weights))[-1] < 1.0) is short_of_one  # where rounding bites
    last = max(i for i, w in enumerate(weights) if w > 0)
    assert choice.pick(U_MAX) == children[last]
    first = min(i for i, w in enumerate(weights) if w > 0)
    assert choice.pick(0.0) == children[first]


@pytest.mark.parametrize("weights", [[1] * 7, [1] * 10 + [0, 0], [0, 1, 0, 2, 0], [1e-9, 1, 0]])
def test_no_u_in_range_lands_on_a_zero_weight(weights):
    choice = WeightedChoice(list(range(len(weights))), weights)
    picked = {choice.pick(u) for u in np.append(np.linspace(0.0, U_MAX, 10_001), U_MAX)}
    assert picked <= {i for i, w in enumerate(weights) if w > 0}


def test_picks_split_by_the_weights():
    choice = WeightedChoice([0, 1, 2], [1, 1, 2])
    us = (np.arange(4000) + 0.5) / 4000  # evenly spread: each child gets its share exactly
    assert np.bincount([choice.pick(u) for u in us]).tolist() == [1000, 1000, 2000]
    assert [choice.probability(c) for c in (0, 1, 2)] == [0.25, 0.25, 0.5]


@pytest.mark.parametrize("children,weights,message", [
    ([], None, "no children"),
    ([0, 1], [1], "1 weights for 2 children"),
    ([0, 1], [0, 0], "at least one weight must be > 0"),
    ([0, 1], [1, float("nan")], "finite and >= 0"),
])
def test_invalid_weights_are_config_errors_naming_the_field(children, weights, message):
    with pytest.raises(ConfigError, match=f"^split: .*{message}"):
        WeightedChoice(children, weights, field="split")
