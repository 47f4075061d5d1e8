"""Model backends for the classifier router: TorchScript (PyTorch), ONNX (ONNX Runtime), a
Python callable, and, only with trust_pickle, a pickled model.

Every backend takes a numpy batch of the model's dtype and returns (N, C) float scores
as numpy. torch and onnxruntime are imported here, inside the loaders, only when such a
model is loaded: importing seldon_routers never pays for them. Models load only from a
local path the operator configured; pickles (which run code when read) are refused
unless trust_pickle is set.
"""

from __future__ import annotations

import json
import os
import re
import warnings
import zipfile
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import numpy as np

from ...errors import ConfigError

PICKLE_EXTENSIONS = (".pkl", ".pickle", ".joblib")
EXTENSIONS = {".pt": "torchscript", ".pth": "torchscript", ".ts": "torchscript", ".onnx": "onnx",
              **{ext: "pickle" for ext in PICKLE_EXTENSIONS}}
BACKENDS = ("auto", "torchscript", "onnx", "pickle", "callable")
DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
# A TorchScript file may carry this extra file: {"input_shape": [1, 8, 8], "labels": [...]}.
META_FILE = "seldon_routers.json"
_ONNX_DTYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16}


@dataclass
class Loaded:
    """A loaded model: predict(batch) -> (N, C) scores; what it says about its input."""

    predict: Callable[[np.ndarray], np.ndarray]
    backend: str
    device: str
    dtype: Any = np.float32
    input_shape: Optional[tuple] = None  # per row, read from the model; None when it cannot tell
    labels: Optional[list] = None
    info: dict = field(default_factory=dict)
    max_rows: Optional[int] = None  # the most rows per call (an ONNX input's fixed batch size); None: any


def check_path(model_path: str, backend: str, trust_pickle: bool) -> str:
    """The backend for a local model file; refuses URLs, missing files and untrusted pickles."""
    if URL.match(model_path):
        raise ConfigError(f"model_path: {model_path!r} is a URL; the classifier loads only local files the "
                          "operator configured (download the model into the image or a mounted volume)")
    if not os.path.isfile(model_path):
        raise ConfigError(f"model_path: no such file {model_path!r} (relative to {os.getcwd()})")
    if backend == "auto":
        ext = os.path.splitext(model_path)[1].lower()
        if ext not in EXTENSIONS:
            raise ConfigError(f"model_path: cannot tell the backend from {ext or 'no extension'!r} "
                              f"({', '.join(EXTENSIONS)}); set backend to torchscript or onnx")
        backend = EXTENSIONS[ext]
    if backend == "torchscript" and not _is_torchscript(model_path):
        backend = "pickle"  # a torch.save'd module (a pickle in a zip, or a bare pickle)
    if backend == "pickle" and not trust_pickle:
        raise ConfigError(f"model_path: {model_path!r} is a pickle (or a torch.save'd module), refused: "
                          "unpickling runs arbitrary code. Export it as TorchScript or ONNX, or set "
                          "trust_pickle=true if you trust this file")
    if backend == "callable":
        raise ConfigError("backend: 'callable' needs `model` (a Python callable), not model_path")
    return backend


