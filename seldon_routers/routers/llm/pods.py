"""The pods an LLM router routes over (its children) and what each serves.

`pods` (JSON or YAML, inline or `pods_file`) lists them in the graph's child order:
    - name: pod-a                      # the child's name (tags, state, metrics)
      url: http://10.0.0.5:8000        # optional: where its /metrics and /v1/models are read
      models: [llama-3-8b]             # base models it serves (none given: any model)
      adapters: [sql-lora]             # LoRA adapters it has loaded
      gpu: A100                        # heterogeneous fleets: the `slo` strategy's inputs
      cost_per_hour: 3.5
      profile: {...}                   # see slo.py
Without `pods`, n_branches / branch_names name children that serve any model.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Optional

from ...errors import ConfigError, UnknownModel, quote
from .._config import read_document
from .._params import children

POD_KEYS = ("name", "url", "models", "adapters", "gpu", "cost_per_hour", "profile")


@dataclass
class Pod:
    name: str
    url: Optional[str] = None
    models: Optional[frozenset] = None  # None: serves any model (nothing said or discovered)
    adapters: frozenset = frozenset()
    gpu: Optional[str] = None
    cost_per_hour: Optional[float] = None
    profile: Any = None
    extra: dict = field(default_factory=dict)


def _names(value, where: str) -> frozenset:
    if value is None:
        return frozenset()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where}: expected a list of names, got {value!r}")
    return frozenset(value)


def read_pods(pods: Any, pods_file: Optional[str], n_branches: Optional[int], branch_names) -> list[Pod]:
    if pods is None and pods_file is None:
        return [Pod(name) for name in children(n_branches, branch_names)]
    doc = read_document(pods, pods_file, "pods")
    if isinstance(doc, dict) and "pods" in doc:
        doc = doc["pods"]
    if not isinstance(doc, list) or not doc:
        raise ConfigError(f"pods: expected a non-empty list of pods, got {doc!r}")
    out = []
    for i, spec in enumerate(doc):
        where = f"pods[{i}]"
        if isinstance(spec, str):
            spec = {"name": spec}
        if not isinstance(spec, dict):
            raise ConfigError(f"{where}: expected a pod (an object with a name), got {spec!r}")
        unknown = sorted(set(spec) - set(POD_KEYS))
        if unknown:
            raise ConfigError(f"{where}: unknown field {unknown[0]!r}; a pod has {', '.join(POD_KEYS)}")
        name = spec.get("name")
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{where}.name: expected a name, got {name!r}")
        url = spec.get("url")
        if url is not None and (not isinstance(url, str) or not url.startswith(("http://", "https://"))):
            raise ConfigError(f"{where}.url: expected an http(s) URL, got {url!r}")
        cost = spec.get("cost_per_hour")
        if cost is not None and (isinstance(cost, bool) or not isinstance(cost, (int, float)) or cost < 0):
            raise ConfigError(f"{where}.cost_per_hour: expected a number >= 0, got {cost!r}")
        gpu = spec.get("gpu")
        if gpu is not None and not isinstance(gpu, str):
            raise ConfigError(f"{where}.gpu: expected a GPU type name, got {gpu!r}")
        models = spec.get("models")
        out.append(Pod(name, url, None if models is None else _names(models, f"{where}.models"),
                       _names(spec.get("adapters"), f"{where}.adapters"), gpu,
                       None if cost is None else float(cost), spec.get("profile")))
    names = [p.name for p in out]
    if len(set(names)) != len(names):
        raise ConfigError(f"pods: names must be unique, got {names}")
    if n_branches is not None and n_branches != len(out):
        raise ConfigError(f"n_branches: {n_branches} differs from the {len(out)} pods configured")
    if branch_names is not None:
        given = children(None, branch_names)
        if given != names:
            raise ConfigError(f"branch_names: {given} differs from the pods' names {names}")
    return out


class Catalog:
    """Which pods serve which model or LoRA adapter; refreshed from the pods' /v1/models
    (`update`), so the lists may change while serving."""

    def __init__(self, pods: list[Pod]):
        self.pods = pods
        self._lock = threading.Lock()
        self._build()

    def _build(self) -> None:
        index: dict[str, list[int]] = {}
        for i, pod in enumerate(self.pods):
            for name in (pod.models or frozenset()) | pod.adapters:
                index.setdefault(name, []).append(i)
        self._index = index
        self._any = [i for i, pod in enumerate(self.pods) if pod.models is None]
        self._all = list(range(len(self.pods)))

    def update(self, pod: int, models: Optional[frozenset], adapters: frozenset = frozenset()) -> None:
        with self._lock:
            self.pods[pod].models, self.pods[pod].adapters = models, adapters
            self._build()

    def candidates(self, model: Optional[str]) -> list[int]:
        """The pods serving `model` (a base model or a LoRA adapter): every pod when the
        request names none. A model no pod serves is UnknownModel (OpenAI's 404)."""
        if model is None:
            return self._all
        found = self._index.get(model)
        if found is None and not self._any:
            raise UnknownModel(f"model: {quote(model)} is not served here; models: {', '.join(self.models()) or 'none'}")
        if found is None:
            return self._any
        return sorted(set(found) | set(self._any)) if self._any else found

    def models(self) -> list[str]:
        return sorted(self._index)

    def is_adapter(self, model: str) -> bool:
        return any(model in p.adapters for p in self.pods)
