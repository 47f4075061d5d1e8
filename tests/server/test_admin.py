"""Admin actions (server/admin.py) on real `seldon-router serve` processes: off by default,
on with a bearer token from a file or the environment, every action and every refusal, and
the token never in the process's output."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import requests

from seldon_routers.server.admin import TOKEN_ENV
from server_cases import REPO, serve

TOKEN = "a3f9c2e81b7d4605a3f9c2e81b7d4605"
OTHER = "0123456789abcdef0123456789abcdef"
FEEDBACK = {"request": {"data": {"ndarray": [[1.0]]}}, "response": {"meta": {"routing": {"0": 1}}}, "reward": 1}


@pytest.fixture
def token_file(tmp_path):
    path = tmp_path / "admin-token"
    path.write_text(TOKEN + "\n")  # a trailing newline, as `echo > file` and most secrets have
    return path


def bearer(token: str = TOKEN) -> dict:
    return {"Authorization": f"Bearer {token}"}


def post(rp, action: str, body=None, token: str | None = TOKEN) -> requests.Response:
    headers = bearer(token) if token else {}
    return requests.post(f"{rp.url}/admin/{action}", json=body, headers=headers, timeout=10)


def state(rp, token: str | None = None) -> dict:
    r = requests.get(rp.url + "/state", headers=bearer(token) if token else {}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["state"]


def routes(rp, n: int = 40) -> set:
    seen = set()
    for _ in range(n):
        r = requests.post(rp.url + "/route", json={"data": {"ndarray": [[1.0]]}}, timeout=10)
        assert r.status_code == 200, r.text
        seen.update(r.json()["meta"]["routing"].values())
    return seen


@pytest.fixture
def stop_all():
    started = []
    yield started
    for rp in started:
        rp.stop()


def started(stop_all, *args, env=None):
    rp = serve(*args, "--unit-id", "0", env=env)
    stop_all.append(rp)
    return rp


def test_admin_is_off_by_default_and_state_open(stop_all):
    rp = started(stop_all, "epsilon-greedy", "--param", "n_branches=2")
    for action in ("reset-state", "weights", "reload-config", ""):
        r = post(rp, action)
        assert r.status_code == 404 and "admin actions are off" in r.json()["status"]["info"], r.text
    state(rp)


def test_a_call_without_the_right_token_is_401_and_changes_nothing(stop_all, token_file):
    rp = started(stop_all, "epsilon-greedy", "--param", "n_branches=2", "--param", "seed=1",
                 "--admin-token-file", str(token_file))
    assert requests.post(rp.url + "/send-feedback", json=FEEDBACK, timeout=10).status_code == 200
    before = state(rp)
    for headers in ({}, bearer(OTHER), bearer(TOKEN[:-1]), bearer(TOKEN + "x"), {"Authorization": TOKEN},
                    {"Authorization": f"Basic {TOKEN}"}):
        r = requests.post(rp.url + "/admin/reset-state", headers=headers, timeout=10)
        assert r.status_code == 401, (headers, r.text)
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert r.json()["status"]["reason"] == "UNAUTHORIZED"
    assert state(rp) == before
    assert TOKEN not in rp.output()


def test_reset_state_returns_the_router_to_its_start_and_the_snapshot_too(stop_all, token_file, tmp_path):
    snapshot = tmp_path / "state.json"
    rp = started(stop_all, "epsilon-greedy", "--param", "n_branches=2", "--param", "seed=1",
                 "--state", f"file:{snapshot}", "--admin-token-file", str(token_file))
    fresh = state(rp)
    for _ in range(3):
        assert requests.post(rp.url + "/send-feedback", json=FEEDBACK, timeout=10).status_code == 200
    assert state(rp) != fresh
    r = post(rp, "reset-state")
    assert r.status_code == 200, r.text
    assert r.json()["changed"] is True and r.json()["state"] == fresh == state(rp)
    assert json.loads(snapshot.read_text()) == fresh  # persisted before the answer


def test_weights_change_the_split_and_bad_weights_change_nothing(stop_all, token_file):
    rp = started(stop_all, "ab-test", "--param", "branch_names=a:b", "--param", "seed=3",
                 "--admin-token-file", str(token_file))
    assert routes(rp) == {0, 1}
    r = post(rp, "weights", {"weights": {"a": 0, "b": 1}})
    assert r.status_code == 200 and r.json()["state"]["weights"] == {"a": 0.0, "b": 1.0}, r.text
    assert routes(rp) == {1}
    for bad in ({"weights": [1]}, {"weights": [-1, 2]}, {"weights": {"a": 1, "c": 1}}, {"weights": "x:y"}, {},
                {"weights": [0, 0]}):
        r = post(rp, "weights", bad)
        assert r.status_code == 400 and "weights" in r.json()["status"]["info"], (bad, r.text)
    assert state(rp)["weights"] == {"a": 0.0, "b": 1.0} and routes(rp) == {1}
    r = requests.post(rp.url + "/admin/weights", data=b"{not json", headers=bearer(), timeout=10)
    assert r.status_code == 400


def test_canary_promote_and_rollback(stop_all, token_file):
    rp = started(stop_all, "canary", "--param", "branch_names=stable:candidate", "--param", "seed=2",
                 "--param", "min_reward=0.5",
                 "--admin-token-file", str(token_file))
    routes(rp, 5)
    assert state(rp)["phase"] == "Progressing"
    r = post(rp, "promote", {"reason": "checked by hand"})
    assert r.status_code == 200 and r.json()["changed"] is True, r.text
    assert r.json()["state"]["phase"] == "Succeeded" and r.json()["state"]["history"][-1]["reason"] == "checked by hand"
    assert routes(rp) == {1}
    assert post(rp, "promote").json()["changed"] is False  # already there: said, not repeated
    r = post(rp, "rollback")
    assert r.status_code == 200 and r.json()["state"]["phase"] == "Failed" and r.json()["state"]["weight"] == 0
    assert routes(rp) == {0}


def test_an_action_the_router_lacks_is_409_and_get_admin_lists_what_it_has(stop_all, token_file):
    rp = started(stop_all, "epsilon-greedy", "--param", "n_branches=2", "--admin-token-file", str(token_file))
    r = post(rp, "promote")
    assert r.status_code == 409 and r.json()["status"]["reason"] == "CONFLICT", r.text
    r = requests.get(rp.url + "/admin", headers=bearer(), timeout=10)
    assert r.status_code == 200 and r.json()["actions"] == ["reset-state", "reload-config"], r.text
    assert requests.get(rp.url + "/admin", timeout=10).status_code == 401
    assert post(rp, "no-such-action").status_code == 404
    assert requests.get(rp.url + "/admin/reset-state", headers=bearer(), timeout=10).status_code == 405


RULES = {"children": ["a", "b"], "fallback": "a",
         "rules": [{"name": "to-b", "match": {"headers": {"x-pool": {"exact": "b"}}}, "to": "b"}]}


def route_with(rp, headers) -> int:
    r = requests.post(rp.url + "/route", json={"strData": "x"}, headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["meta"]["routing"]["0"]


def test_reload_config_rereads_the_rules_file_and_a_broken_one_changes_nothing(stop_all, token_file, tmp_path):
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps(RULES))
    rp = started(stop_all, "rules", "--param", f"config_file={rules}", "--admin-token-file", str(token_file))
    assert route_with(rp, {"x-pool": "b"}) == 1 and route_with(rp, {"x-pool": "c"}) == 0
    rules.write_text(json.dumps({**RULES, "rules": [{**RULES["rules"][0], "match": {"headers": {"x-pool": {
        "exact": "c"}}}}]}))
    r = post(rp, "reload-config")
    assert r.status_code == 200, r.text
    assert route_with(rp, {"x-pool": "c"}) == 1 and route_with(rp, {"x-pool": "b"}) == 0
    rules.write_text(json.dumps({**RULES, "fallback": "nowhere"}))
    r = post(rp, "reload-config")
    assert r.status_code == 400 and "fallback" in r.json()["status"]["info"], r.text
    assert route_with(rp, {"x-pool": "c"}) == 1  # the loaded rules still serve


def test_reload_config_keeps_a_bandits_learned_state(stop_all, token_file):
    rp = started(stop_all, "epsilon-greedy", "--param", "n_branches=2", "--admin-token-file", str(token_file))
    assert requests.post(rp.url + "/send-feedback", json=FEEDBACK, timeout=10).status_code == 200
    learned = state(rp)
    assert post(rp, "reload-config").status_code == 200
    assert state(rp) == learned


def test_a_rotated_token_file_applies_without_a_restart(stop_all, token_file):
    rp = started(stop_all, "epsilon-greedy", "--param", "n_branches=2", "--admin-token-file", str(token_file))
    assert requests.get(rp.url + "/admin", headers=bearer(), timeout=10).status_code == 200
    token_file.write_text(OTHER)
    assert requests.get(rp.url + "/admin", headers=bearer(), timeout=10).status_code == 401
    assert requests.get(rp.url + "/admin", headers=bearer(OTHER), timeout=10).status_code == 200
    token_file.unlink()  # a secret gone: nobody, rather than the last token seen
    assert requests.get(rp.url + "/admin", headers=bearer(OTHER), timeout=10).status_code == 401
    assert OTHER not in rp.output() and TOKEN not in rp.output()


def test_restrict_state_puts_state_behind_the_token_from_the_environment(stop_all):
    rp = started(stop_all, "epsilon-greedy", "--param", "n_branches=2", "--restrict-state", env={
        **_env(), TOKEN_ENV: TOKEN})
    r = requests.get(rp.url + "/state", timeout=10)
    assert r.status_code == 401 and TOKEN not in r.text
    state(rp, TOKEN)  # 200, with the token
    assert requests.get(rp.url + "/ready", timeout=10).status_code == 200  # probes stay open


def _env() -> dict:
    from server_cases import router_env

    return router_env()


def run_cli(*args, env=None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", "seldon_routers.cli", "serve", *args], capture_output=True,
                          text=True, timeout=60, cwd=REPO, env={**os.environ, **(env or {})})


@pytest.mark.parametrize("args, env, message", [
    (["--admin-token-file", "/nonexistent/token"], {}, "--admin-token-file: cannot read /nonexistent/token"),
    ([], {TOKEN_ENV: "short"}, f"${TOKEN_ENV}: the admin token is 5 characters"),
    (["--restrict-state"], {}, "--restrict-state: needs the admin token"),
    (["--workers", "2", "--state", "redis://127.0.0.1:1/0"], {TOKEN_ENV: TOKEN}, "--workers 2 a call reaches one worker"),
])
def test_bad_admin_settings_stop_start_up_with_exit_2(args, env, message):
    out = run_cli("epsilon-greedy", *args, env=env)
    assert out.returncode == 2 and message in out.stderr, out.stderr
    assert "Traceback" not in out.stderr and TOKEN not in out.stderr
