"""The units the runner starts: the operator's environment for each, a user's model class,
and no unit left behind when the runner stops."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest
import requests
import yaml

from doubles import Double, held
from graph_runner import ROOT, Runner, deployment, unit
from seldon_routers.graph.cli import GRACEFUL_SHUTDOWN_S
from seldon_routers.graph.deployment import parse
from seldon_routers.graph.launcher import Launcher
from servers import free_port
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


def _alive(pid: int) -> bool:
    return os.path.exists(f"/proc/{pid}") and not _zombie(pid)


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="reads a process's environment from /proc")
def test_the_runners_unit_variables_do_not_leak_into_units(tmp_path, monkeypatch):
    """The shell's MODEL_NAME, ROUTER, SERVICE_TYPE, PREDICTIVE_UNIT_*, SELDON_ROUTER_* ... are
    not a unit's: only its container's env and the operator's values are."""
    leaks = {"MODEL_NAME": "shell.Model", "ROUTER": "epsilon-greedy", "SERVICE_TYPE": "MODEL",
             "PERSISTENCE": "1", "PREDICTIVE_UNIT_SERVICE_PORT": "1", "PREDICTIVE_UNIT_EXTRA": "x",
             "SELDON_ROUTER_STATE": "file:/tmp/shell.json", "SELDON_ROUTER_WORKERS": "4",
             "SELDON_DEPLOYMENT_ID": "shell-sdep", "PREDICTOR_ID": "shell-predictor"}
    for k, v in {**leaks, "UNRELATED_SHELL_VAR": "kept"}.items():
        monkeypatch.setenv(k, v)
    containers = [{"name": "m", "env": [{"name": "FROM_CONTAINER", "value": "yes"},
                                        {"name": "SERVICE_TYPE", "value": "MODEL"}]}]
    p = parse(yaml.safe_dump(deployment(unit("r", "ROUTER", unit("m", "MODEL")), containers=containers)))
    launcher = Launcher(p, {"r": "http://127.0.0.1:1"}, str(tmp_path), str(tmp_path))
    try:
        launcher.start()
        env = environ(launcher.pids()["m"])
    finally:
        launcher.stop()
    assert env["FROM_CONTAINER"] == "yes" and env["SERVICE_TYPE"] == "MODEL"  # the container's own
    assert env["UNRELATED_SHELL_VAR"] == "kept" and env["PREDICTIVE_UNIT_ID"] == "m"
    assert (env["SELDON_DEPLOYMENT_ID"], env["PREDICTOR_ID"]) == ("test-graph", "default")
    left = {k for k in leaks if k != "SERVICE_TYPE" and k in env and env[k] == leaks[k]}
    assert left == set()


def test_stop_kills_the_workers_of_a_unit_whose_main_process_died(tmp_path):
    pidfile = tmp_path / "worker.pid"
    m = unit("m", "MODEL", parameters=[{"name": "pidfile", "value": str(pidfile), "type": "STRING"}])
    launcher = Launcher(parse(yaml.safe_dump(deployment(m))), {"m": "graph_models.Forker"},
                        str(ROOT / "tests" / "graph"), str(tmp_path))
    try:
        launcher.start()
        worker = int(pidfile.read_text())
        main = launcher.pids()["m"]
        os.kill(main, signal.SIGKILL)  # the unit's main process dies; its worker stays in its group
        launcher.running[0].proc.wait(10)
        assert _alive(worker)
    finally:
        launcher.stop(timeout=5)
    wait_until(lambda: not _alive(worker), 10, 0.1, "the dead unit's worker gone")


def test_a_signal_stops_the_runner_while_a_unit_call_hangs():
    """A prediction held by a child that never answers: SIGTERM ends the runner within its
    graceful bound (a second signal at once), and its units with it."""
    hold = Double(held([None]))
    hold.behaviour = held([hold])
    try:
        graph = unit("comb", "COMBINER", unit("a", "MODEL"), unit("hold", "MODEL"))
        runner = Runner(deployment(graph), {"hold": hold.url})
        pids = [u["pid"] for u in runner.units().values() if u["pid"]]
        assert len(pids) == 2
        inflight = threading.Thread(target=lambda: _swallow(runner.predict, {"data": {"ndarray": [[1]]}}))
        inflight.start()
        wait_until(lambda: hold.calls, 30, 0.05, "the held call arrived")
        start = time.monotonic()
        runner.proc.send_signal(signal.SIGTERM)
        runner.proc.wait(GRACEFUL_SHUTDOWN_S + 25)
        assert time.monotonic() - start < GRACEFUL_SHUTDOWN_S + 20
        wait_until(lambda: all(not _alive(p) for p in pids), 30, 0.1, "every unit process gone")

        runner = Runner(deployment(graph), {"hold": hold.url})  # twice: at once
        pids = [u["pid"] for u in runner.units().values() if u["pid"]]
        hold.clear()
        inflight = threading.Thread(target=lambda: _swallow(runner.predict, {"data": {"ndarray": [[1]]}}))
        inflight.start()
        wait_until(lambda: hold.calls, 30, 0.05, "the held call arrived")
        start = time.monotonic()
        runner.proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        runner.proc.send_signal(signal.SIGTERM)
        runner.proc.wait(25)
        assert time.monotonic() - start < GRACEFUL_SHUTDOWN_S - 5
        wait_until(lambda: all(not _alive(p) for p in pids), 30, 0.1, "every unit process gone")
    finally:
        runner.stop()
        hold.close()


def _swallow(call, *args):
    try:
        call(*args)
    except requests.RequestException:
        pass


def test_the_server_closes_the_unit_client_when_it_stops():
    import asyncio

    import uvicorn

    from seldon_routers.graph.cli import _server_class
    from seldon_routers.graph.client import UnitClient

    client = UnitClient({})
    server = _server_class()(uvicorn.Config(lambda *a: None, host="127.0.0.1", port=free_port(), lifespan="off",
                                            log_level="error"), on_stop=client.aclose)
    server.should_exit = True
    asyncio.run(server.serve())
    assert client._http.is_closed


def test_a_free_port_is_never_one_the_runner_keeps_for_itself():
    from seldon_routers.graph.launcher import free_port

    taken = {free_port() for _ in range(50)}
    assert not taken & {free_port(taken) for _ in range(200)}
