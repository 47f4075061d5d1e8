"""images/s2i, the s2i builder, driven as `s2i build` drives it (the s2i binary does not
install here): the source copied into /tmp/src of a builder container, /s2i/bin/assemble run
as the assemble user (root, the builder's label), the container committed with CMD
/s2i/bin/run, USER 8888 and .s2i/environment's variables; then the image started and routed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import requests

from podman_engine import ROOT, wait_exit

EXAMPLE = ROOT / "examples" / "s2i-router"


def s2i_environment(src: Path) -> dict:
    env = {}
    for line in (src / ".s2i" / "environment").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value.strip()
    return env


def s2i_build(podman, builder: str, src: Path, tag: str, env: dict | None = None):
    """(assemble's exit code, its output); on success `tag` is the built image."""
    env = s2i_environment(src) if env is None else env
    labels = json.loads(podman("image", "inspect", builder, "--format", "{{json .Labels}}").stdout)
    assert labels["io.openshift.s2i.scripts-url"] == "image:///s2i/bin"
    flags = [f"--env={k}={v}" for k, v in env.items()]
    cid = podman("create", "--network=host", f"--user={labels['io.openshift.s2i.assemble-user']}", *flags,
                 builder, "/s2i/bin/assemble").stdout.strip()
    try:
        podman("cp", f"{src}/.", f"{cid}:/tmp/src")
        done = podman("start", "--attach", cid, check=False)
        output = done.stdout + done.stderr
        if done.returncode == 0:
            changes = ['CMD ["/s2i/bin/run"]', "USER 8888", *(f"ENV {k}={v}" for k, v in env.items())]
            podman("commit", "--quiet", "--format", "docker", *(f"--change={c}" for c in changes), cid, tag)
        return done.returncode, output
    finally:
        podman("rm", "-f", cid, check=False)


@pytest.fixture(scope="module")
def builder(podman, runtime_image) -> str:
    return podman.build("localhost/seldon-routers-s2i:test", "images/s2i/Dockerfile",
                        "--build-arg", f"RUNTIME_IMAGE={runtime_image}", context=ROOT / "images" / "s2i")


@pytest.fixture(scope="module")
def my_router(podman, builder) -> str:
    code, output = s2i_build(podman, builder, EXAMPLE, "localhost/s2i-my-router:test")
    assert code == 0, output
    assert "Router MyRouter.MyRouter loads" in output
    return "localhost/s2i-my-router:test"


def route(url: str, row: list) -> int:
    r = requests.post(url + "/route", json={"data": {"ndarray": [row]}}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()["meta"]["routing"]["0"]


def test_the_built_image_routes_with_the_users_class(my_router, containers):
    c = containers(my_router, env={"PREDICTIVE_UNIT_PARAMETERS": json.dumps(
        [{"name": "n_branches", "value": "3", "type": "INT"}])})
    assert requests.get(c.url + "/state", timeout=5).json()["router"] == "MyRouter.MyRouter"
    rows = [[float(i), 2.0] for i in range(30)]
    first = [route(c.url, row) for row in rows]
    assert [route(c.url, row) for row in rows] == first  # the hash split is sticky
    assert set(first) == {0, 1, 2}  # over n_branches=3 children, from the parameters
    logs = c.logs()
    assert "before-run: preparing MyRouter" in logs
    assert logs.index("before-run: preparing MyRouter") < logs.index("Starting seldon-router serve MyRouter.MyRouter")


def test_the_built_image_runs_as_8888_with_the_source_owned_by_it(my_router, containers):
    c = containers(my_router)
    assert c.exec("id", "-u").strip() == "8888"
    assert "seldon-router serve" in c.exec("cat", "/proc/1/cmdline").replace("\0", " ")  # run exec'd it
    assert c.exec("stat", "-c", "%u", "/microservice/MyRouter.py", "/microservice").split() == ["8888", "8888"]


def test_a_failing_before_run_stops_the_start(my_router, containers, tmp_path):
    hook = tmp_path / "before-run"
    hook.write_text("#!/bin/sh\necho 'before-run: no model to fetch' >&2\nexit 3\n")
    hook.chmod(0o755)
    c = containers(my_router, f"--volume={hook}:/microservice/before-run:ro", ready="")
    assert wait_exit(c)["exit_code"] == 3
    logs = c.logs()
    assert "before-run: no model to fetch" in logs and "Starting seldon-router serve" not in logs


def test_requirements_txt_is_preferred_over_setup_py(podman, builder, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(EXAMPLE, src)
    (src / "setup.py").write_text('raise SystemExit("setup.py ran although requirements.txt is there")\n')
    code, output = s2i_build(podman, builder, src, "localhost/s2i-both:test")
    assert code == 0, output
    assert "requirements.txt" in output and "setup.py ran" not in output
    podman("rmi", "localhost/s2i-both:test", check=False)


def test_environment_yml_with_conda_packages_fails_clearly(podman, builder, tmp_path):
    src = tmp_path / "src"
    shutil.copytree(EXAMPLE, src)
    (src / "requirements.txt").unlink()
    (src / "environment.yml").write_text("dependencies:\n  - python=3.11\n  - scikit-learn\n  - pip:\n    - mmh3\n")
    code, output = s2i_build(podman, builder, src, "localhost/s2i-conda:test")
    assert code != 0
    assert "conda is not in this image, so conda packages cannot be installed: scikit-learn" in output


def test_assemble_without_model_name_fails_clearly(podman, builder):
    code, output = s2i_build(podman, builder, EXAMPLE, "localhost/s2i-unnamed:test", env={"SERVICE_TYPE": "ROUTER"})
    assert code == 1
    assert "MODEL_NAME is not set" in output


def test_run_without_model_name_fails_clearly(builder, containers):
    c = containers(builder, "--entrypoint=/s2i/bin/run", ready="")
    assert wait_exit(c)["exit_code"] == 1
    assert "run: error: MODEL_NAME is not set" in c.logs()
