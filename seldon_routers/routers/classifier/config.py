"""The classifier's parameters, read once at start-up (docs/classifier.md): the model and
its backend, inputs, the class -> child mapping, confidence fallback and batching. The
children may be known only once the model has said how many classes it scores, so the
mapping is checked again then (`check_children`)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Optional

from ...errors import ConfigError
from .._params import child, children, choice, fraction, items, json_text, number, optional, positive_int
from . import backends, images

_INT = re.compile(r"^-?\d+$")


@dataclass
class ClassifierConfig:
    model_path: Optional[str]
    model: Optional[Callable]
    backend: str  # resolved: torchscript, onnx, pickle or callable
    device: str
    inputs: str  # tensor, text or image
    input_shape: Optional[tuple]
    labels: Optional[list]
    class_to_child: Optional[dict]  # class index or label -> child
    branch_names: Optional[list]  # None: one child per class, known once the model loads
    hint: str  # said with a child error when the children were inferred from the labels
    min_confidence: float
    fallback: Optional[int]
    output: str
    max_batch_size: int
    max_batch_delay_ms: float
    trust_pickle: bool
    warmup: bool
    max_request_rows: int
    image: Optional[Any] = None  # images.ImageSpec with inputs=image


def shape(value, field: str) -> Optional[tuple]:
    """'1,8,8', '1x8x8', a JSON list or a list: positive ints, per row (no batch dim)."""
    if value is None:
        return None
    parts = value
    if isinstance(value, str):
        text = value.strip().strip("()")
        parts = json_text(text, field) if text.startswith("[") else [s for s in re.split(r"[,x\s]+", text) if s]
    try:
        dims = tuple(int(v) for v in parts)
    except (TypeError, ValueError):
        dims = ()
    if not dims or any(d < 1 for d in dims):
        raise ConfigError(f"{field}: expected positive integers per row, like 1,8,8, got {value!r}")
    return dims


def mapping(value, names: Optional[list]) -> Optional[dict]:
    """class_to_child as {class index or label: child index}."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        value = json_text(text, "class_to_child") if text.startswith("{") else items(text, "class_to_child")
    if isinstance(value, (list, tuple)):
        value = dict(enumerate(value))
    if not isinstance(value, dict) or not value:
        raise ConfigError(f"class_to_child: expected a JSON object or list (class -> child), got {value!r}")
    out = {}
    for key, ref in value.items():
        key = int(key) if isinstance(key, int) or _INT.match(str(key).strip()) else str(key)
        out[key] = child(ref, names, f"class_to_child[{key!r}]", special=True)
    return out


def check_children(fallback: Optional[int], class_to_child: Optional[dict], names: Optional[list],
                   hint: str = "") -> None:
    """fallback and class_to_child name children that exist, once the children are known."""
    if names is None:
        return
    try:
        if fallback is not None:
            child(fallback, names, "fallback", special=True)
        for key, ref in (class_to_child or {}).items():
            child(ref, names, f"class_to_child[{key!r}]", special=True)
    except ConfigError as exc:
        raise ConfigError(exc.message + hint) from None


def read(model_path, model, backend, device, input_shape, labels, class_to_child, branch_names, n_branches,
         min_confidence, fallback, output, max_batch_size, max_batch_delay_ms, trust_pickle, warmup, inputs,
         max_request_rows, **image_params) -> ClassifierConfig:
    if (model_path is None) == (model is None):
        raise ConfigError("model_path: give a model file (model_path) or, from Python, a callable "
                          "(model); exactly one")
    choice(backend, "backend", backends.BACKENDS)
    if model is not None:
        if backend not in ("auto", "callable"):
            raise ConfigError(f"backend: {backend!r} needs model_path; `model` is a Python callable")
        backend = "callable"
    else:
        backend = backends.check_path(model_path, backend, trust_pickle)
    choice(inputs, "inputs", ("tensor", "text", "image"))
    if inputs == "text" and backend in ("torchscript", "onnx"):
        raise ConfigError(f"inputs: text needs a model that takes strings (a Python callable, or a trusted "
                          f"pickle such as a scikit-learn text pipeline); a {backend} model takes tensors")
    if inputs != "tensor" and input_shape is not None:
        raise ConfigError("input_shape: only for inputs=tensor; " + (
            "a text row is one string" if inputs == "text" else "an image's row shape is image_size, color_mode "
                                                                "and layout (or the model's input)"))
    image = read_image(inputs, image_params)
    if not isinstance(device, str) or not backends.DEVICE.match(device):
        raise ConfigError(f"device: expected auto, cpu, cuda or cuda:N, got {device!r}")
    choice(output, "output", ("logits", "probabilities"))
    min_confidence = fraction(min_confidence, "min_confidence")
    names = children(n_branches, branch_names) if (n_branches, branch_names) != (None, None) else None
    labels = optional(items, labels, "labels")
    class_to_child = mapping(class_to_child, names)
    fallback = None if fallback is None else child(fallback, names, "fallback", special=True)
    if min_confidence > 0 and fallback is None:
        raise ConfigError(f"fallback: min_confidence={min_confidence:g} needs a fallback child (an index, a "
                          "name, -1 for all children or -2 for none)")
    if names is None and class_to_child is not None:
        used = list(class_to_child.values()) + [-1 if fallback is None else fallback]
        names = [str(i) for i in range(max(used) + 1)] if max(used) >= 0 else None
    hint = ""
    if names is None and labels is not None:  # identity: one child per class
        names = [str(i) for i in range(len(labels))]
        hint = " (one child per label; set n_branches or branch_names for more)"
    check_children(fallback, class_to_child, names, hint)
    return ClassifierConfig(
        model_path, model, backend, device, inputs, shape(input_shape, "input_shape"), labels, class_to_child,
        names, hint, min_confidence, fallback, output, positive_int(max_batch_size, "max_batch_size"),
        number(max_batch_delay_ms, "max_batch_delay_ms", 0.0, 1000.0), trust_pickle, warmup,
        positive_int(max_request_rows, "max_request_rows"), image)


def read_image(inputs: str, params: dict) -> Optional[images.ImageSpec]:
    """The image parameters (images.IMAGE_PARAMS), only with inputs=image."""
    if inputs != "image":
        given = [name for name in images.IMAGE_PARAMS if params.get(name) is not None]
        if given:
            raise ConfigError(f"{given[0]}: only for inputs=image (inputs is {inputs})")
        return None
    params = dict(params)
    size = params.pop("image_size", None)
    size = (size,) if isinstance(size, int) and not isinstance(size, bool) else size  # 224, as Seldon's INT
    return images.read_spec(shape(size, "image_size"), **params)
