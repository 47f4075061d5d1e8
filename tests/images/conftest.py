"""The images under test, each built once per session (the layer cache makes a rebuild of
an unchanged tree take seconds), and containers removed however a test ends."""

from __future__ import annotations

import time

import pytest

from podman_engine import Podman, engine_env

BUILD_TIMES: dict = {}


@pytest.fixture(scope="session")
def podman():
    engine = Podman(engine_env())
    yield engine
    # A rebuild leaves the previous image of each tag dangling (~300 MB a session): drop them.
    engine("image", "prune", "-f", check=False)


def _build(podman: Podman, tag: str, dockerfile: str, *args: str) -> str:
    start = time.monotonic()
    podman.build(tag, dockerfile, *args)
    BUILD_TIMES[tag] = time.monotonic() - start
    return tag


@pytest.fixture(scope="session")
def runtime_image(podman) -> str:
    return _build(podman, "localhost/seldon-routers:test", "images/Dockerfile", "--target", "runtime")


@pytest.fixture(scope="session")
def onnx_image(podman) -> str:
    return _build(podman, "localhost/seldon-routers:test-onnx", "images/Dockerfile", "--target", "onnx")


@pytest.fixture
def containers(podman):
    """start(image, *podman_run_args, env=..., ready=...): a started Container, removed after the test."""
    started = []

    def start(image, *args, **kw):
        c = podman.run(image, *args, **kw)
        started.append(c)
        return c

    yield start
    for c in started:
        c.remove()


def pytest_terminal_summary(terminalreporter):
    for tag, seconds in BUILD_TIMES.items():
        terminalreporter.write_line(f"image build {tag}: {seconds:.1f}s")
