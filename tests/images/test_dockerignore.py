"""The root .dockerignore, applied by podman itself: a context laid out like a used checkout
(test venvs in .cache, .git, bytecode, build outputs) sends only the sources."""

from __future__ import annotations

import shutil

from podman_engine import BASE, ROOT

LEFT_OUT = [".git/HEAD", ".cache/venv/lib/big.so", ".venv/bin/python", ".hypothesis/examples/x",
            "seldon_routers/__pycache__/router.cpython-311.pyc", "build/lib/x.py", "dist/x.whl",
            "seldon_routers.egg-info/PKG-INFO", "bench/results/run.csv", ".pytest_cache/v/x", "tests/test_x.py"]
KEPT = ["setup.cfg", "pyproject.toml", "README.md", "seldon_routers/router.py", "examples/digits-router/model.onnx",
        "images/Dockerfile"]


def test_the_context_leaves_out_what_a_checkout_accumulates(podman, tmp_path):
    ctx = tmp_path / "ctx"
    for rel in LEFT_OUT + KEPT:
        (ctx / rel).parent.mkdir(parents=True, exist_ok=True)
        (ctx / rel).write_text("x")
    shutil.copy(ROOT / ".dockerignore", ctx / ".dockerignore")
    (tmp_path / "Containerfile").write_text(f"FROM {BASE}\nCOPY . /ctx\n")
    tag = "localhost/seldon-routers-context:test"
    podman("build", "-q", "-f", str(tmp_path / "Containerfile"), "-t", tag, str(ctx))
    try:
        listed = podman("run", "--rm", "--entrypoint=find", tag, "/ctx", "-type", "f").stdout.split()
    finally:
        podman("rmi", "-f", tag, check=False)
    sent = {p.removeprefix("/ctx/") for p in listed}
    assert set(KEPT) <= sent
    assert not sent & set(LEFT_OUT), sorted(sent & set(LEFT_OUT))
