"""gateway.yaml: the pods, the router that picks among them, and the forwarding policies.

    port: 8888
    router: llm                  # a built-in name or pkg.module.Class (default llm)
    strategy: prefix-cache       # shorthand for parameters.strategy
    parameters: {rpm: 600}       # the router's parameters, as `serve --param`
    pods: [{name: a, url: http://127.0.0.1:8001, models: [llama]}, ...]
    fallback: [{name: spare, url: http://127.0.0.1:8009}]   # tried when the routed pods fail
    timeout: 600                 # seconds for a whole response (a stream included)
    connect_timeout: 5
    retries: 2                   # before the first byte only, on connect errors and 5xx
    retry_backoff: 0.05          # seconds, doubled per retry
    mirror: {url: http://127.0.0.1:8010, fraction: 0.1}     # copies, answers discarded
    models: {llama: {timeout: 30, retries: 1, fallback: [spare], mirror: null}}
    state: redis://127.0.0.1:6379/0   # counters, limits and prefix state shared by replicas
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Optional

from ..errors import ConfigError
from ..routers._config import parse_text
from ..routers._params import duration

TOP_KEYS = {"host", "port", "router", "strategy", "parameters", "pods", "fallback", "timeout", "connect_timeout",
            "retries", "retry_backoff", "mirror", "models", "state", "log_requests"}
POLICY_KEYS = ("timeout", "connect_timeout", "retries", "retry_backoff", "fallback", "mirror")


@dataclass(frozen=True)
class Mirror:
    url: str
    fraction: float = 1.0


@dataclass(frozen=True)
class Policy:
    """How one model's requests are forwarded."""

    timeout: Optional[float] = 600.0
    connect_timeout: float = 5.0
    retries: int = 2
    retry_backoff: float = 0.05
    fallback: tuple = ()  # indices into Config.fallback, tried in order
    mirror: Optional[Mirror] = None


@dataclass
class Config:
    host: str = "127.0.0.1"
    port: int = 8888
    router: str = "llm"
    parameters: dict = field(default_factory=dict)
    pods: list = field(default_factory=list)  # the router's `pods` (name, url, models, ...)
    fallback: list = field(default_factory=list)  # [(name, url)]
    default: Policy = field(default_factory=Policy)
    models: dict = field(default_factory=dict)  # model -> Policy
    state: str = "memory"
    log_requests: bool = True

    def policy(self, model: Optional[str]) -> Policy:
        return self.models.get(model, self.default) if model is not None else self.default


