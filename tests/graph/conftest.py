"""The graph tests' runners: started per module, stopped at its end."""

import pytest

from graph_runner import Runner


@pytest.fixture(scope="module")
def runners():
    """Runner(...) for the module; every one started is stopped at its end."""
    started = []

    def start(*args, **kwargs) -> Runner:
        r = Runner(*args, **kwargs)
        started.append(r)
        return r

    yield start
    for r in started:
        r.stop()
