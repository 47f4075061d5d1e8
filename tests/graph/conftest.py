"""The graph tests' fixtures: runners started per module (stopped at its end), and the test
doubles of doubles.py with the graph `routed` over them."""

import pytest

from doubles import Double, held, scripted_router, status, tagged
from graph_runner import INJECT, Runner, deployment, unit


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


@pytest.fixture(scope="module")
def doubles():
    made = {"r": Double(scripted_router), "a": Double(tagged("a")), "b": Double(tagged("b")),
            "e503": Double(status(503, "first failure")), "e502": Double(status(502, "second failure"))}
    made["slow"] = Double(held([None]))
    made["slow"].behaviour = held([made["slow"]])
    yield made
    for d in made.values():
        d.close()


@pytest.fixture(scope="module")
def routed(runners, doubles):
    """r (ROUTER) over a, b; routing injection on."""
    graph = unit("r", "ROUTER", unit("a", "MODEL"), unit("b", "MODEL"))
    return runners(deployment(graph), {n: doubles[n].url for n in "rab"}, env=INJECT)


@pytest.fixture
def fresh(doubles):
    """The doubles' records emptied before a test (modules opt in with usefixtures)."""
    for d in doubles.values():
        d.clear()
