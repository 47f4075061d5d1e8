"""Every example's README session, run as written against `seldon-router graph run` (so a
README cannot rot): the block after `<!-- graph-session -->` names the deployment on its
`seldon-router graph run` line; each other command runs in bash with localhost:8000 pointed
at the runner, must succeed (curl -f: a 4xx or 5xx fails it), and must print what each
`# expect:` line after it says."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from graph_runner import EXAMPLES, ROOT
from seldon_routers.graph import deployment as sdep

MARK = "<!-- graph-session -->"
READMES = sorted(p for p in EXAMPLES.glob("*/README.md") if MARK in p.read_text())
# One example per built-in router (`seldon-router list`) runs through the runner.
BUILTINS = {"ab-test", "epsilon-greedy", "thompson-sampling", "ucb1", "lin-ucb", "rules", "time-of-day", "canary",
            "classifier"}


def session(readme) -> tuple[str, list]:
    """(the deployment's path, [(command, [expected substrings])])."""
    text = readme.read_text()
    block = re.search(r"```bash\n(.*?)```", text[text.index(MARK):], re.S).group(1)
    lines = block.replace("\\\n", " ").splitlines()
    path, steps = None, []
    for line in lines:
        line = line.strip()
        if line.startswith("# expect:"):
            steps[-1][1].append(line[len("# expect:"):].strip())
        elif line.startswith("seldon-router graph run "):
            path = line.split()[3]
        elif line and not line.startswith("#"):
            steps.append((line, []))
    assert path and steps, f"{readme}: a session names its deployment and runs commands"
    return path, steps


def routers(path) -> set:
    p = sdep.load(str(ROOT / path))
    return {u.env.get("ROUTER") or u.env.get("MODEL_NAME") or "ab-test" for u in p.units() if u.type == "ROUTER"}


def test_every_builtin_router_has_an_example_session():
    covered = set().union(*(routers(session(r)[0]) for r in READMES))
    assert BUILTINS <= covered, f"no README session for {sorted(BUILTINS - covered)}"


@pytest.mark.parametrize("readme", READMES, ids=lambda p: p.parent.name)
def test_the_readme_session_runs(readme, runners):
    path, steps = session(readme)
    runner = runners(ROOT / path)
    try:
        _run(runner, steps)
    finally:
        runner.stop()  # one graph at a time: the machine is shared


def _run(runner, steps) -> None:
    for command, expected in steps:
        command = command.replace("localhost:8000", f"127.0.0.1:{runner.port}")
        done = subprocess.run(["bash", "-c", command], cwd=ROOT, capture_output=True, text=True, timeout=60,
                              env={"PATH": f"{sys.exec_prefix}/bin:/usr/bin:/bin"})
        assert done.returncode == 0, (command, done.stdout, done.stderr, runner.output())
        for want in expected:
            assert want in done.stdout, (command, want, done.stdout)
