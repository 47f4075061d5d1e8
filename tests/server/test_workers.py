"""`seldon-router serve --workers N`: a supervisor and N worker processes on shared ports,
one learned state in Redis, one metrics port. Real processes, a real redis-server of the
test's own on a free port (never the shared one on 6379)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import uuid

import grpc
import pytest
import requests

from seldon_routers.proto import prediction_pb2 as pb
from server_cases import REPO, grpc_call, router_env
from servers import RouterProcess, children, free_port, start_router, state_pid, wait_http, workers_of
from support import REDIS, on_path, require, scrape, wait_until

UNIT = "ts"
TS_ARGS = ("thompson-sampling", "--param", "n_branches=3", "--unit-id", UNIT)
WAIT = 30  # seconds: a safety net for loops that wait on a state, never a performance bound


def cli(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "seldon_routers.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **router_env()}, cwd=str(REPO), timeout=timeout)


# --- processes -----------------------------------------------------------------------------

def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


# --- redis ---------------------------------------------------------------------------------

def _pong(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture(scope="module")
def redis_url():
    require(on_path("redis-server"), REDIS, "scripts/install_redis.sh installs it")
    for attempt in range(3):  # a port picked free may be taken before redis binds it
        port = free_port()
        proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                 "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: proc.poll() is not None or _pong(port), WAIT, what=f"redis-server on port {port}")
        if proc.poll() is None:  # up; else it exited (the port was taken): try another
            break
    else:
        pytest.fail("could not start redis-server")
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


def start_pool(redis_url: str, *args: str, workers: int = 2) -> RouterProcess:
    """A supervisor with `workers` workers on free ports, each worker's state in its own
    namespace; returns once /ready answers (from at least one worker)."""
    namespace = f"workers-{uuid.uuid4().hex[:8]}"
    for attempt in range(3):  # a port picked free can be taken before the supervisor checks it
        try:
            return start_router(*TS_ARGS, "--workers", str(workers), "--state", redis_url,
                                "--state-namespace", namespace, "--sync-interval", "0.05", *args,
                                env=router_env(), cwd=str(REPO))
        except (RuntimeError, TimeoutError):
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def until_every_worker(rp: RouterProcess, what: str, check) -> None:
    """Polls /state over fresh connections until every worker's state has passed check."""
    pids, passed = children(rp.proc.pid), set()

    def every_worker():
        pid, state = state_pid(rp)
        if check(state):
            passed.add(pid)
        return pids <= passed

    wait_until(every_worker, what=f"each worker showing {what}")


def feedback(arm: int, puid: str, reward: float = 1.0) -> dict:
    return {"request": {"data": {"ndarray": [[1.0]]}, "meta": {"puid": puid}},
            "response": {"meta": {"puid": puid, "routing": {UNIT: arm}}}, "reward": reward}


