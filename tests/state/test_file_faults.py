"""`--state file:PATH` on a disk that fills up or turns read-only under a running router (a
real 256 KiB tmpfs in a mount namespace: fs_jail.py): routes and feedback go on answering
200, GET /state and seldon_router_state_persistence_healthy say the snapshots fail, and once
the disk takes writes again the next snapshot holds every feedback acknowledged."""

from __future__ import annotations

import json
import sys

import pytest
import requests

import servers
from fs_jail import FsJail, unshare_works
from state_cases import QUIET, REPO, route, send_feedback, state
from support import scrape, wait_until

UNIT = "eg"
HEALTHY = "seldon_router_state_persistence_healthy"


@pytest.fixture
def jailed(tmp_path):
    """epsilon-greedy serving with --state file: on a tmpfs of its own, and the jail driving it."""
    reason = unshare_works()
    if reason:
        pytest.skip(reason)
    disk = tmp_path / "disk"
    disk.mkdir()
    rp = _Addresses()
    cmd = [sys.executable, "-m", "seldon_routers.cli", "serve", "epsilon-greedy", "--unit-id", UNIT,
           "--param", "n_branches=3", "--param", "seed=1", "--state", f"file:{disk}/s.json",
           "--snapshot-interval", "0.2", *QUIET, "--host", "127.0.0.1", "--http-port", str(rp.http_port),
           "--grpc-port", str(rp.grpc_port), "--metrics-port", str(rp.metrics_port)]
    log = tmp_path / "router.log"
    jail = FsJail(disk, log, cmd, cwd=str(REPO))
    try:
        servers.wait_http(rp.url + "/ready", jail.proc, output=lambda: log.read_text(errors="replace"))
        yield rp, jail
    finally:
        jail.close()


class _Addresses(servers.Addresses):
    def __init__(self):
        self.http_port, self.grpc_port, self.metrics_port = (servers.free_port() for _ in range(3))


def feed(rp, n: int) -> int:
    """n routes and n feedbacks, each answered 200; returns n."""
    for _ in range(n):
        reply = route(rp)
        assert reply.status_code == 200, reply.text
        arm = reply.json()["meta"]["routing"][UNIT]
        r = send_feedback(rp, UNIT, arm, 1.0)
        assert r.status_code == 200, r.text
    return n


def store(rp) -> dict:
    return state(rp)["store"]


def on_disk(jail) -> dict:
    text = jail.do("read s.json")["text"]
    return json.loads(text) if text else {}


def until_persisted(rp, jail, acknowledged: int) -> None:
    """Healthy again, on /state and the gauge, and the file holds every feedback acknowledged."""
    wait_until(lambda: store(rp)["healthy"], timeout=15, what="persistence healthy again")
    s = store(rp)
    assert s["failures"] == 0 and s["last_error"] is None, s
    assert scrape(rp).value(HEALTHY) == 1
    assert sum(state(rp)["state"]["pulls"]) == acknowledged
    wait_until(lambda: sum(on_disk(jail).get("pulls", [])) == acknowledged, timeout=15,
               what=f"the snapshot holding {acknowledged} feedbacks")


def until_failing(rp, says: str) -> tuple:
    """Feeds (each call still answering 200) until /state says the snapshots fail, naming why;
    (the store's description then, feedbacks fed)."""
    fed = []

    def failing():
        fed.append(feed(rp, 1))
        s = store(rp)
        return not s["healthy"] and s
    s = wait_until(failing, timeout=15, interval=0.1, what="persistence reported not healthy")
    assert s["failures"] >= 1 and says in s["last_error"] and "s.json" in s["last_error"], s
    assert scrape(rp).value(HEALTHY) == 0
    return s, len(fed)


def test_a_full_or_read_only_disk_keeps_serving_and_says_so_until_space_returns(jailed):
    rp, jail = jailed
    acknowledged = feed(rp, 5)
    until_persisted(rp, jail, acknowledged)

    assert jail.do("fill")["written"] > 0
    failing, fed = until_failing(rp, "No space left")
    acknowledged += fed + feed(rp, 3)
    wait_until(lambda: store(rp)["failures"] > failing["failures"], timeout=15,
               what="each snapshot interval trying again, and counted")  # while the disk is full
    assert requests.get(rp.url + "/ready", timeout=5).status_code == 200  # serving: not taken out of service
    jail.do("free")
    until_persisted(rp, jail, acknowledged)

    jail.do("ro")
    acknowledged += until_failing(rp, "Read-only")[1]
    jail.do("rw")
    until_persisted(rp, jail, acknowledged)

    assert jail.do("stop")["returncode"] == 0
    assert sum(on_disk(jail)["pulls"]) == acknowledged  # and the shutdown snapshot


def test_a_disk_full_at_shutdown_is_reported_not_hidden(jailed):
    """The last snapshot cannot be written: the router says so (the feedback since the last good
    snapshot is lost), and the file on disk is the last good one, whole."""
    rp, jail = jailed
    acknowledged = feed(rp, 4)
    until_persisted(rp, jail, acknowledged)
    jail.do("fill")
    until_failing(rp, "No space left")  # what it feeds is lost with the process: said at exit
    stopped = jail.do("stop")["returncode"]
    assert sum(on_disk(jail)["pulls"]) == acknowledged  # the last good snapshot, not a torn one
    log = jail.log.read_text(errors="replace")
    assert stopped == 2 and "cannot write the snapshot" in log and "s.json" in log, (stopped, log[-2000:])
