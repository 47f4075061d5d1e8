"""Imports flow one way (cli -> server, ... -> routers -> router, request, errors, params): a router module never imports the server, the codec, the state stores,
generated protobuf code or a server-only package. That is what keeps a router loadable by
Seldon's `seldon-core-microservice`, whose own protobuf runtime and `seldon.protos` symbols
would clash with ours, and in a Python that has only numpy. Read from the source (AST), so
an import inside a function counts as much as one at the top."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "seldon_routers"
# What a router is loaded with: every module at the package's top (its face, the contract
# and its vocabulary: router, adapter, request, errors, params, registry, ...) but the
# command line, and the built-ins under routers/. A module added at the top is checked too.
ABOVE = {"cli.py"}
# Modules of ours above the routers, and packages only the server stack installs.
FORBIDDEN = (
    "seldon_routers.server", "seldon_routers.codec", "seldon_routers.proto", "seldon_routers.state",
    "seldon_routers.gateway", "seldon_routers.graph", "seldon_routers.simulate", "seldon_routers.cli",
    "grpc", "grpc_health", "google.protobuf", "uvicorn", "uvloop", "httptools", "prometheus_client", "orjson",
    "redis", "flask", "werkzeug",
)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(source: str, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """Every module `source` (the text of `module`) imports, as (line, absolute name): import
    statements anywhere (top level, functions, branches) and importlib.import_module or
    __import__ of a literal name. `from X import a` counts as X and as X.a (a may be a module)."""
    package = module if is_package else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names if alias.name != "*"]
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("import_module", "__import__"):
                found.append((node.lineno, node.args[0].value))
    return found


def violations(source: str, module: str, is_package: bool = False) -> list[str]:
    return sorted({f"{module}:{line} imports {name}" for line, name in imported(source, module, is_package)
                   if any(name == f or name.startswith(f + ".") for f in FORBIDDEN)})


def router_side_modules() -> list[Path]:
    top = sorted(p for p in PACKAGE.glob("*.py") if p.name not in ABOVE)
    return top + sorted((PACKAGE / "routers").rglob("*.py"))


@pytest.mark.parametrize("path", router_side_modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_router_side_modules_import_nothing_from_above_or_server_only(path):
    assert violations(path.read_text(), module_name(path), path.name == "__init__.py") == []


def test_every_router_module_is_checked():
    checked = {p.relative_to(PACKAGE) for p in router_side_modules()}
    assert {Path(n) for n in ("__init__.py", "router.py", "request.py", "errors.py", "params.py",
                              "registry.py")} <= checked and Path("cli.py") not in checked
    assert Path("routers/classifier/router.py") in checked and Path("routers/bandits/base.py") in checked
    assert len([p for p in checked if p.parts[0] == "routers"]) >= 20


# --- the checker itself, on planted violations --------------------------------------------

MODULE = "seldon_routers.routers.bandits.planted"


@pytest.mark.parametrize("source,name", [
    ("import grpc", "grpc"),
    ("import grpc.aio as aio", "grpc.aio"),
    ("from google.protobuf import json_format", "google.protobuf"),
    ("from seldon_routers.proto import prediction_pb2", "seldon_routers.proto"),
    ("from seldon_routers import proto", "seldon_routers.proto"),
    ("from ...server.dataplane import DataPlane", "seldon_routers.server.dataplane"),
    ("from ... import codec", "seldon_routers.codec"),
    ("from ...state import Store", "seldon_routers.state"),
    ("def hook(registry):\n    from prometheus_client import Histogram\n    return Histogram", "prometheus_client"),
    ("class R:\n    def f(self):\n        if True:\n            import orjson", "orjson"),
    ("import importlib\nm = importlib.import_module('redis')", "redis"),
    ("uv = __import__('uvloop')", "uvloop"),
])
def test_the_checker_finds_a_planted_violation(source, name):
    found = violations(source, MODULE)
    assert any(v.endswith(f"imports {name}") for v in found), found


@pytest.mark.parametrize("source", [
    "import numpy as np",
    "from ...errors import ConfigError\nfrom ...router import Decision, Router",
    "from .._arms import resolve_arms\nfrom . import ucb",
    "import grpcio_like_but_not_grpc\nimport redisx\nfrom flask_free import y",  # a prefix only on dots
    "from seldon_routers.request import Request",
    "def f():\n    import yaml  # the rules extra: allowed",
])
def test_the_checker_lets_allowed_imports_through(source):
    assert violations(source, MODULE) == []


def test_relative_imports_resolve_from_the_module_and_from_a_package():
    assert ("seldon_routers.server" in {n for _, n in imported("from ...server import app", MODULE)})
    init = "seldon_routers.routers.classifier"  # its __init__.py: one level up is routers
    assert {n for _, n in imported("from ..rules import RuleRouter", init, is_package=True)} >= {
        "seldon_routers.routers.rules"}
    assert violations("from .. import server", init, is_package=True) == []  # seldon_routers.routers.server
    assert violations("from ... import server", init, is_package=True) == [
        "seldon_routers.routers.classifier:1 imports seldon_routers.server"]
