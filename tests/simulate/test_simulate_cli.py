"""`seldon-router simulate` end to end, in a subprocess."""

import csv
import os
import subprocess
import sys

import pytest

from seldon_routers.simulate import checkpoints

HERE = os.path.dirname(os.path.abspath(__file__))


def sim(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "seldon_routers.cli", "simulate", *args], capture_output=True,
                          text=True, cwd=HERE, timeout=timeout)


def test_compare_writes_csv_and_png_and_prints_the_table(tmp_path):
    out = sim("--compare", "ab-test,greedy=sim_policies.Greedy", "--arms", "10", "--best", "0.5", "--gap", "0.1",
              "--horizon", "2000", "--repetitions", "3", "--out", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert "C = 44.70" in out.stdout and "ab-test" in out.stdout and "greedy" in out.stdout
    assert [line.split()[0] for line in out.stdout.splitlines() if line[:8].strip().isdigit()] == \
        ["10", "100", "1000", "2000"]
    assert out.stderr == ""  # no progress bar when stderr is not a terminal
    with open(tmp_path / "regret.csv") as f:
        rows = list(csv.DictReader(f))
    n = len(checkpoints(2000, dense=True))
    assert len(rows) == 2 * n
    assert {r["policy"] for r in rows} == {"ab-test", "greedy"}
    last = [r for r in rows if r["t"] == "2000"]
    assert all(r["repetitions"] == "3" and float(r["lai_robbins_bound"]) == pytest.approx(339.74, abs=0.01)
               for r in last)
    assert 150 < float(next(r for r in last if r["policy"] == "ab-test")["mean_regret"]) < 210
    png = (tmp_path / "regret.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_no_plot_and_other_environments(tmp_path):
    out = sim("--policy", "sim_policies.Greedy", "--env", "drift", "--means", "0.6,0.4", "--drifted-means",
              "0.3,0.7", "--horizon", "500", "--repetitions", "2", "--out", str(tmp_path), "--no-plot")
    assert out.returncode == 0, out.stderr
    assert os.listdir(tmp_path) == ["regret.csv"] and "C ln T" not in out.stdout
    out = sim("--compare", "ab-test", "--env", "gaussian", "--means", "1,0,-1", "--sigma", "2",
              "--horizon", "300", "--repetitions", "2")
    assert out.returncode == 0 and "C = 12.00" in out.stdout
    out = sim("--compare", "ab-test,sim_policies.Fixed", "--env", "contextual", "--arms", "3", "--dim", "2",
              "--horizon", "300", "--repetitions", "2", "--policy-param", "sim_policies.Fixed:arm=1")
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize("args, message", [
    (["--policy", "ab-test", "--means", "0.5,1.2"], "[0, 1]"),
    (["--policy", "no-such-policy"], "no-such-policy"),
    (["--policy", "ab-test", "--param", "epsilon=0.1"], "epsilon"),
    (["--policy", "ab-test", "--param", "seed=1"], "set by the simulator"),
    (["--policy", "ab-test", "--policy-param", "other:weights=1:2"], "other"),
    (["--policy", "ab-test", "--env", "drift", "--means", "0.5,0.4", "--drifted-means", "0.4,0.5",
      "--drift-at", "100", "--horizon", "100"], "--drift-at"),
    (["--policy", "ab-test", "--horizon", "0"], "--horizon"),
    (["--policy", "ab-test", "--batch", "0"], "--batch"),
    (["--policy", "ab-test", "--means", "0.5,x"], "--means"),
    (["--policy", "ab-test", "--best", "0.05"], "--best/--gap"),
    (["--compare", "a=ab-test,a=ab-test"], "given twice"),
    ([], "--policy"),
    (["--policy", "ab-test", "--env", "nope"], "--env"),
])
def test_bad_options_exit_2_naming_the_option(args, message):
    out = sim(*args)
    assert out.returncode == 2, out.stdout + out.stderr
    assert message in out.stderr and "Traceback" not in out.stderr


def test_a_policy_routing_outside_the_arms_exits_1():
    out = sim("--policy", "sim_policies.OutOfRange", "--horizon", "10", "--repetitions", "1")
    assert out.returncode == 1 and "routed to -1" in out.stderr and "Traceback" not in out.stderr
