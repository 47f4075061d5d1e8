"""The runner's default units (stub_model.py), as processes: a stub answers its input tagged
with its name, a COMBINER stub the first message it aggregates, and a malformed call is a
400 naming the field."""

from __future__ import annotations

import pytest
import requests

from graph_runner import INJECT, deployment, unit


@pytest.fixture(scope="module")
def stubs(runners):
    graph = unit("comb", "COMBINER", unit("a", "MODEL"), unit("t", "TRANSFORMER"))
    return runners(deployment(graph), env=INJECT)


def test_every_unit_is_a_stub_process(stubs):
    units = stubs.units()
    assert all(u["pid"] and u["url"] for u in units.values())


def test_a_combiner_stub_answers_the_first_message_tagged_with_its_name(stubs):
    r = stubs.predict({"data": {"ndarray": [[1, 2]]}, "meta": {"tags": {"mine": "x"}}})
    assert r.status_code == 200, r.text
    assert r.json() == {"data": {"ndarray": [[1, 2]]},
                        "meta": {"tags": {"mine": "x", "unit": "comb"}, "routing": {"comb": -1, "a": -1, "t": -1}}}


def test_a_stub_tags_its_replies_and_refuses_a_malformed_aggregate(stubs):
    units = stubs.units()
    r = requests.post(units["a"]["url"] + "/predict", json={"strData": "hi"}, timeout=10)
    assert r.json() == {"strData": "hi", "meta": {"tags": {"unit": "a"}}}
    r = requests.post(units["comb"]["url"] + "/aggregate", json={"seldonMessages": []}, timeout=10)
    assert r.status_code == 400 and "seldonMessages" in r.json()["status"]["info"]
    r = requests.post(units["a"]["url"] + "/send-feedback", json={"reward": 1}, timeout=10)
    assert r.status_code == 200 and r.json()["meta"] == {"tags": {"unit": "a"}}