def _is_torchscript(path: str) -> bool:
    """TorchScript archives hold code/ and constants.pkl; torch.save archives do not."""
    try:
        with zipfile.ZipFile(path) as z:
            return any("/code/" in n or n.endswith("constants.pkl") for n in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


def load(backend: str, model_path: Optional[str], model: Any, device: str) -> Loaded:
    if backend == "callable":
        return load_callable(model, device)
    assert model_path is not None
    return {"torchscript": load_torchscript, "onnx": load_onnx, "pickle": load_pickle}[backend](model_path, device)


def load_callable(model: Any, device: str, backend: str = "callable") -> Loaded:
    if device not in ("auto", "cpu"):
        raise ConfigError(f"device: {device!r} means nothing to a Python callable model (it takes numpy); "
                          "leave device=auto")
    predict = getattr(model, "predict_proba", None) if not callable(model) else model
    if predict is None:
        raise ConfigError(f"model: {type(model).__name__} is neither callable nor has predict_proba")
    shape = getattr(model, "input_shape", None)
    labels = getattr(model, "labels", None)
    return Loaded(lambda batch: np.asarray(predict(batch)), backend, "cpu",
                  input_shape=tuple(shape) if shape is not None else None,
                  labels=list(labels) if labels is not None else None,
                  info={"probabilities": predict is not model})


def _import(name: str, extra: str):
    try:
        return __import__(name)
    except ImportError as exc:
        raise ConfigError(f"backend: this model needs {name} ({exc}): pip install 'seldon-routers[{extra}]'") from None


def torch_device(torch, device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"device: {device!r} asked for, but PyTorch sees no CUDA device "
                              f"(torch {torch.__version__}, built for CUDA {torch.version.cuda})")
        index = int(device.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise ConfigError(f"device: {device!r}, but only {torch.cuda.device_count()} CUDA device(s)")
    return device


def _torch_predict(torch, module, device: str):
    module.eval()
    dev = torch.device(device)

    def predict(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            x = torch.from_numpy(batch).to(dev, non_blocking=True)  # to the device once per batch
            out = module(x)
            return out.float().cpu().numpy()

    return predict


def _torch_dtype(module) -> Any:
    for p in module.parameters():
        return {"torch.float64": np.float64, "torch.float16": np.float16}.get(str(p.dtype), np.float32)
    return np.float32


def load_torchscript(path: str, device: str) -> Loaded:
    torch = _import("torch", "torch")
    dev = torch_device(torch, device)
    extra = {META_FILE: ""}
    try:
        with warnings.catch_warnings():  # torch >= 2.10 deprecates TorchScript; loading it still works
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(path, map_location=dev, _extra_files=extra)
    except Exception as exc:
        raise ConfigError(f"model_path: {path!r} is not a loadable TorchScript file: {exc}") from None
    meta = json.loads(extra[META_FILE]) if extra[META_FILE] else {}
    shape = meta.get("input_shape")
    return Loaded(_torch_predict(torch, module, dev), "torchscript", dev, _torch_dtype(module),
                  tuple(shape) if shape else None, meta.get("labels"), {"torch": torch.__version__})


def onnx_providers(device: str, available: list) -> list:
    """The execution providers to ask ONNX Runtime for, from `device` and what this build
    offers (onnxruntime.get_available_providers()): CUDA first when onnxruntime-gpu offers
    it and the device is auto or cuda[:N], then the CPU; cuda without it is a ConfigError."""
    if device.startswith("cuda") and "CUDAExecutionProvider" not in available:
        raise ConfigError(f"device: {device!r} asked for, but ONNX Runtime has no CUDA provider "
                          f"(available: {', '.join(available)}; install onnxruntime-gpu)")
    index = int(device.partition(":")[2] or 0) if device.startswith("cuda") else 0
    ask_cuda = "CUDAExecutionProvider" in available and device != "cpu"
    return ([("CUDAExecutionProvider", {"device_id": index})] if ask_cuda else []) + ["CPUExecutionProvider"]


def load_onnx(path: str, device: str) -> Loaded:
    ort = _import("onnxruntime", "onnx")
    providers = onnx_providers(device, ort.get_available_providers())
    index = providers[0][1]["device_id"] if isinstance(providers[0], tuple) else 0
    try:
        session = ort.InferenceSession(path, providers=providers)
    except Exception as exc:
        raise ConfigError(f"model_path: {path!r} is not a loadable ONNX model: {exc}") from None
    active = session.get_providers()  # ONNX Runtime drops a provider it cannot start (no driver, say)
    on_cuda = "CUDAExecutionProvider" in active
    if device.startswith("cuda") and not on_cuda:
        raise ConfigError(f"device: {device!r} asked for, but ONNX Runtime could not start its CUDA provider "
                          f"(active: {', '.join(active)}; check the CUDA and cuDNN libraries onnxruntime-gpu needs)")
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise ConfigError(f"model_path: the classifier takes a model with one input; {path!r} has "
                          f"{[i.name for i in inputs]}")
    name = inputs[0].name
    batch_dim, dims = inputs[0].shape[0], inputs[0].shape[1:]
    shape = tuple(dims) if all(isinstance(d, int) for d in dims) else None
    fixed = batch_dim if isinstance(batch_dim, int) and batch_dim > 0 else None  # else symbolic: any size
    dtype = _ONNX_DTYPES.get(inputs[0].type)
    if dtype is None:
        raise ConfigError(f"model_path: the model's input {name!r} is {inputs[0].type}; the classifier "
                          "feeds float tensors")
    labels = session.get_modelmeta().custom_metadata_map.get("labels")
    run = session.run

    def predict(batch: np.ndarray) -> np.ndarray:
        if fixed is not None and len(batch) < fixed:  # a fixed batch size: pad with zero rows, drop their scores
            pad = np.zeros((fixed - len(batch), *batch.shape[1:]), batch.dtype)
            return run(None, {name: np.concatenate([batch, pad])})[0][:len(batch)]
        return run(None, {name: batch})[0]

    info = {"onnxruntime": ort.__version__, "providers": active}
    if fixed is not None:
        info["fixed_batch_size"] = fixed
    return Loaded(predict, "onnx", f"cuda:{index}" if on_cuda else "cpu", dtype, shape,
                  json.loads(labels) if labels else None, info, max_rows=fixed)


def load_pickle(path: str, device: str) -> Loaded:
    """Only reached with trust_pickle: a torch.save'd module, or a pickled/joblib'd model."""
    if _is_torch_archive(path):
        torch = _import("torch", "torch")
        dev = torch_device(torch, device)
        module = torch.load(path, map_location=dev, weights_only=False)
        return Loaded(_torch_predict(torch, module, dev), "pickle", dev, _torch_dtype(module),
                      labels=getattr(module, "labels", None))
    if path.lower().endswith(".joblib"):
        obj = _import("joblib", "joblib").load(path)
    else:
        import pickle

        with open(path, "rb") as f:
            obj = pickle.load(f)  # noqa: S301 - the operator set trust_pickle
    return load_callable(obj, device, "pickle")


def _is_torch_archive(path: str) -> bool:
    try:
        with zipfile.ZipFile(path) as z:
            return any(n.endswith("data.pkl") for n in z.namelist())
    except (zipfile.BadZipFile, OSError):
        with open(path, "rb") as f:  # torch's legacy (non-zip) format starts with a pickle
            return f.read(2) == b"\x80\x02" and path.lower().endswith((".pt", ".pth"))
