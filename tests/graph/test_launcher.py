"""The units the runner starts: the operator's environment for each, a user's model class,
and no unit left behind when the runner stops."""

from __future__ import annotations

import json
import os
import signal

import pytest
import requests

from graph_runner import ROOT, Runner, deployment, unit
from support import wait_until

IMAGE = "seldon-routers:0.1.0"


@pytest.fixture(scope="module")
def graph(runners):
    g = unit("r", "ROUTER", unit("m", "MODEL", parameters=[{"name": "scale", "value": "2", "type": "FLOAT"}]),
             unit("s", "MODEL"), parameters=[{"name": "n_branches", "value": "2", "type": "INT"},
                                             {"name": "weights", "value": "1:0", "type": "STRING"}])
    containers = [{"name": "r", "image": IMAGE, "env": [{"name": "ROUTER", "value": "ab-test"}]},
                  {"name": "m", "image": "my-model:1", "env": [{"name": "FROM_CONTAINER", "value": "yes"}]}]
    env = {"PYTHONPATH": os.pathsep.join([str(ROOT / "tests" / "graph"), os.environ.get("PYTHONPATH", "")])}
    return runners(deployment(graph=g, name="launch-test", containers=containers), {"m": "graph_models.EnvModel"},
                   env=env)


def environ(pid: int) -> dict:
    with open(f"/proc/{pid}/environ", "rb") as f:
        raw = f.read().split(b"\0")
    return dict(e.decode().split("=", 1) for e in raw if b"=" in e)


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads a process's environment from /proc")
def test_a_router_gets_the_operators_environment(graph):
    r = graph.units()["r"]
    env = environ(r["pid"])
    assert env["PREDICTIVE_UNIT_ID"] == "r" and env["ROUTER"] == "ab-test"
    assert json.loads(env["PREDICTIVE_UNIT_PARAMETERS"])[1] == {"name": "weights", "value": "1:0", "type": "STRING"}
    assert r["url"].endswith(":" + env["PREDICTIVE_UNIT_HTTP_SERVICE_PORT"])
    assert (env["SELDON_DEPLOYMENT_ID"], env["PREDICTOR_ID"], env["PREDICTIVE_UNIT_IMAGE"]) == ("launch-test", "default", IMAGE)
    reply = requests.post(r["url"] + "/route", json={"data": {"ndarray": [[1]]}}, timeout=10).json()
    assert reply["meta"]["routing"] == {"r": 0}  # its unit id, and its parameters (weights 1:0)


def test_a_users_model_class_is_served_with_its_parameters_and_env(graph):
    r = graph.predict({"data": {"ndarray": [[1.0, 2.5]]}})
    assert r.status_code == 200 and r.json()["data"]["ndarray"] == [[2.0, 5.0]]  # scale=2, through ab-test 1:0
    seen = graph.predict({"strData": "env"}).json()["jsonData"]
    assert seen["PREDICTIVE_UNIT_ID"] == "m" and seen["FROM_CONTAINER"] == "yes" and seen["loaded"] is True
    assert seen["PREDICTIVE_UNIT_IMAGE"] == "my-model:1"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stopping_the_runner_stops_every_unit(sig):
    runner = Runner(deployment(unit("r", "ROUTER", unit("a", "MODEL"), unit("b", "MODEL"))))
    pids = [u["pid"] for u in runner.units().values()]
    assert len(pids) == 3 and all(pids)
    assert runner.stop(sig) == 0

    def all_gone():
        return all(not os.path.exists(f"/proc/{p}") or _zombie(p) for p in pids)

    wait_until(all_gone, 30, 0.1, "every unit process gone")


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1].startswith("Z")
    except OSError:
        return True
