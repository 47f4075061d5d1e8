"""Under Seldon's own wrapper a built-in costs no more than a plain Seldon-style class
doing the same job: the same number of round trips to the wrapper's metrics process per
Route and per SendFeedback, counted by bench/wrapper_calls.py in the Seldon venv
(bench/wrapper_speed.py measures the throughput this keeps).

The wrapper asks hasattr(model, "metrics") on every call and, when true, updates its
Manager-held metrics a second time; the hooks Router declares must not make that true."""

import json
import os
import subprocess
import tempfile

import pytest
from seldon_peers import REPO, peer_env
from test_interop_wrapper import ROUTERS

pytestmark = pytest.mark.peers

# A plain class that routes and takes feedback (no seldon_routers base), from bench/incumbents.
PLAIN = ["plain_routers.PlainEpsilonGreedy", [{"name": "n_branches", "value": "3", "type": "INT"}]]


@pytest.fixture(scope="module")
def costs(seldon_python):
    classes = {"plain": PLAIN, **{p.id: list(p.values[0][:2]) for p in ROUTERS}}
    env = peer_env(PYTHONPATH=os.path.join(REPO, "bench", "incumbents"))
    proc = subprocess.run([str(seldon_python), str(REPO / "bench" / "wrapper_calls.py"), json.dumps(classes)],
                          capture_output=True, text=True, timeout=120, env=env, cwd=tempfile.gettempdir())
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def test_the_plain_class_is_counted(costs):
    assert costs["plain"]["route"] > 0 and costs["plain"]["feedback"] > 0  # the counter sees the Manager


@pytest.mark.parametrize("router", [p.id for p in ROUTERS])
def test_a_builtin_costs_the_wrapper_what_a_plain_class_does(costs, router):
    mine, plain = costs[router], costs["plain"]
    assert (mine["route"], mine["feedback"]) == (plain["route"], plain["feedback"]), (router, mine, plain)
