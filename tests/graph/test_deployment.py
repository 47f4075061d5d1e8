"""Reading a SeldonDeployment file: the units, their types and containers, the predictor
chosen, and a clear error naming the field (exit status 2 from the CLI) for a bad file."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml

from graph_runner import ROOT, deployment, unit
from seldon_routers.errors import ConfigError
from seldon_routers.graph.deployment import parse


def text(doc) -> str:
    return yaml.safe_dump(doc)


def test_units_types_and_container_env():
    graph = unit("r", "ROUTER", {"name": "m", "implementation": "SKLEARN_SERVER", "modelUri": "gs://x"},
                 {"name": "ab", "implementation": "RANDOM_ABTEST", "children": [unit("x", "MODEL"), unit("y", "MODEL")]},
                 parameters=[{"name": "n_branches", "value": "3", "type": "INT"}])
    doc = deployment(graph, annotations={"seldon.io/rest-timeout": "1500"},
                     containers=[{"name": "r", "image": "img:1", "env": [{"name": "ROUTER", "value": "ab-test"}]}])
    p = parse(text(doc))
    assert (p.deployment, p.name, p.rest_timeout_ms) == ("test-graph", "default", 1500)
    r, m, ab = p.graph, p.graph.children[0], p.graph.children[1]
    assert (r.env, r.image, r.parameters[0]["name"]) == ({"ROUTER": "ab-test"}, "img:1", "n_branches")
    assert m.type == "MODEL" and m.calls_input == "/predict"  # a prepackaged server is a MODEL
    assert ab.is_abtest and not ab.needs_server
    assert [u.name for u in p.units()] == ["r", "m", "ab", "x", "y"]


def test_the_predictor_is_the_first_or_the_one_named():
    doc = deployment(unit("m", "MODEL"))
    second = {**doc["spec"]["predictors"][0], "name": "canary", "graph": unit("c", "MODEL")}
    doc["spec"]["predictors"].append(second)
    assert parse(text(doc)).graph.name == "m"
    assert parse(text(doc), predictor="canary").graph.name == "c"
    with pytest.raises(ConfigError, match=r"--predictor: .* no predictor 'other'"):
        parse(text(doc), predictor="other")


BAD = {
    "not YAML": ("a: [1, 2", r"not YAML"),
    "not a mapping": ("- 1\n- 2\n", r"expected a mapping"),
    "no predictors": (text({"kind": "SeldonDeployment", "spec": {"predictors": []}}), r"spec.predictors: expected"),
    "a unit with no name": (text(deployment(unit("r", "ROUTER", {"type": "MODEL"}))),
                            r"spec.predictors\[0\].graph.children\[0\].name: every unit needs a name"),
    "duplicate names": (text(deployment(unit("r", "ROUTER", unit("m", "MODEL"), unit("m", "MODEL")))),
                        r"graph.children\[1\].name: 'm' names two units"),
    "a router with no children": (text(deployment(unit("r", "ROUTER"))), r"graph.children: router 'r' has no children"),
    "unknown type": (text(deployment(unit("r", "ROUTR"))), r"graph.type: unknown type 'ROUTR'"),
    "bad methods": (text(deployment(unit("m", "MODEL", methods=["PREDICT"]))), r"graph.methods: expected"),
    "componentSpecs of lists": (text({**deployment(unit("m", "MODEL")), "spec": {"predictors": [
        {"name": "p", "graph": unit("m", "MODEL"), "componentSpecs": [[1]]}]}}),
        r"spec.predictors\[0\].componentSpecs\[0\]: expected a mapping, got list"),
    "a componentSpec's spec a string": (text({"spec": {"predictors": [
        {"graph": unit("m", "MODEL"), "componentSpecs": [{"spec": "x"}]}]}}),
        r"componentSpecs\[0\].spec: expected a mapping, got str"),
    "componentSpecs a mapping": (text({"spec": {"predictors": [
        {"graph": unit("m", "MODEL"), "componentSpecs": {"spec": {}}}]}}),
        r"spec.predictors\[0\].componentSpecs: expected a list, got dict"),
    "containers a mapping": (text(deployment(unit("m", "MODEL"), containers={"name": "m"})),
                             r"componentSpecs\[0\].spec.containers: expected a list, got dict"),
    "a container's env a mapping": (text(deployment(unit("m", "MODEL"), containers=[{"name": "m", "env": {"A": 1}}])),
                                    r"containers\[0\].env: expected a list, got dict"),
    "svcOrchSpec.env a mapping": (text({"spec": {"predictors": [
        {"graph": unit("m", "MODEL"), "svcOrchSpec": {"env": {"SELDON_ENABLE_ROUTING_INJECTION": "1"}}}]}}),
        r"spec.predictors\[0\].svcOrchSpec.env: expected a list, got dict"),
    "svcOrchSpec.env entry without a name": (text({"spec": {"predictors": [
        {"graph": unit("m", "MODEL"), "svcOrchSpec": {"env": [{"value": "1"}]}}]}}),
        r"svcOrchSpec.env\[0\]: expected \{name, value\}"),
    "ratioA not a number": (text(deployment({"name": "ab", "implementation": "RANDOM_ABTEST",
                                             "parameters": [{"name": "ratioA", "value": "half", "type": "FLOAT"}],
                                             "children": [unit("a", "MODEL"), unit("b", "MODEL")]})),
                            r"spec.predictors\[0\].graph.parameters\[0\].value: ratioA: expected a number.*'half'"),
    "ratioA NaN": (text(deployment({"name": "ab", "implementation": "RANDOM_ABTEST",
                                    "parameters": [{"name": "ratioA", "value": "nan", "type": "FLOAT"}],
                                    "children": [unit("a", "MODEL"), unit("b", "MODEL")]})),
                   r"graph.parameters\[0\].value: ratioA: expected a number"),
    "bad timeout": (text(deployment(unit("m", "MODEL"), annotations={"seldon.io/rest-timeout": "soon"})),
                    r"annotation seldon.io/rest-timeout: expected milliseconds"),
}


@pytest.mark.parametrize("case", BAD, ids=list(BAD))
def test_a_bad_file_is_refused_naming_the_field(case):
    source, message = BAD[case]
    with pytest.raises(ConfigError, match=message):
        parse(source, "deployment.yaml")


@pytest.mark.parametrize("case", ["componentSpecs of lists", "a componentSpec's spec a string", "ratioA not a number"])
def test_a_malformed_file_stops_the_cli_with_status_2_and_no_traceback(tmp_path, case):
    path = tmp_path / "sdep.yaml"
    path.write_text(BAD[case][0])
    done = subprocess.run([sys.executable, "-m", "seldon_routers.cli", "graph", "run", str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and "seldon-router: error:" in done.stderr


def test_the_cli_stops_with_status_2_and_the_message(tmp_path):
    path = tmp_path / "sdep.yaml"
    path.write_text(BAD["duplicate names"][0])
    done = subprocess.run([sys.executable, "-m", "seldon_routers.cli", "graph", "run", str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "seldon-router: error:" in done.stderr and "'m' names two units" in done.stderr
    path.write_text(text(deployment(unit("m", "MODEL"))))
    done = subprocess.run([sys.executable, "-m", "seldon_routers.cli", "graph", "run", str(path), "--unit", "nonsense"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "--unit: expected NAME=SPEC" in done.stderr
