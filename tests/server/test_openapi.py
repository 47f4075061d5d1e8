"""The OpenAPI document (seldon_routers/server/openapi/seldon.json, served at /seldon.json
as Seldon's wrapper serves its own): it lists exactly the endpoints and methods the server
serves, both ways, checked against the endpoint table and against live servers (uvicorn
and the Flask adapter)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from seldon_routers import ABTest
from seldon_routers.server.flask import create_app
from seldon_routers.server.rest import ENDPOINTS
from server_cases import REPO, ThreadedWerkzeug
from servers import serving

DOCUMENT = REPO / "seldon_routers" / "server" / "openapi" / "seldon.json"
HTTP_METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]


@pytest.fixture(scope="module")
def doc() -> dict:
    return json.loads(DOCUMENT.read_text())


def documented(doc: dict) -> dict:
    """Path -> the methods the document lists for it."""
    return {path: {m.upper() for m in ops if m in ("get", "post", "put", "delete", "patch", "head", "options")}
            for path, ops in doc["paths"].items()}


def served_methods(methods: set) -> set:
    """What a path answers: its methods, HEAD wherever GET is, and OPTIONS (the document's
    description says so rather than listing them on every path)."""
    return set(methods) | {"OPTIONS"} | ({"HEAD"} if "GET" in methods else set())


# --- the document itself ----------------------------------------------------------------

def test_the_document_is_openapi_3_with_unique_operations(doc):
    assert doc["openapi"].startswith("3.0.") and doc["info"]["title"] and doc["info"]["version"]
    ids = [op["operationId"] for ops in doc["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert op["responses"], f"{method} {path}: no responses"
            assert op.get("summary"), f"{method} {path}: no summary"


def _refs(node):
    if isinstance(node, dict):
        if "$ref" in node:
            yield node["$ref"]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def test_every_reference_resolves(doc):
    refs = set(_refs(doc))
    assert refs
    for ref in refs:
        assert ref.startswith("#/"), ref
        node = doc
        for part in ref[2:].split("/"):
            assert part in node, f"{ref}: no {part!r}"
            node = node[part]


def test_the_document_lists_exactly_the_endpoint_table(doc):
    listed = documented(doc)
    table = {path: set(methods) for path, (methods, _) in ENDPOINTS.items()}
    assert listed == table


# --- live servers: what they answer is what the document says ----------------------------

@pytest.fixture(scope="module")
def uvicorn_server():
    with serving("ab-test", "n_branches=2", unit_id="ab") as server:
        yield server


@pytest.fixture(scope="module")
def flask_server():
    server = ThreadedWerkzeug(create_app(ABTest(n_branches=2), unit_id="ab"))
    yield server
    server.stop()


@pytest.fixture(scope="module", params=["uvicorn", "flask"])
def url(request) -> str:
    return request.getfixturevalue(f"{request.param}_server").url


def test_seldon_json_serves_the_checked_in_document(url):
    r = requests.get(url + "/seldon.json", timeout=5)
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    assert r.content == DOCUMENT.read_bytes()


def test_every_documented_method_is_served_and_no_other(url, doc):
    for path, methods in documented(doc).items():
        allowed = served_methods(methods)
        for method in HTTP_METHODS:
            r = requests.request(method, url + path, timeout=5)
            where = f"{method} {path}: {r.status_code} {r.text[:200]}"
            if method in allowed:
                # Served: whatever it says (a 400 for a missing message), it is not "no such thing".
                assert r.status_code not in (404, 405), where
                if method == "OPTIONS":
                    assert set(r.headers["allow"].replace(" ", "").split(",")) == allowed, where
            else:
                assert r.status_code == 405, where
                assert set(r.headers["allow"].replace(" ", "").split(",")) == allowed, where
                if method != "HEAD":  # (a HEAD reply has no body)
                    assert r.json()["status"]["reason"] == "METHOD_NOT_ALLOWED", where


def test_an_undocumented_path_is_not_served(url):
    for method in HTTP_METHODS:
        assert requests.request(method, url + "/no-such-endpoint", timeout=5).status_code == 404, method


def test_head_answers_without_a_body(url):
    for path in ("/seldon.json", "/health/ping", "/metadata"):
        r = requests.head(url + path, timeout=5)
        assert r.status_code == 200 and r.content == b"", path


def test_the_document_in_a_source_checkout_is_the_package_data():
    """rest.py reads it with importlib.resources: the same file, from wherever the package is."""
    from seldon_routers.server.rest import openapi_document

    assert openapi_document() == DOCUMENT.read_bytes()
    assert Path(__file__).resolve().parents[2] == REPO
