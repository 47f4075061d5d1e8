"""RANDOM_ABTEST, the executor's own router (executor/predictor/components.go): no unit is
called; child 0 when a uniform draw is below ratioA, else child 1."""

from __future__ import annotations

import pytest
from scipy.stats import binom

from doubles import Double, tagged
from graph_runner import deployment, unit
from seldon_routers.graph.deployment import Unit
from seldon_routers.graph.executor import ratio_a

N = 200


def abtest(*parameters):
    return {"name": "ab", "implementation": "RANDOM_ABTEST", "parameters": list(parameters),
            "children": [unit("a", "MODEL"), unit("b", "MODEL")]}


def _bounds(p: float):  # a 99.9% binomial interval: deterministic at a fixed seed, and a real check
    return binom.ppf(0.0005, N, p), binom.ppf(0.9995, N, p)


@pytest.fixture(scope="module")
def children():
    made = {"a": Double(tagged("a")), "b": Double(tagged("b"))}
    yield made
    for d in made.values():
        d.close()


def test_ratio_a_sets_the_share_of_child_0(runners, children):
    graph = abtest({"name": "ratioA", "value": "0.2", "type": "FLOAT"})
    runner = runners(deployment(graph), {n: d.url for n, d in children.items()}, args=["--seed", "0"],
                     env={"SELDON_ENABLE_ROUTING_INJECTION": "1"})
    assert runner.units()["ab"]["url"] is None  # nothing started for it
    first = [runner.predict({"data": {"ndarray": [[i]]}, "meta": {}}).json() for i in range(N)]
    to_a = sum(m["meta"]["tags"]["unit"] == "a" for m in first)
    lo, hi = _bounds(0.2)
    assert lo <= to_a <= hi
    assert len(children["a"].calls) == to_a and len(children["b"].calls) == N - to_a
    assert {m["meta"]["routing"]["ab"] for m in first} == {0, 1}


def test_ratio_a_is_honoured_only_as_the_only_parameter():
    alone = Unit("ab", "", "RANDOM_ABTEST", parameters=[{"name": "ratioA", "value": "0.9"}])
    other = Unit("ab", "", "RANDOM_ABTEST", parameters=[{"name": "ratioA", "value": "0.9"}, {"name": "x", "value": "1"}])
    assert ratio_a(alone) == 0.9 and ratio_a(other) == 0.5
    assert ratio_a(Unit("ab", "", "RANDOM_ABTEST")) == 0.5
