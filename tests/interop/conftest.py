"""Fixtures for the interoperability tests against the real Seldon Core 1.18.2 peers.

The peers live in their own venv (scripts/seldon_env.sh): seldon-core pins numpy<2,
protobuf<4 and Flask<3, which the project's own environment cannot share. When that venv
cannot be built (no python3.11, no network) the tests skip on a user's machine, and fail
where SELDON_ROUTERS_REQUIRE_PEERS=1 (CI), so that a broken peer setup is never green.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from seldon_peers import REPO
from support import PEERS, unavailable

BUILD_TIMEOUT_S = 900  # the first build downloads seldon-core and its ~30 pinned deps


def peers_unavailable(reason: str):
    unavailable(reason, PEERS)


@pytest.fixture(scope="session")
def seldon_venv() -> Path:
    """The seldon-core 1.18.2 venv, with this project's core package freshly installed."""
    py = os.environ.get("SELDON_ENV_PYTHON", "python3.11")
    if shutil.which(py) is None:
        peers_unavailable(f"{py} not found: cannot build the seldon-core 1.18.2 venv "
                          "(set SELDON_ENV_PYTHON to a Python 3.11 interpreter)")
    try:
        proc = subprocess.run(["bash", str(REPO / "scripts" / "seldon_env.sh")],
                              capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        peers_unavailable(f"scripts/seldon_env.sh took over {BUILD_TIMEOUT_S}s")
    if proc.returncode != 0:
        # pip's per-index warnings drown the real error; keep the lines that are not those.
        err = [ln for ln in proc.stderr.splitlines() if not ln.startswith("WARNING: Location")]
        peers_unavailable("scripts/seldon_env.sh failed (no network?): " + "\n".join(err[-15:]))
    venv = Path(proc.stdout.strip().splitlines()[-1])
    assert (venv / "bin" / "python").exists(), f"seldon_env.sh printed {venv!r}, not a venv"
    return venv


@pytest.fixture(scope="session")
def seldon_python(seldon_venv) -> Path:
    return seldon_venv / "bin" / "python"
