"""A SeldonDeployment file read into the units the runner needs, checked once at start-up.

Only what the executor acts on is kept: each unit's name, type, implementation, methods,
parameters and children, the env and image of the container of the same name, and the
`seldon.io/rest-timeout` annotation. Every error names the field (`spec.predictors[0].
graph.children[1].name`) and stops the CLI with exit status 2.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Optional

from ..errors import ConfigError

TYPES = ("MODEL", "ROUTER", "COMBINER", "TRANSFORMER", "OUTPUT_TRANSFORMER", "UNKNOWN_TYPE")
METHODS = ("TRANSFORM_INPUT", "TRANSFORM_OUTPUT", "ROUTE", "AGGREGATE", "SEND_FEEDBACK")
# Seldon's own implementations the executor handles itself or the operator does not treat
# as a prepackaged model server (operator prepack.go); every other implementation is one
# (SKLEARN_SERVER, ...) and the operator makes its unit a MODEL.
NOT_PREPACKAGED = ("", "SIMPLE_MODEL", "SIMPLE_ROUTER", "RANDOM_ABTEST", "AVERAGE_COMBINER", "UNKNOWN_IMPLEMENTATION")
REST_TIMEOUT = "seldon.io/rest-timeout"


@dataclass
class Unit:
    name: str
    type: str  # one of TYPES; "" for a unit with neither type nor prepackaged implementation
    implementation: str = ""
    methods: tuple = ()
    parameters: list = field(default_factory=list)  # Seldon's [{name, value, type}], as given
    children: list = field(default_factory=list)
    env: dict = field(default_factory=dict)  # the container of the same name, if any
    image: str = ""
    field: str = ""  # where it is in the file, for messages

    def walk(self):
        yield self
        for child in self.children:
            yield from child.walk()

    # What the executor calls on this unit (predictor_process.go: by type, or by `methods`).
    @property
    def calls_input(self) -> Optional[str]:
        if self.type == "MODEL":
            return "/transform-input" if "TRANSFORM_INPUT" in self.methods else "/predict"
        if self.type == "TRANSFORMER" or "TRANSFORM_INPUT" in self.methods:
            return "/transform-input"
        return None

    @property
    def calls_output(self) -> bool:
        return self.type == "OUTPUT_TRANSFORMER" or "TRANSFORM_OUTPUT" in self.methods

    @property
    def calls_route(self) -> bool:
        return self.type == "ROUTER" or "ROUTE" in self.methods

    @property
    def is_abtest(self) -> bool:
        return not self.calls_route and self.implementation == "RANDOM_ABTEST"

    @property
    def calls_aggregate(self) -> bool:
        return self.type == "COMBINER" or "AGGREGATE" in self.methods

    @property
    def calls_feedback(self) -> bool:
        return self.type in ("MODEL", "ROUTER") or "SEND_FEEDBACK" in self.methods

    @property
    def needs_server(self) -> bool:
        """Whether any call reaches this unit (a RANDOM_ABTEST node is the executor's own)."""
        return bool(self.calls_input or self.calls_output or self.calls_route or self.calls_aggregate
                    or self.calls_feedback)


@dataclass
class Predictor:
    deployment: str
    name: str
    graph: Unit
    rest_timeout_ms: int = 0  # 0: none (the executor's http.DefaultClient has none)
    executor_env: dict = field(default_factory=dict)  # svcOrchSpec.env: the executor's own variables

    def units(self) -> list:
        return list(self.graph.walk())


def load(path: str, predictor: Optional[str] = None) -> Predictor:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror})") from None
    return parse(text, path, predictor)


def parse(text: str, source: str = "deployment", predictor: Optional[str] = None) -> Predictor:
    import yaml  # the graph extra

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not YAML ({str(exc).splitlines()[0]})") from None
    doc = _mapping(doc, source)
    kind = doc.get("kind")
    if kind is not None and kind != "SeldonDeployment":
        raise ConfigError(f"{source}: kind: expected SeldonDeployment, got {kind!r}")
    spec = _mapping(doc.get("spec"), f"{source}: spec")
    metadata = _mapping(doc.get("metadata") or {}, f"{source}: metadata")
    predictors = spec.get("predictors")
    if not isinstance(predictors, list) or not predictors:
        raise ConfigError(f"{source}: spec.predictors: expected a list of at least one predictor")
    index = _pick(predictors, predictor, source)
    where = f"spec.predictors[{index}]"
    p = _mapping(predictors[index], f"{source}: {where}")
    containers = _containers(p, f"{source}: {where}")
    graph = _unit(p.get("graph"), f"{where}.graph", containers, source, set())
    annotations = {**_annotations(metadata, source, "metadata"), **_annotations(spec, source, "spec"),
                   **_annotations(p, source, where)}
    orch = _mapping(p.get("svcOrchSpec") or {}, f"{source}: {where}.svcOrchSpec")
    executor_env = _env(orch, f"{source}: {where}.svcOrchSpec")
    return Predictor(str(metadata.get("name") or spec.get("name") or ""), str(p.get("name") or ""), graph,
                     _timeout(annotations, source), executor_env)


