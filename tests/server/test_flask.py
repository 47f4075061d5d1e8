"""The Flask adapter beyond the shared REST tests (test_rest.py runs every REST test
against `create_app` too, through the `rest` fixture): mounting into a user's own Flask
app, on a real socket."""

from __future__ import annotations

import pytest
import requests
from flask import Flask

from echo_router import EchoRouter
from seldon_routers.server.dataplane import DataPlane
from seldon_routers.server.flask import create_app
from server_cases import ThreadedWerkzeug, assert_seldon_error, fb, post_json


class SeldonStyle:
    """A plain Seldon wrapper class: no base class, route/send_feedback only."""

    def __init__(self):
        self.rewards = []

    def route(self, features, feature_names):
        return 1 if features is not None and float(features.sum()) > 10 else 0

    def send_feedback(self, features, feature_names, reward, truth, routing=None):
        self.rewards.append((routing, reward))


@pytest.fixture(scope="module")
def mounted():
    """The user's app, with the router under /router and routes of its own."""
    app = Flask("users_app")

    @app.get("/hello")
    def hello():
        return "users own route"

    @app.post("/route")
    def users_route():  # the user's /route, untouched: ours is under the prefix
        return "users /route"

    router = EchoRouter()
    returned = create_app(router, unit_id="mounted", app=app, url_prefix="/router")
    assert returned is app
    server = ThreadedWerkzeug(app)
    yield server, app, router
    server.stop()


def test_mounted_router_endpoints(mounted):
    server, app, router = mounted
    r = post_json(server.url + "/router/route", {"strData": "in flask"})
    assert r.status_code == 200
    body = r.json()
    assert body["meta"]["routing"] == {"mounted": 0}
    assert body["meta"]["tags"]["mounted"]["view"]["path"] == "/route"  # the endpoint, without the prefix
    assert requests.get(server.url + "/router/health/ping", timeout=5).text == "pong"
    assert post_json(server.url + "/router/send-feedback", fb(routing=None, response={
        "meta": {"routing": {"mounted": 1}}})).status_code == 200
    assert router.applied == 1
    assert requests.get(server.url + "/router/state", timeout=5).json()["state"]["applied"] == 1


def test_mounted_leaves_users_app_alone(mounted):
    server, app, _ = mounted
    assert requests.get(server.url + "/hello", timeout=5).text == "users own route"
    assert requests.post(server.url + "/route", timeout=5).text == "users /route"
    r = requests.get(server.url + "/not-ours", timeout=5)
    assert r.status_code == 404
    assert "status" not in r.text  # the user's app keeps its own 404 page
    assert isinstance(app.extensions["seldon_router"], DataPlane)


def test_mounted_errors_are_seldon_json(mounted):
    server, _, router = mounted
    before = router.applied
    assert_seldon_error(post_json(server.url + "/router/route", {"strData": 5}), 400, "strData")
    assert_seldon_error(post_json(server.url + "/router/send-feedback", fb(routing=None)), 400, "routing")
    assert router.applied == before


def test_seldon_style_class():
    router = SeldonStyle()
    server = ThreadedWerkzeug(create_app(router, unit_id="plain"))
    try:
        r = post_json(server.url + "/route", {"data": {"ndarray": [[5, 6]]}})
        assert r.status_code == 200 and r.json()["data"]["ndarray"] == [[1]]
        assert r.json()["meta"]["routing"] == {"plain": 1}
        r = post_json(server.url + "/send-feedback", {"request": {"data": {"ndarray": [[1]]}}, "reward": 0.5,
                                                      "response": {"meta": {"routing": {"plain": 1}}}})
        assert r.status_code == 200, r.text
        assert router.rewards == [(1, 0.5)]
        # a learning Seldon class without routing: refused, nothing learned
        assert_seldon_error(post_json(server.url + "/send-feedback", {"reward": 1}), 400, "routing")
        assert router.rewards == [(1, 0.5)]
    finally:
        server.stop()


def test_create_app_takes_a_dataplane():
    dp = DataPlane(EchoRouter(), unit_id="dp")
    server = ThreadedWerkzeug(create_app(dp))
    try:
        assert dp.ready  # create_app loads it
        r = post_json(server.url + "/route", {"strData": "x"})
        assert r.json()["meta"]["routing"] == {"dp": 0}
    finally:
        server.stop()