def _url(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise ConfigError(f"{where}: expected an http:// or https:// URL, got {value!r}")
    return value.rstrip("/")


def _number(value: Any, where: str, lo: float = 0.0) -> float:
    seconds = duration(value, where)
    if seconds < lo:
        raise ConfigError(f"{where}: must be >= {lo:g}, got {value!r}")
    return seconds


def _count(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{where}: expected an integer >= 0, got {value!r}")
    return value


def _mirror(value: Any, where: str) -> Optional[Mirror]:
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) - {"url", "fraction"}:
        raise ConfigError(f"{where}: expected {{url, fraction}}, got {value!r}")
    fraction = value.get("fraction", 1.0)
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 <= fraction <= 1:
        raise ConfigError(f"{where}.fraction: expected a number in [0, 1], got {fraction!r}")
    return Mirror(_url(value.get("url"), f"{where}.url"), float(fraction))


def _policy(doc: dict, base: Policy, where: str, fallback_names: list) -> Policy:
    changes: dict = {}
    if "timeout" in doc:
        changes["timeout"] = None if doc["timeout"] is None else _number(doc["timeout"], f"{where}timeout", 0.001)
    if "connect_timeout" in doc:
        changes["connect_timeout"] = _number(doc["connect_timeout"], f"{where}connect_timeout", 0.001)
    if "retries" in doc:
        changes["retries"] = _count(doc["retries"], f"{where}retries")
    if "retry_backoff" in doc:
        changes["retry_backoff"] = _number(doc["retry_backoff"], f"{where}retry_backoff")
    if "fallback" in doc:
        names = doc["fallback"] or []
        if not isinstance(names, list) or any(n not in fallback_names for n in names):
            raise ConfigError(f"{where}fallback: expected a list of the fallback pods' names "
                              f"({', '.join(fallback_names) or 'none configured'}), got {names!r}")
        changes["fallback"] = tuple(fallback_names.index(n) for n in names)
    if "mirror" in doc:
        changes["mirror"] = _mirror(doc["mirror"], f"{where}mirror")
    return replace(base, **changes)


def _fallback(value: Any) -> list:
    if not isinstance(value, list):
        raise ConfigError(f"fallback: expected a list of pods {{name, url}}, got {value!r}")
    out = []
    for i, pod in enumerate(value):
        if not isinstance(pod, dict) or not isinstance(pod.get("name"), str) or set(pod) - {"name", "url", "models"}:
            raise ConfigError(f"fallback[{i}]: expected {{name, url}}, got {pod!r}")
        out.append((pod["name"], _url(pod.get("url"), f"fallback[{i}].url")))
    return out


def parse(doc: Any) -> Config:
    """A Config from the YAML (or JSON) document, every field checked."""
    if not isinstance(doc, dict):
        raise ConfigError(f"gateway config: expected a map, got {type(doc).__name__}")
    unknown = sorted(set(doc) - TOP_KEYS)
    if unknown:
        raise ConfigError(f"gateway config: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(TOP_KEYS))}")
    cfg = Config()
    if "host" in doc:
        if not isinstance(doc["host"], str):
            raise ConfigError(f"host: expected a string, got {doc['host']!r}")
        cfg.host = doc["host"]
    if "port" in doc:
        port = doc["port"]
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port < 65536:
            raise ConfigError(f"port: expected a TCP port, got {port!r}")
        cfg.port = port
    if "router" in doc:
        if not isinstance(doc["router"], str) or not doc["router"]:
            raise ConfigError(f"router: expected a built-in name or pkg.module.Class, got {doc['router']!r}")
        cfg.router = doc["router"]
    parameters = doc.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise ConfigError(f"parameters: expected a map of the router's parameters, got {parameters!r}")
    cfg.parameters = dict(parameters)
    if "strategy" in doc:
        cfg.parameters["strategy"] = doc["strategy"]
    pods = doc.get("pods")
    if not isinstance(pods, list) or not pods:
        raise ConfigError("pods: expected a list of the pods {name, url, models} (at least one)")
    for i, pod in enumerate(pods):
        if not isinstance(pod, dict):
            raise ConfigError(f"pods[{i}]: expected a map {{name, url, models}}, got {pod!r}")
        _url(pod.get("url"), f"pods[{i}].url")
    cfg.pods = pods
    cfg.fallback = _fallback(doc.get("fallback") or [])
    names = [name for name, _ in cfg.fallback]
    top = {k: v for k, v in doc.items() if k != "fallback"}  # there, the pods themselves
    cfg.default = _policy(top, Policy(fallback=tuple(range(len(names)))), "", names)
    models = doc.get("models") or {}
    if not isinstance(models, dict):
        raise ConfigError(f"models: expected a map of model name to its policy, got {models!r}")
    for model, policy in models.items():
        if not isinstance(policy, dict) or set(policy) - set(POLICY_KEYS):
            raise ConfigError(f"models.{model}: expected a map with some of {', '.join(POLICY_KEYS)}, got {policy!r}")
        cfg.models[str(model)] = _policy(policy, cfg.default, f"models.{model}.", names)
    if "state" in doc:
        if not isinstance(doc["state"], str):
            raise ConfigError(f"state: expected memory or redis://host:port/db, got {doc['state']!r}")
        cfg.state = doc["state"]
    if "log_requests" in doc:
        cfg.log_requests = bool(doc["log_requests"])
    return cfg


def load(path: str) -> Config:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise ConfigError(f"--config: cannot read {path!r}: {exc.strerror}") from None
    return parse(parse_text(text, "--config", path.endswith(".json")))
