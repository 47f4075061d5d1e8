"""The `seldon-router` command as users run it: real processes, real ports."""

import argparse
import json
import os
import subprocess
import sys

import requests
from servers import free_port, running_router, start_router, wait_http

from seldon_routers import registry

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cli(*args, env=None, timeout=30):
    return subprocess.run([sys.executable, "-m", "seldon_routers.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, cwd=ROOT, timeout=timeout)


def test_list_shows_builtins_with_their_parameters():
    out = cli("list")
    assert out.returncode == 0
    assert "ab-test" in out.stdout and "n_branches" in out.stdout and "weights" in out.stdout
    listed = [line.split()[0] for line in out.stdout.splitlines() if line and not line.startswith(" ")]
    assert listed == list(registry.BUILTINS)
    # a Python-only argument (the injected clock) is no parameter a deployment can set
    assert "clock" not in out.stdout and "sticky_key" in out.stdout


def test_bad_parameter_stops_startup_naming_it():
    out = cli("serve", "ab-test", "--param", "n_branches=three")
    assert out.returncode == 2
    assert "n_branches" in out.stderr and "Traceback" not in out.stderr


def test_bad_seldon_parameters_from_the_environment_stop_startup():
    out = cli("serve", "ab-test", env={"PREDICTIVE_UNIT_PARAMETERS": '[{"name":"weights","value":"1:-2","type":"STRING"}]'})
    assert out.returncode == 2 and "weights" in out.stderr


def test_unknown_router_stops_startup():
    out = cli("serve", "no-such-router")
    assert out.returncode == 2 and "no-such-router" in out.stderr


def test_port_in_use_stops_startup_naming_the_port():
    with running_router("ab-test") as taken:
        out = cli("serve", "ab-test", "--host", "127.0.0.1", "--http-port", str(free_port()),
                  "--grpc-port", str(taken.grpc_port), "--metrics-port", str(free_port()))
    assert out.returncode == 2 and "--grpc-port" in out.stderr


def test_seldon_environment_configures_the_unit():
    env = {"PREDICTIVE_UNIT_ID": "my-router",
           "PREDICTIVE_UNIT_PARAMETERS": json.dumps([{"name": "n_branches", "value": "3", "type": "INT"},
                                                     {"name": "weights", "value": "0:0:1", "type": "STRING"}])}
    with running_router("ab-test", env=env) as r:
        reply = requests.post(r.url + "/route", json={"data": {"ndarray": [[1, 2]]}}).json()
    assert reply["data"]["ndarray"] == [[2]]
    assert reply["meta"]["routing"] == {"my-router": 2}


def test_ports_come_from_seldon_variables_when_no_flag_is_given():
    http, grpc_, metrics = free_port(), free_port(), free_port()
    env = {"PREDICTIVE_UNIT_HTTP_SERVICE_PORT": str(http), "PREDICTIVE_UNIT_GRPC_SERVICE_PORT": str(grpc_),
           "PREDICTIVE_UNIT_METRICS_SERVICE_PORT": str(metrics)}
    proc = subprocess.Popen([sys.executable, "-m", "seldon_routers.cli", "serve", "ab-test", "--host", "127.0.0.1"],
                            env={**os.environ, **env}, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{http}/ready", proc)
        assert requests.get(f"http://127.0.0.1:{metrics}/metrics", timeout=10).status_code == 200
    finally:
        proc.terminate()
        assert proc.wait(20) == 0


def test_custom_router_by_import_path_both_spellings():
    for spec in ("examples.custom.my_router.MyRouter", "examples.custom.my_router:MyRouter"):
        with running_router(spec, cwd=ROOT) as r:
            wide = requests.post(r.url + "/route", json={"data": {"ndarray": [[1, 2, 3, 4]]}}).json()
            narrow = requests.post(r.url + "/route", json={"data": {"ndarray": [[1, 2]]}}).json()
        assert wide["data"]["ndarray"] == [[0]] and narrow["data"]["ndarray"] == [[1]]


def test_the_console_script_imports_a_router_from_the_working_directory():
    """As `seldon-core-microservice MyRouter` does: `seldon-router serve my_router.MyRouter`
    run in the module's folder (the console script does not put it on sys.path by itself)."""
    script = os.path.join(os.path.dirname(sys.executable), "seldon-router")
    port = free_port()
    with subprocess.Popen([script, "serve", "my_router.MyRouter", "--host", "127.0.0.1", "--http-port", str(port),
                           "--grpc-port", str(free_port()), "--metrics-port", str(free_port())],
                          cwd=os.path.join(ROOT, "examples", "custom"), stderr=subprocess.PIPE, text=True) as proc:
        try:
            wait_http(f"http://127.0.0.1:{port}/ready", proc, output=proc.stderr.read)
            reply = requests.post(f"http://127.0.0.1:{port}/route", json={"data": {"ndarray": [[1, 2]]}}, timeout=10)
            assert reply.json()["data"]["ndarray"] == [[1]]
        finally:
            proc.terminate()
            assert proc.wait(20) == 0


def test_seldon_image_variables_name_the_router_as_its_images_do():
    """A Seldon image's environment (MODEL_NAME, SERVICE_TYPE=ROUTER, PERSISTENCE) serves
    with no router argument; MODEL_NAME wins over the image's default $ROUTER."""
    env = {"MODEL_NAME": "examples.custom.my_router.MyRouter", "SERVICE_TYPE": "ROUTER", "PERSISTENCE": "0",
           "ROUTER": "ab-test"}
    with running_router("--persistence", "0", env=env, cwd=ROOT) as r:
        reply = requests.post(r.url + "/route", json={"data": {"ndarray": [[1, 2, 3, 4]]}}).json()
    assert reply["data"]["ndarray"] == [[0]]


def test_a_unit_that_is_not_a_router_or_no_router_named_stops_startup():
    out = cli("serve", "ab-test", env={"SERVICE_TYPE": "MODEL"})
    assert out.returncode == 2 and "$SERVICE_TYPE" in out.stderr and "'MODEL'" in out.stderr
    out = cli("serve", "ab-test", "--service-type", "TRANSFORMER")
    assert out.returncode == 2 and "--service-type" in out.stderr
    out = cli("serve", env={"MODEL_NAME": "", "ROUTER": ""})
    assert out.returncode == 2 and "MODEL_NAME" in out.stderr and "Traceback" not in out.stderr


def test_snapshot_interval_from_the_environment_is_checked():
    out = cli("serve", "ab-test", "--state", "file:/tmp/never-written.json",
              env={"SELDON_ROUTER_SNAPSHOT_INTERVAL": "soon"})
    assert out.returncode == 2 and "SELDON_ROUTER_SNAPSHOT_INTERVAL" in out.stderr
    out = cli("serve", "ab-test", "--snapshot-interval", "0")
    assert out.returncode == 2 and "--snapshot-interval" in out.stderr


def test_list_describes_each_router_in_a_whole_sentence_with_readable_types():
    out = cli("list").stdout
    headers = {line.split()[0]: line for line in out.splitlines() if line and not line.startswith(" ")}
    for name, line in headers.items():
        summary = line.split("): ", 1)[1]
        assert summary.endswith("."), f"{name}: cut mid-sentence: {summary!r}"
    # the docstring's first sentence, joined across its lines
    assert headers["epsilon-greedy"].endswith("(Seldon's explored only the others, and failed with one branch).")
    assert "typing" not in out and "Union[" not in out and "Optional[" not in out and "NoneType" not in out
    assert "    weights: str | list (default None)" in out.splitlines()
    assert "    n_branches: int (default None)" in out.splitlines()
    assert "    epsilon: float (default 0.1)" in out.splitlines()


def test_serve_help_gives_every_flag_its_default():
    from seldon_routers.cli import _parser

    serve = next(a for a in _parser()._actions if isinstance(a, argparse._SubParsersAction)).choices["serve"]
    flags = [a for a in serve._actions if a.help is not argparse.SUPPRESS and not isinstance(a, argparse._HelpAction)]
    assert len(flags) > 20
    missing = [a.option_strings[0] if a.option_strings else a.dest for a in flags if "default" not in a.help]
    assert not missing, f"no default in the help of {missing}"
    out = cli("serve", "--help")
    assert out.returncode == 0
    text = " ".join(out.stdout.split())  # argparse wraps the help text
    for shown in ("(default 25)", "$SELDON_LOG_LEVEL or info", "$SELDON_ROUTER_STATE or memory",
                  "$SELDON_ROUTER_SNAPSHOT_INTERVAL or 10", "$PREDICTIVE_UNIT_HTTP_SERVICE_PORT or 9000"):
        assert shown in text


def test_serve_prints_each_log_line_once():
    """Two uvicorn servers (REST, metrics) run in one process; their start-up and shutdown
    lines appear once each, in the one log format."""
    r = start_router("epsilon-greedy", "--param", "n_branches=3")
    assert r.stop() == 0
    out = r.output()
    assert out.count("Started server process") == 1, out
    assert out.count("Finished server process") == 1, out
    assert out.count("ready: REST") == 1, out
    assert "INFO:     " not in out  # uvicorn's own handler is not used: every line has our format
