"""The shared typed readers (seldon_routers/routers/_params.py) as pure functions: tables
of (value, expected) and of refusals, each naming the field."""

import pytest

from seldon_routers import ConfigError
from seldon_routers.routers._params import duration


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
