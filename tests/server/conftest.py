"""Real servers for the transport tests, started once per session.

Processes (`seldon-router serve`, as users run it), started in parallel:
  echo      tests/server/echo_router.EchoRouter  (learns, n_children=2)
  scripted  echo_router.ScriptedRouter           (returns the decision a request asks for)
  small     EchoRouter with --max-body-size 1000
  abtest    the built-in ab-test, weights 1:3 over children a, b, seed 3
In-process, for the Flask adapter: the same four routers behind
`seldon_routers.server.flask.create_app`, each on a werkzeug server in a thread.

The `rest` fixture is parametrised over both backends, so every REST test runs against
uvicorn (the process) and Flask with the same code.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import grpc
import pytest
import requests

import echo_router
from server_cases import ThreadedWerkzeug, serve
from servers import RouterProcess

SMALL_BODY = 1000
AB_PARAMS = {"weights": "1:3", "branch_names": "a:b", "seed": "3"}
AB_ARGS = [arg for name, value in AB_PARAMS.items() for arg in ("--param", f"{name}={value}")]


@dataclass
class Backend:
    """One REST server set: base URLs of the echo, scripted, small-body and ab-test routers."""

    name: str
    url: str
    scripted_url: str
    small_url: str
    ab_url: str

    def state(self) -> dict:
        r = requests.get(self.url + "/state", timeout=5)
        assert r.status_code == 200, r.text
        return r.json()["state"]


@pytest.fixture(scope="session")
def processes():
    """The four router processes, started concurrently (each takes ~2 s to come up)."""
    specs = {
        "echo": ("echo_router.EchoRouter", "--unit-id", "echo"),
        "scripted": ("echo_router.ScriptedRouter", "--unit-id", "scripted"),
        "small": ("echo_router.EchoRouter", "--unit-id", "echo", "--max-body-size", str(SMALL_BODY)),
        "abtest": ("ab-test", "--unit-id", "abtest", *AB_ARGS),
    }
    with ThreadPoolExecutor(len(specs)) as pool:
        futures = {name: pool.submit(serve, *args) for name, args in specs.items()}
        started, errors = {}, []
        for name, future in futures.items():
            try:
                started[name] = future.result()
            except Exception as exc:  # noqa: BLE001  stop the others before failing
                errors.append(f"{name}: {exc}")
    try:
        if errors:
            raise RuntimeError("could not start router processes: " + "; ".join(errors))
        yield started
    finally:
        for rp in started.values():
            rp.stop()


@pytest.fixture(scope="session")
def flask_servers():
    from seldon_routers import ABTest
    from seldon_routers.server.flask import create_app

    servers = {
        "echo": ThreadedWerkzeug(create_app(echo_router.EchoRouter(), unit_id="echo")),
        "scripted": ThreadedWerkzeug(create_app(echo_router.ScriptedRouter(), unit_id="scripted")),
        "small": ThreadedWerkzeug(create_app(echo_router.EchoRouter(), unit_id="echo",
                                              max_body_size=SMALL_BODY)),
        "abtest": ThreadedWerkzeug(create_app(ABTest(weights="1:3", branch_names="a:b", seed=3), unit_id="abtest")),
    }
    yield servers
    for s in servers.values():
        s.stop()


@pytest.fixture(scope="session", params=["uvicorn", "flask"])
def rest(request) -> Backend:
    if request.param == "uvicorn":
        servers = request.getfixturevalue("processes")
    else:
        servers = request.getfixturevalue("flask_servers")
    return Backend(request.param, servers["echo"].url, servers["scripted"].url, servers["small"].url,
                   servers["abtest"].url)


@pytest.fixture(scope="session")
def echo(processes) -> RouterProcess:
    return processes["echo"]


@pytest.fixture(scope="session")
def echo_channel(echo):
    with grpc.insecure_channel(echo.grpc_target) as channel:
        grpc.channel_ready_future(channel).result(timeout=10)
        yield channel


@pytest.fixture(scope="session")
def scripted_channel(processes):
    with grpc.insecure_channel(processes["scripted"].grpc_target) as channel:
        yield channel


@pytest.fixture(scope="session")
def small_channel(processes):
    with grpc.insecure_channel(processes["small"].grpc_target) as channel:
        yield channel
