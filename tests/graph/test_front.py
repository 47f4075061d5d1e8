"""The front door (front.py): Seldon-Puid, the client's headers passed to every unit,
and a body that is no JSON object refused before any unit is called."""

from __future__ import annotations

import uuid

import pytest
import requests


pytestmark = pytest.mark.usefixtures("fresh")
MSG = {"data": {"ndarray": [[1.0, 2.0]]}, "meta": {}}


def test_puid_is_generated_forwarded_and_returned(routed, doubles):
    r = routed.predict(MSG, {"x-route": "0"})
    puid = r.headers["Seldon-Puid"]
    assert uuid.UUID(puid).version == 4
    assert doubles["r"].calls[0][1]["seldon-puid"] == puid and doubles["a"].calls[0][1]["seldon-puid"] == puid
    r = routed.predict(MSG, {"x-route": "0", "Seldon-Puid": "my-own-puid"})
    assert r.headers["Seldon-Puid"] == "my-own-puid"
    assert doubles["a"].calls[-1][1]["seldon-puid"] == "my-own-puid"


def test_the_clients_headers_reach_every_unit(routed, doubles):
    routed.predict(MSG, {"x-route": "1", "x-user-id": "u-42"})
    for d in (doubles["r"], doubles["b"]):
        assert d.calls[0][1]["x-user-id"] == "u-42"
        assert d.calls[0][1]["content-type"] == "application/json"


def test_bad_bodies_are_a_400_naming_the_body(routed, doubles):
    r = requests.post(routed.url + "/api/v1.0/predictions", data=b"not json", timeout=10)
    assert r.status_code == 400 and r.json()["status"]["info"].startswith("body: expected a SeldonMessage")
    r = routed.predict([1, 2])
    assert r.status_code == 400 and "JSON object" in r.json()["status"]["info"]
    assert doubles["r"].calls == []




@pytest.mark.parametrize("path", ["/api/v1.0/predictions", "/api/v1.0/feedback"])
def test_a_body_nested_past_the_parser_is_a_400_with_the_puid(routed, doubles, path):
    r = requests.post(routed.url + path, data=b"[" * 100_000 + b"]" * 100_000, timeout=30)
    assert r.status_code == 400, r.text
    assert r.json()["status"]["info"].startswith("body: expected a ") and "nests too deep" in r.json()["status"]["info"]
    assert r.headers["Seldon-Puid"]
    assert doubles["r"].calls == []
