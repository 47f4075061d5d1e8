"""Real servers for the transport tests, started once per session.

In process (tests/servers.py InProcessServer: the server's DataPlane, RestApp on uvicorn,
the grpc.aio servicers, on free ports; a process would add only its start-up):
  echo      tests/server/echo_router.EchoRouter  (learns, n_children=2)
  scripted  echo_router.ScriptedRouter           (returns the decision a request asks for)
  small     EchoRouter with a 1000-byte body limit
  abtest    the built-in ab-test, weights 1:3 over children a, b, seed 3
And for the Flask adapter: the same four routers behind
`seldon_routers.server.flask.create_app`, each on a werkzeug server in a thread.

The `rest` fixture is parametrised over both backends, so every REST test runs against
uvicorn and Flask with the same code. What only the `seldon-router serve` process has
(the metrics port, signals, flags) is tested in test_server_process.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc
import pytest
import requests

import echo_router
from server_cases import ECHO_UNIT, ThreadedWerkzeug
from servers import InProcessServer

SMALL_BODY = 1000
AB_PARAMS = {"weights": "1:3", "branch_names": "a:b", "seed": "3"}


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
def served():
    """The four routers, each an InProcessServer."""
    from seldon_routers import ABTest, params

    started = {}
    try:
        started["echo"] = InProcessServer(echo_router.EchoRouter(), unit_id=ECHO_UNIT)
        started["scripted"] = InProcessServer(echo_router.ScriptedRouter(), unit_id="scripted")
        started["small"] = InProcessServer(echo_router.EchoRouter(), unit_id=ECHO_UNIT, max_body_size=SMALL_BODY)
        started["abtest"] = InProcessServer(params.build(ABTest, AB_PARAMS), unit_id="abtest", name="ab-test")
        yield started
    finally:
        for server in started.values():
            server.stop()


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
    servers = request.getfixturevalue("served" if request.param == "uvicorn" else "flask_servers")
    return Backend(request.param, servers["echo"].url, servers["scripted"].url, servers["small"].url,
                   servers["abtest"].url)


@pytest.fixture(scope="session")
def echo(served) -> InProcessServer:
    return served["echo"]


@pytest.fixture(scope="session")
def echo_channel(echo):
    with grpc.insecure_channel(echo.grpc_target) as channel:
        grpc.channel_ready_future(channel).result(timeout=10)
        yield channel


@pytest.fixture(scope="session")
def scripted_channel(served):
    with grpc.insecure_channel(served["scripted"].grpc_target) as channel:
        yield channel


@pytest.fixture(scope="session")
def small_channel(served):
    with grpc.insecure_channel(served["small"].grpc_target) as channel:
        yield channel