def _mapping(value, where: str) -> dict:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def _list(value, where: str) -> list:
    """A list, or [] where the field is absent (null)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ConfigError(f"{where}: expected a list, got {type(value).__name__}")
    return value


def _env(obj: dict, here: str) -> dict:
    """A container's `env`: [{name, value}], the `value` entries (valueFrom, secrets and field
    refs, has no meaning off Kubernetes)."""
    env = {}
    for k, e in enumerate(_list(obj.get("env"), f"{here}.env")):
        if not isinstance(e, dict) or not isinstance(e.get("name"), str):
            raise ConfigError(f"{here}.env[{k}]: expected {{name, value}}")
        if "value" in e:
            env[e["name"]] = "" if e["value"] is None else str(e["value"])
    return env


def _pick(predictors: list, name: Optional[str], source: str) -> int:
    """The predictor named by --predictor, else the first (traffic splits between predictors
    are the ingress's work, not the executor's: one executor runs one predictor)."""
    if name is None:
        return 0
    names = [p.get("name") if isinstance(p, dict) else None for p in predictors]
    if name not in names:
        raise ConfigError(f"--predictor: {source} has no predictor {name!r} (it has {names})")
    return names.index(name)


def _containers(p: dict, where: str) -> dict:
    found = {}
    for i, spec in enumerate(_list(p.get("componentSpecs"), f"{where}.componentSpecs")):
        at = f"{where}.componentSpecs[{i}]"
        pod = _mapping(_mapping(spec, at).get("spec") or {}, f"{at}.spec")
        for j, c in enumerate(_list(pod.get("containers"), f"{at}.spec.containers")):
            here = f"{at}.spec.containers[{j}]"
            c = _mapping(c, here)
            found[c.get("name")] = (_env(c, here), str(c.get("image") or ""))
    return found


def _unit(node, where: str, containers: dict, source: str, seen: set) -> Unit:
    node = _mapping(node, f"{source}: {where}")
    name = node.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{source}: {where}.name: every unit needs a name")
    if name in seen:
        raise ConfigError(f"{source}: {where}.name: {name!r} names two units (names key meta.routing)")
    seen.add(name)
    implementation = str(node.get("implementation") or "")
    type_ = node.get("type")
    if type_ is None:
        type_ = "MODEL" if implementation not in NOT_PREPACKAGED else ""
    elif type_ not in TYPES:
        raise ConfigError(f"{source}: {where}.type: unknown type {type_!r} (one of {', '.join(TYPES)})")
    methods = node.get("methods") or []
    if not isinstance(methods, list) or any(m not in METHODS for m in methods):
        raise ConfigError(f"{source}: {where}.methods: expected a list of {', '.join(METHODS)}, got {methods!r}")
    parameters = node.get("parameters") or []
    if not isinstance(parameters, list) or not all(isinstance(q, dict) and "name" in q for q in parameters):
        raise ConfigError(f"{source}: {where}.parameters: expected a list of {{name, value, type}}")
    if implementation == "RANDOM_ABTEST":
        _check_ratio_a(parameters, f"{source}: {where}")
    children = node.get("children") or []
    if not isinstance(children, list):
        raise ConfigError(f"{source}: {where}.children: expected a list of units")
    kids = [_unit(c, f"{where}.children[{i}]", containers, source, seen) for i, c in enumerate(children)]
    if (type_ == "ROUTER" or implementation == "RANDOM_ABTEST") and not kids:
        raise ConfigError(f"{source}: {where}.children: router {name!r} has no children to route to")
    env, image = containers.get(name, ({}, ""))
    return Unit(name, type_, implementation, tuple(methods), parameters, kids, env, image, where)


def honoured_ratio_a(parameters: list) -> Optional[dict]:
    """RANDOM_ABTEST's ratioA parameter where it is honoured: as its only parameter (upstream's
    components.go), else None (0.5)."""
    if len(parameters) == 1 and parameters[0].get("name") == "ratioA":
        return parameters[0]
    return None


def _check_ratio_a(parameters: list, where: str) -> None:
    """ratioA, where it is honoured: a finite number, checked here once rather than failing
    every request (upstream: a 500 per request)."""
    ratio = honoured_ratio_a(parameters)
    if ratio is not None:
        value = ratio.get("value")
        try:
            ok = not isinstance(value, bool) and math.isfinite(float(value))
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ConfigError(f"{where}.parameters[0].value: ratioA: expected a number (the share of "
                              f"child 0, 0..1), got {value!r}")


def _annotations(obj: dict, source: str, where: str) -> dict:
    value = obj.get("annotations") or {}
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: {where}.annotations: expected a mapping")
    return {str(k): v for k, v in value.items()}


def _timeout(annotations: dict, source: str) -> int:
    value = annotations.get(REST_TIMEOUT)
    if value is None or value == "":
        return 0
    try:
        ms = int(str(value))
    except ValueError:
        ms = -1
    if ms < 0:
        raise ConfigError(f"{source}: annotation {REST_TIMEOUT}: expected milliseconds, an integer >= 0, "
                          f"got {value!r}")
    return ms


def parameters_json(unit: Unit) -> str:
    """PREDICTIVE_UNIT_PARAMETERS as the operator writes it: the unit's list, as JSON."""
    return json.dumps(unit.parameters)
