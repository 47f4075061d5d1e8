"""Example SeldonDeployment graphs: valid against Seldon's CRD schema, and every router
unit's parameters are accepted by the router class its image serves."""

import glob
import json
import os

import jsonschema
import pytest
import yaml

from seldon_routers import params, registry
from seldon_routers.state import open_store

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Seldon's own CRD, carried with the tests (source and licence: tests/data/seldon/README.md).
CRD = os.path.join(ROOT, "tests", "data", "seldon", "seldondeployments.machinelearning.seldon.io.crd.yaml")
EXAMPLES = sorted(glob.glob(os.path.join(ROOT, "examples", "**", "seldondeployment*.yaml"), recursive=True))


@pytest.fixture(scope="module")
def schema():
    with open(CRD) as f:
        crd = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # 0.8 MB: the C loader if built
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def units(graph):
    yield graph
    for child in graph.get("children", []):
        yield from units(child)


def test_there_are_examples():
    assert EXAMPLES


@pytest.mark.parametrize("path", EXAMPLES, ids=os.path.basename)
def test_example_is_a_valid_seldondeployment(path, schema, monkeypatch):
    with open(path) as f:
        doc = yaml.safe_load(f)
    jsonschema.validate(doc, schema)
    for predictor in doc["spec"]["predictors"]:
        routers = [u for u in units(predictor["graph"]) if u.get("type") == "ROUTER"]
        assert routers, "an example graph here shows a router"
        for unit in routers:
            env = {e["name"]: e.get("value") for c in predictor["componentSpecs"] for cont in c["spec"]["containers"]
                   if cont["name"] == unit["name"] for e in cont.get("env", [])}
            for entry in filter(None, (env.get("PYTHONPATH") or "").split(os.pathsep)):  # the image's /app: here
                monkeypatch.syspath_prepend(os.path.join(ROOT, os.path.relpath(entry, "/app")))
            cls = registry.resolve(env.get("ROUTER", "ab-test"))
            router = params.build(cls, params.from_seldon_json(json.dumps(unit.get("parameters", []))))
            assert router.n_children in (None, len(unit.get("children", [])))
            store = open_store(env.get("SELDON_ROUTER_STATE", "memory"))
            if predictor.get("replicas", 1) > 1 or int(env.get("SELDON_ROUTER_WORKERS", 1)) > 1:
                assert store.shared, "replicas or workers of a learning router need a shared store"
                assert not getattr(router, "not_additive", lambda: None)()
