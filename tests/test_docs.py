"""The documentation site: `mkdocs build --strict` passes (no broken link or anchor, no page
left out of the nav); every SeldonDeployment shown in docs/*.md is valid against Seldon's
CRD, with parameters its router accepts; the send-feedback example replies as shown."""

import glob
import json
import os
import re
import subprocess
import sys

import jsonschema
import mkdocs  # noqa: F401  (comes with .[test]: a missing mkdocs fails here, it does not skip)
import pytest
import requests
import yaml
from servers import running_router

from seldon_routers import params, registry

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CRD = os.path.join(ROOT, "tests", "data", "seldon", "seldondeployments.machinelearning.seldon.io.crd.yaml")
PAGES = sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))
FENCE = re.compile(r"^```ya?ml\n(.*?)^```", re.S | re.M)


def test_site_builds_strict_without_warnings(tmp_path):
    out = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
                          os.path.join(ROOT, "mkdocs.yml"), "--site-dir", str(tmp_path / "site")],
                         capture_output=True, text=True, cwd=ROOT, timeout=300,
                         env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})  # Material's end-of-life banner
    log = out.stdout + out.stderr
    assert out.returncode == 0, log
    assert not re.search(r"^WARNING\b", log, re.M), log
    assert (tmp_path / "site" / "deploy" / "index.html").exists()


def seldon_deployments():
    for page in PAGES:
        with open(page) as f:
            text = f.read()
        for block in FENCE.findall(text):
            for doc in yaml.safe_load_all(block):
                if isinstance(doc, dict) and doc.get("kind") == "SeldonDeployment":
                    yield os.path.basename(page), doc


DEPLOYMENTS = list(seldon_deployments())


def test_the_docs_show_seldondeployments():
    assert "deploy.md" in {page for page, _ in DEPLOYMENTS}


@pytest.fixture(scope="module")
def schema():
    with open(CRD) as f:
        crd = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def units(graph):
    yield graph
    for child in graph.get("children", []):
        yield from units(child)


@pytest.mark.parametrize("page, doc", DEPLOYMENTS, ids=[f"{p}:{d['metadata']['name']}" for p, d in DEPLOYMENTS])
def test_docs_seldondeployment_is_valid(page, doc, schema):
    jsonschema.validate(doc, schema)
    for predictor in doc["spec"]["predictors"]:
        for unit in (u for u in units(predictor["graph"]) if u.get("type") == "ROUTER"):
            spec = next(c for c in predictor["componentSpecs"]
                        if any(cont["name"] == unit["name"] for cont in c["spec"]["containers"]))
            container = next(cont for cont in spec["spec"]["containers"] if cont["name"] == unit["name"])
            env = {e["name"]: e.get("value") for e in container.get("env", [])}
            cls = registry.resolve(env.get("MODEL_NAME") or env.get("ROUTER") or "ab-test")
            router = params.build(cls, params.from_seldon_json(json.dumps(unit.get("parameters", []))))
            assert router.n_children in (None, len(unit.get("children", [])))
            if env.get("SELDON_ROUTER_STATE", "").startswith("file:"):  # one writer of the snapshot
                assert spec.get("replicas", predictor.get("replicas", 1)) == 1


FEEDBACK_CURL = re.compile(r"curl -s localhost:9000/send-feedback (?:[^\n]|\\\n)*?-d '(?P<body>[^']+)'\n"
                           r"# (?P<reply>\{[^\n]*\})")


@pytest.mark.parametrize("page", ["README.md", "docs/protocol.md"])
def test_the_send_feedback_example_gives_the_reply_shown(page):
    """The curl a new user copies: its body is accepted by a learning router, the reply is
    the one printed under it, and the reward lands on the child the body names."""
    with open(os.path.join(ROOT, page)) as f:
        shown = FEEDBACK_CURL.search(f.read())
    assert shown, f"{page}: no send-feedback curl with its reply"
    body = json.loads(shown["body"])
    with running_router("epsilon-greedy", "--param", "n_branches=3") as r:
        reply = requests.post(r.url + "/send-feedback", json=body, timeout=10)
        state = requests.get(r.url + "/state", timeout=10).json()["state"]
    assert reply.status_code == 200 and reply.json() == json.loads(shown["reply"])
    assert state["pulls"] == [0.0, 1.0, 0.0] and state["successes"] == [0.0, 1.0, 0.0]