def stop_and_check_no_orphans(rp: RouterProcess) -> int:
    pids = children(rp.proc.pid)
    assert pids
    code = rp.stop(signal.SIGTERM, timeout=WAIT)
    left = [pid for pid in pids if alive(pid)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert not left, f"workers left running after the supervisor exited: {left}"
    return code


# --- refused at start-up (no redis-server needed) ------------------------------------------

def test_memory_state_refuses_several_workers():
    out = cli("serve", *TS_ARGS, "--workers", "2")
    assert out.returncode == 2, out.stderr
    assert "--workers" in out.stderr and "--state memory" in out.stderr and "redis://" in out.stderr
    assert "its own separate state" in out.stderr and "Traceback" not in out.stderr


def test_file_state_refuses_several_workers(tmp_path):
    out = cli("serve", *TS_ARGS, "--workers", "2", "--state", f"file:{tmp_path / 'state.json'}")
    assert out.returncode == 2, out.stderr
    assert "--workers" in out.stderr and "overwrite each other's snapshots" in out.stderr and "redis://" in out.stderr
    assert not (tmp_path / "state.json").exists()


def test_workers_below_one_are_refused():
    for value in ("0", "-1"):
        out = cli("serve", *TS_ARGS, "--workers", value)
        assert out.returncode == 2 and "--workers" in out.stderr, out.stderr


def test_a_port_in_use_stops_the_supervisor_naming_it():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = cli("serve", *TS_ARGS, "--workers", "2", "--state", "redis://127.0.0.1:1/0", "--host", "127.0.0.1",
                  "--http-port", str(port), "--grpc-port", str(free_port()), "--metrics-port", str(free_port()))
    assert out.returncode == 2 and "--http-port" in out.stderr and "Traceback" not in out.stderr, out.stderr


def test_one_process_names_a_rest_port_in_use_too():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = cli("serve", *TS_ARGS, "--host", "127.0.0.1", "--http-port", str(port), "--grpc-port", str(free_port()),
                  "--metrics-port", str(free_port()))
    assert out.returncode == 2 and "--http-port" in out.stderr and "Traceback" not in out.stderr, out.stderr


def test_a_worker_configuration_error_stops_the_supervisor_with_status_2():
    # ab-test keeps no additive state: each worker's Redis store refuses it before connecting.
    out = cli("serve", "ab-test", "--param", "n_branches=2", "--workers", "2", "--state", "redis://127.0.0.1:1/0",
              "--host", "127.0.0.1", "--http-port", str(free_port()), "--grpc-port", str(free_port()),
              "--metrics-port", str(free_port()))
    assert out.returncode == 2, out.stderr
    assert "no additive state" in out.stderr and "configuration error" in out.stderr


# --- a pool of two workers over one Redis state --------------------------------------------

@pytest.fixture(scope="module")
def pool(redis_url):
    rp = start_pool(redis_url)
    try:
        workers_of(rp)
        yield rp
    finally:
        rp.stop()


def test_rest_connections_reach_both_workers(pool):
    assert len(workers_of(pool)) == 2
    assert requests.get(pool.url + "/ready", timeout=5).status_code == 200


def test_feedback_over_many_connections_is_counted_once_in_every_worker(pool):
    before = state_pid(pool)[1]["pulls"]
    sent = [0, 0, 0]
    for i in range(12):
        arm = i % 3
        puid = f"fb-{uuid.uuid4().hex}"
        r = requests.post(pool.url + "/send-feedback", json=feedback(arm, puid), timeout=10)
        assert r.status_code == 200, r.text
        sent[arm] += 1
        if i % 4 == 0:  # a retry over another connection (maybe another worker): applied once
            assert requests.post(pool.url + "/send-feedback", json=feedback(arm, puid), timeout=10).status_code == 200
    expected = [b + n for b, n in zip(before, sent)]
    until_every_worker(pool, f"pulls {expected}", lambda state: state["pulls"] == expected)


def test_grpc_is_served_by_the_workers_over_the_same_state(pool):
    before = state_pid(pool)[1]["pulls"]
    for _ in range(4):  # a new channel, a new connection
        with grpc.insecure_channel(pool.grpc_target) as channel:
            reply = grpc_call(channel, "/seldon.protos.Router/Route", pb.SeldonMessage(strData="x"))
            arm = reply.meta.routing[UNIT]
            assert 0 <= arm < 3
            msg = pb.Feedback(reward=1.0)
            msg.response.meta.routing[UNIT] = arm
            msg.response.meta.puid = f"g-{uuid.uuid4().hex}"
            grpc_call(channel, "/seldon.protos.Router/SendFeedback", msg)
    until_every_worker(pool, "the gRPC feedback in the pulls", lambda state: sum(state["pulls"]) == sum(before) + 4)


def test_the_metrics_port_sums_every_worker(pool):
    before = scrape(pool).total("seldon_router_routes_total")
    n = 40  # over fresh connections: both workers route some (all on one: a 2^-39 chance)
    for _ in range(n):
        r = requests.post(pool.url + "/route", json={"data": {"ndarray": [[1.0]]}}, timeout=10)
        assert r.status_code == 200
    assert scrape(pool).total("seldon_router_routes_total") == before + n
    assert requests.get(pool.url + "/metrics", timeout=5).status_code == 404  # workers serve no metrics


# --- lifecycle -----------------------------------------------------------------------------

def test_sigterm_stops_every_worker_and_exits_zero(redis_url):
    rp = start_pool(redis_url)
    try:
        workers_of(rp)
        assert requests.post(rp.url + "/route", json={"strData": "x"}, timeout=10).status_code == 200
        assert stop_and_check_no_orphans(rp) == 0
        output = rp.output()
        assert "[worker 0]" in output and "[worker 1]" in output, output
    finally:
        rp.stop()  # SIGTERM, then SIGKILL to the process group


def test_a_killed_worker_is_restarted_and_the_service_keeps_answering(redis_url):
    rp = start_pool(redis_url)
    try:
        first = workers_of(rp)
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        # Reaped by the supervisor: all its threads are gone, so are its listeners (a zombie
        # leader may still have threads holding them).
        wait_until(lambda: not os.path.exists(f"/proc/{victim}"), what="the killed worker reaped")
        # Its successor listens once ready: every new connection reaches a worker that answers.
        seen = set()

        def a_new_worker_answers():
            r = requests.post(rp.url + "/route", json={"strData": "x"}, timeout=10)
            assert r.status_code == 200, r.text
            seen.add(state_pid(rp)[0])
            return seen - first

        wait_until(a_new_worker_answers, what="the killed worker replaced")
        assert victim not in seen
        assert seen - first <= children(rp.proc.pid) and len(children(rp.proc.pid)) == 2
        wait_http(rp.url + "/ready", rp.proc, output=rp.output)
        assert stop_and_check_no_orphans(rp) == 0
        assert f"(pid {victim}) exited unexpectedly with signal SIGKILL: restarting it" in rp.output()
    finally:
        rp.stop()  # SIGTERM, then SIGKILL to the process group
