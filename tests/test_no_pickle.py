"""No pickle by default: nothing in the package deserialises with pickle (or the libraries
built on it) except the classifier's load_pickle, which only trust_pickle reaches
(tests/routers/classifier/test_backends.py shows the refusal without it). Read from the
source's syntax tree, so a new `import pickle` anywhere else fails here."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "seldon_routers"
UNPICKLERS = {"pickle", "cPickle", "dill", "cloudpickle", "joblib", "shelve", "marshal", "_pickle"}
ALLOWED = {("routers/classifier/backends.py", "load_pickle")}


def _functions(tree: ast.AST):
    """(node, name of the function it is in) for every node."""
    def walk(node, where):
        for child in ast.iter_child_nodes(node):
            inner = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else where
            yield child, inner
            yield from walk(child, inner)
    yield from walk(tree, "<module>")


def unpickling_sites() -> set:
    found = set()
    for path in PACKAGE.rglob("*.py"):
        if "proto" in path.parts:
            continue
        rel = path.relative_to(PACKAGE).as_posix()
        for node, where in _functions(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name.split(".")[0] for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module.split(".")[0]]
            elif isinstance(node, ast.Attribute) and node.attr == "load" and isinstance(node.value, ast.Name) \
                    and node.value.id == "torch":  # torch.load unpickles
                names = ["torch.load"]
            elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
                names = [str(node.args[0].value)]  # importlib.import_module("pickle"), _import("joblib", ...)
            if any(n in UNPICKLERS or n == "torch.load" for n in names):
                found.add((rel, where))
    return found


def test_only_the_trusted_pickle_loader_unpickles():
    sites = unpickling_sites()
    assert sites - ALLOWED == set(), sorted(sites - ALLOWED)
    assert ("routers/classifier/backends.py", "load_pickle") in sites  # the scan sees the one that exists
