"""session-affinity through the router's public entry points."""

import os
import subprocess
import sys

import numpy as np
from scipy import stats

from seldon_routers.registry import resolve
from seldon_routers.request import Feedback, Headers, Request

BODY = {"model": "m", "messages": [{"role": "user", "content": "hello"}]}


def router(n=8, **params):
    return resolve("session-affinity")(n_branches=n, **{"seed": 1, **params})


def request(session=None, header="x-session-id"):
    return Request(BODY, kind="jsonData", headers=Headers([(header, session)] if session else []))


def pod_of(r, session, header="x-session-id"):
    req = request(session, header)
    decision = r.decide(req)
    r.learn(Feedback(req, {}, 0.0, None))  # completed: load never decides here
    return decision.child, decision.tags


class Down:
    """The router's signals with some pods down (the signals helper's PodSignals excludes
    them through pod_down; this keeps the test to the strategy)."""

    def __init__(self, signals):
        self.inner, self.down_pods = signals, set()

    def healthy(self, pods):
        return [p for p in pods if p not in self.down_pods]

    def down(self, pod):
        self.down_pods.add(pod)
        self.inner.down(pod)

    def up(self, pod):
        self.down_pods.discard(pod)
        self.inner.up(pod)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_a_session_sticks_to_its_pod():
    r = router()
    for session in ["alice", "bob", "carol"]:
        pod, tags = pod_of(r, session)
        assert tags["affinity"] == "session"
        req = request(session)
        for _ in range(5):  # even while its earlier requests are in flight there
            assert r.decide(req).child == pod


def test_sessions_spread_about_evenly():
    r = router(n=8)
    counts = np.bincount([pod_of(r, f"session-{i}")[0] for i in range(4000)], minlength=8)
    assert stats.chisquare(counts).pvalue > 0.001


def test_a_pod_going_down_moves_only_its_sessions():
    r = router(n=8)
    r.signals = Down(r.signals)
    sessions = [f"s{i}" for i in range(800)]
    before = {s: pod_of(r, s)[0] for s in sessions}
    r.pod_down(3)
    after = {s: pod_of(r, s)[0] for s in sessions}
    moved = {s for s in sessions if before[s] != after[s]}
    assert moved == {s for s in sessions if before[s] == 3} and moved
    assert 3 not in after.values()
    # the moved sessions spread over the other pods, not onto one
    assert len({after[s] for s in moved}) >= 5
    r.pod_up(3)
    assert {s: pod_of(r, s)[0] for s in sessions} == before


def test_two_router_instances_agree_and_so_does_another_process():
    a, b = router(n=16), router(n=16, seed=99)
    sessions = [f"user-{i}" for i in range(200)]
    mine = [pod_of(a, s)[0] for s in sessions]
    assert mine == [pod_of(b, s)[0] for s in sessions]
    # Python's own hash() is salted per process: a second process must agree all the same
    code = ("from seldon_routers.registry import resolve; from seldon_routers.request import Request, Headers;"
            "r = resolve('session-affinity')(n_branches=16);"
            f"print([r.decide(Request({BODY!r}, kind='jsonData', headers=Headers([('x-session-id', s)]))).child"
            f" for s in {sessions!r}])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONHASHSEED": "12345"})
    assert out.stdout.strip() == str(mine)


def test_pods_are_keyed_by_name_not_position():
    a = resolve("session-affinity")(branch_names=["p0", "p1", "p2", "p3"])
    b = resolve("session-affinity")(branch_names=["p3", "p2", "p1", "p0"])
    for s in [f"k{i}" for i in range(100)]:
        assert a.branch_names[pod_of(a, s)[0]] == b.branch_names[pod_of(b, s)[0]]


def test_without_a_session_key_it_is_least_request_and_says_so():
    r = router(n=3)
    reqs = [request() for _ in range(3)]
    pods = [r.decide(req) for req in reqs]
    assert sorted(d.child for d in pods) == [0, 1, 2]  # each to the least loaded
    assert all(d.tags["affinity"] == "no-session: least-request" for d in pods)


def test_the_session_header_is_configurable():
    r = router(session_header="X-Conversation")
    pod, tags = pod_of(r, "alice", header="x-conversation")
    assert tags["affinity"] == "session"
    assert pod_of(r, "alice", header="x-session-id")[1]["affinity"] == "no-session: least-request"
    assert all(pod_of(r, "alice", header="x-conversation")[0] == pod for _ in range(3))


def test_in_the_llm_mix():
    r = resolve("llm")(n_branches=8, seed=1)
    header = {"routing-strategy": "session-affinity"}
    reqs = [Request(BODY, kind="jsonData", headers=Headers([("x-session-id", "alice"), *header.items()]))
            for _ in range(4)]
    assert len({r.decide(req).child for req in reqs}) == 1
