"""bench/soak.py, so the bench cannot rot: a short real soak (a served epsilon-greedy, REST and gRPC,
route and feedback at a low fixed rate) whose calls all succeed and which the server's own counters
confirm, and the bench's error accounting on real failures (a closed port, gRPC errors that HTTP
calls a success)."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import soak
from servers import free_port, running_router

pytestmark = pytest.mark.skipif(shutil.which("h2load") is None, reason="h2load missing: bash bench/setup.sh")
SCRIPT = Path(soak.__file__)


def test_a_short_soak_answers_every_call_and_the_server_counts_them(tmp_path):
    # 6 segments of 2 s; warm-up and each compared window: a quarter of the run (3 s, 2 segments)
    cmd = [sys.executable, str(SCRIPT), "single", "--minutes", "0.2", "--segment", "2", "--peak-seconds", "2",
           "--peak-warmup", "1", "--rate", "rest=100", "--rate", "grpc=40", "--no-netns", "--out", str(tmp_path)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    # 1: a timing check failed (the machine is shared); anything else is the bench breaking
    assert run.returncode in (0, 1), run.stdout + run.stderr
    summary = json.loads((tmp_path / "soak-single.json").read_text())
    verdicts = {c["check"]: c["pass"] for c in summary["checks"]}
    assert verdicts["0 errors (non-2xx, socket errors, gRPC replies without a message)"] is True, summary["checks"]
    assert verdicts["the server counted every route answered"] is True, summary["checks"]
    assert verdicts["the server counted every feedback answered"] is True, summary["checks"]
    assert verdicts["the server counted no errors"] is True, summary["checks"]
    for timed in ("RSS growth after warm-up < 5%", "rest p99 stable within 20%", "grpc p99 stable within 20%",
                  "rest achieved rate within 3% of the target", "grpc achieved rate within 3% of the target"):
        assert verdicts[timed] in (True, False)
        assert ("PASS " if verdicts[timed] else "FAIL ") + timed in run.stdout

    assert summary["targets"] == {"rest": 100.0, "grpc": 40.0}
    assert summary["rates"] == pytest.approx({"rest route": 80, "rest feedback": 20, "grpc route": 32,
                                              "grpc feedback": 8})
    assert len(summary["segments"]) == 6
    assert summary["windows"] == {"first": [2, 3], "last": [4, 5]}
    assert all(t["ok"] > 0 for t in summary["totals"].values()), summary["totals"]
    assert all(p > 0 for w in summary["window_p99_ms"].values() for p in w.values())
    assert summary["peak"]["transports"]["rest"]["rps"] > 0 and summary["peak"]["transports"]["grpc"]["rps"] > 0
    assert len(summary["rss"]) >= 3 and all(s["server"] > 10 * 1024 for s in summary["rss"])  # kB: a real process
    with open(tmp_path / "soak-single.csv") as f:
        rows = list(csv.DictReader(f))
    assert [r["transport"] for r in rows] == ["rest", "grpc"] * 6
    assert (tmp_path / "soak-single.png").stat().st_size > 10_000


def test_a_closed_port_counts_as_errors(tmp_path):
    body = tmp_path / "route.json"
    body.write_text('{"data":{"ndarray":[[1.0,2.0]]}}')
    gone = soak.Stream("rest route", "rest", "route", f"http://127.0.0.1:{free_port()}/route", body,
                       ("content-type: application/json",), 1.0, 2)
    res = soak.run_segment([gone], 1, tmp_path, {"rest route": 20})["rest route"]
    assert res["ok"] == 0
    assert res["errors"] >= 1 and "no request answered" in res["problems"]


def test_grpc_errors_answered_as_http_200_count_as_errors(tmp_path):
    with running_router("epsilon-greedy", "--param", "n_branches=3") as rp:
        streams = soak.router_streams(tmp_path, {"rest": rp.http_port, "grpc": rp.grpc_port}, 4)
        good = next(s for s in streams if s.name == "grpc route")
        garbage = tmp_path / "garbage.bin"
        garbage.write_bytes(b"\x00\x00\x00\x00\x03\xff\xff\xff")  # a frame no SeldonMessage parses from
        bad = soak.Stream("grpc garbage", "grpc", "route", good.url, garbage, good.headers, 1.0, 2, good.reply_bytes)
        res = soak.run_segment([good, bad], 1, tmp_path, {"grpc route": 20, "grpc garbage": 20})
    assert res["grpc route"]["errors"] == 0 and res["grpc route"]["ok"] > 0, res["grpc route"]
    broken = res["grpc garbage"]
    assert broken["non_2xx"] == 0 and broken["ok"] > 0  # what h2load alone reports: all fine
    assert broken["missing_message"] == broken["ok"] and broken["errors"] >= broken["ok"], broken
