"""Unit calls (client.py) failing as the executor reports it: a unit's non-200 passed
through, a router's kept with the executor's payload, transport errors and the
rest-timeout as its 500, no retries."""

from __future__ import annotations

import pytest

from graph_runner import deployment, unit
from servers import free_port

pytestmark = pytest.mark.usefixtures("fresh")
MSG = {"data": {"ndarray": [[1.0, 2.0]]}, "meta": {}}


@pytest.fixture(scope="module")
def failing(runners, doubles):
    """r over a, e503, e502, and a unit at a closed port."""
    graph = unit("r", "ROUTER", unit("a", "MODEL"), unit("e503", "MODEL"), unit("e502", "MODEL"),
                 unit("gone", "MODEL"))
    urls = {n: doubles[n].url for n in ("r", "a", "e503", "e502")}
    return runners(deployment(graph), {**urls, "gone": f"http://127.0.0.1:{free_port()}"})


def test_a_childs_error_passes_through_with_its_status_and_body(failing):
    r = failing.predict(MSG, {"x-route": "2"})
    assert r.status_code == 502 and r.json()["status"]["info"] == "second failure"


def test_with_all_children_the_lowest_index_error_wins(failing, doubles):
    r = failing.predict(MSG, {"x-route": "-1"})
    assert r.status_code == 503 and r.json()["status"]["info"] == "first failure"
    assert all(len(doubles[n].calls) == 1 for n in ("a", "e503", "e502"))  # every child was called


def test_a_transport_error_is_the_executors_500(failing):
    r = failing.predict(MSG, {"x-route": "3"})
    assert r.status_code == 500
    body = r.json()["status"]
    assert body["code"] == 500 and body["status"] == "FAILURE" and "calling gone" in body["info"]


def test_a_call_past_the_rest_timeout_is_a_500(runners, doubles):
    graph = unit("slow", "MODEL")
    slow = runners(deployment(graph, annotations={"seldon.io/rest-timeout": "1000"}), {"slow": doubles["slow"].url})
    r = slow.predict(MSG)
    assert r.status_code == 500 and "rest-timeout of 1000 ms" in r.json()["status"]["info"]
    # At most one call (no retry); none when a loaded machine kept it from arriving in time.
    assert len(doubles["slow"].calls) <= 1


