"""Built-in router names (kebab-case) and import strings, resolved to classes."""

from __future__ import annotations

import importlib
import inspect

from .errors import ConfigError
from .router import Router

# name -> "module:Class"; imported only when asked for, so a heavy router costs nothing
# to the others.
BUILTINS = {
    "ab-test": "seldon_routers.routers.ab_test:ABTest",
    "epsilon-greedy": "seldon_routers.routers.bandits.epsilon_greedy:EpsilonGreedy",
    "thompson-sampling": "seldon_routers.routers.bandits.thompson:ThompsonSampling",
    "ucb1": "seldon_routers.routers.bandits.ucb:UCB1",
    "lin-ucb": "seldon_routers.routers.bandits.linear:LinUCB",
    "rules": "seldon_routers.routers.rules.router:RuleRouter",
    "time-of-day": "seldon_routers.routers.time_of_day.router:TimeOfDay",
    "canary": "seldon_routers.routers.canary.router:Canary",
    "classifier": "seldon_routers.routers.classifier.router:ClassifierRouter",
    # LLM pods (docs/llm/index.md): one strategy each, or `llm` with a per-request one
    "random": "seldon_routers.routers.llm.strategies:Random",
    "least-request": "seldon_routers.routers.llm.strategies:LeastRequest",
    "power-of-two": "seldon_routers.routers.llm.strategies:PowerOfTwo",
    "throughput": "seldon_routers.routers.llm.strategies:Throughput",
    "least-kv-cache": "seldon_routers.routers.llm.strategies:LeastKVCache",
    "least-latency": "seldon_routers.routers.llm.strategies:LeastLatency",
    "prefix-cache": "seldon_routers.routers.llm.strategies:PrefixCache",
    "session-affinity": "seldon_routers.routers.llm.strategies:SessionAffinity",
    "slo": "seldon_routers.routers.llm.strategies:SLO",
    "llm": "seldon_routers.routers.llm.router:LLMRouter",
}


def resolve(spec: str) -> type:
    """A built-in name, or an import path `pkg.module.Class` / `pkg.module:Class`."""
    target = BUILTINS.get(spec, spec)
    if ":" in target:
        module_name, _, attr = target.partition(":")
    elif "." in target:
        module_name, _, attr = target.rpartition(".")
    else:
        raise ConfigError(
            f"router: {spec!r} is neither a built-in ({', '.join(BUILTINS)}) nor an import path "
            "like my_module.MyRouter")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"router: cannot import {module_name!r} for {spec!r}: {exc}") from exc
    cls = getattr(module, attr, None)
    if not inspect.isclass(cls):
        raise ConfigError(f"router: {module_name!r} has no class {attr!r}")
    if not hasattr(cls, "route"):
        raise ConfigError(f"router: {cls.__qualname__} has no route() method")
    return cls


def builtin_name(cls: type) -> str:
    for name, target in BUILTINS.items():
        if target == f"{cls.__module__}:{cls.__qualname__}":
            return name
    return f"{cls.__module__}.{cls.__qualname__}"


def is_router(cls: type) -> bool:
    return inspect.isclass(cls) and issubclass(cls, Router)
