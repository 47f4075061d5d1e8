"""Under Seldon's own wrapper a built-in costs no more than a plain Seldon-style class
doing the same job: the same number of round trips to the wrapper's metrics process per
Route and per SendFeedback (bench/wrapper_speed.py measures the throughput this keeps).

The wrapper asks hasattr(model, "metrics") on every call and, when true, updates its
Manager-held metrics a second time; the hooks Router declares must not make that true."""

import json
from pathlib import Path

import pytest
from seldon_peers import peer_env
from test_interop_wrapper import ROUTERS

pytestmark = pytest.mark.peers

COST = Path(__file__).resolve().parent / "seldon_cost.py"


@pytest.fixture(scope="module")
def costs(seldon_python):
    import subprocess
    import tempfile

    classes = {"plain": ["plain", [{"name": "n_branches", "value": "3", "type": "INT"}]]}
    classes.update({p.id: [interface, parameters] for p in ROUTERS for interface, parameters, _ in [p.values[0]]})
    proc = subprocess.run([str(seldon_python), str(COST), json.dumps(classes)], capture_output=True, text=True,
                          timeout=120, env=peer_env(), cwd=tempfile.gettempdir())
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def test_the_plain_class_is_counted(costs):
    assert costs["plain"]["route"] > 0 and costs["plain"]["feedback"] > 0  # the counter sees the Manager


@pytest.mark.parametrize("router", [p.id for p in ROUTERS])
def test_a_builtin_costs_the_wrapper_what_a_plain_class_does(costs, router):
    assert costs[router] == costs["plain"], (router, costs[router], costs["plain"])
