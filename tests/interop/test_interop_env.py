"""The core package installs into Seldon's own environment without moving any of its pins."""

import json
import re
import subprocess

import pytest
from seldon_peers import REPO, peer_env

pytestmark = pytest.mark.peers

# What seldon-core 1.18.2 pins and a router package must never move.
PINS = {"numpy": 2, "protobuf": 4, "flask": 3}  # name -> first major version not allowed


def run(cmd, **kw):
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=300,
                          env=peer_env(), **kw)


def test_seldon_pins_still_hold(seldon_python):
    # seldon_env.sh has just installed our package: had it demanded numpy>=2 (say), pip
    # would have upgraded numpy there with a mere warning. These catch that afterwards.
    out = run([seldon_python, "-c", "import json, importlib.metadata as m; "
               f"print(json.dumps({{n: m.version(n) for n in {list(PINS)!r}}}))"])
    assert out.returncode == 0, out.stderr
    versions = json.loads(out.stdout)
    for name, first_bad_major in PINS.items():
        assert int(versions[name].split(".")[0]) < first_bad_major, (
            f"{name} {versions[name]} in the Seldon venv: seldon-core 1.18.2 needs "
            f"{name}<{first_bad_major}. If setup.cfg is fixed, rebuild: rm -rf .cache/seldon-core-1.18.2")
    check = run([seldon_python, "-m", "pip", "check"])
    assert check.returncode == 0, check.stdout + check.stderr


def test_install_moves_nothing_and_core_needs_numpy_only(seldon_python):
    # A dry run against the venv as it is: pip reports every distribution it would install
    # or replace. Only our package may appear; an upgrade or a new dependency would too.
    out = run([seldon_python, "-m", "pip", "install", "--dry-run", "--quiet", "--report", "-", REPO])
    assert out.returncode == 0, out.stderr[-3000:]
    installs = json.loads(out.stdout)["install"]
    names = {i["metadata"]["name"].lower() for i in installs}
    assert names == {"seldon-routers"}, f"installing the core package would also install {names}"
    # The core's own requirements (no extras): numpy only, as setup.cfg promises. A protobuf
    # or grpcio requirement satisfied by chance today would still tie the router classes to
    # a protobuf generation that Seldon's environment does not have.
    requires = installs[0]["metadata"].get("requires_dist", [])
    core = {re.match(r"[A-Za-z0-9._-]+", r).group().lower() for r in requires if "extra ==" not in r}
    assert core == {"numpy"}, f"core install_requires should be numpy only, got {sorted(core)}"


def test_router_classes_import_in_seldon_venv(seldon_python):
    # What seldon-core-microservice does first: import the module and take the class; the
    # server (uvicorn, grpc.aio, protobuf 5) must not come along with it.
    code = ("import sys, seldon_routers; "
            "assert seldon_routers.__file__.startswith(sys.prefix), seldon_routers.__file__; "
            "bad = [m for m in ('uvicorn', 'seldon_routers.server', 'orjson') if m in sys.modules]; "
            "assert not bad, bad; print(seldon_routers.ABTest.__name__)")
    out = run([seldon_python, "-c", code], cwd="/")
    assert out.returncode == 0 and out.stdout.strip() == "ABTest", out.stderr
