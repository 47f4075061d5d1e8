"""The TorchScript and ONNX backends on the committed digits models: known digits go to the
right specialist, the input shape is read from the model, devices are chosen (auto -> CUDA
when there is one), pickles are refused unless trusted. A GPU test runs where CUDA is."""

from __future__ import annotations

import json
import logging
import pickle

import numpy as np
import pytest

from classifier_cases import MODELS, SPECIALISTS, need, need_backend
from classifier_models import one_hot_model
from seldon_routers import ClassifierRouter
from seldon_routers.errors import BadRequest, ConfigError
from seldon_routers.routers.classifier import backends

BACKENDS = list(MODELS)


def digits_router(backend: str, **kwargs) -> ClassifierRouter:
    need_backend(backend)
    router = ClassifierRouter(model_path=MODELS[backend], class_to_child=SPECIALISTS, **kwargs)
    router.load()
    return router


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


@pytest.mark.parametrize("backend", BACKENDS)
def test_known_digits_go_to_the_right_specialist(backend, heldout):
    x, y = heldout
    router = digits_router(backend)
    assert router.backend == backend and router.input_shape == (1, 8, 8)  # read from the model file
    decisions = [router.classify(x[i:i + 1]) for i in range(len(x))]
    routed = np.mean([d.child == SPECIALISTS[t] for d, t in zip(decisions, y)])
    classified = np.mean([d.tags["class"] == t for d, t in zip(decisions, y)])
    assert routed >= 0.95 and classified >= 0.9, (routed, classified)
    assert all(d.tags["route"] == d.child and d.tags["branch"] == str(d.child) for d in decisions)


@pytest.mark.parametrize("backend", BACKENDS)
def test_flat_rows_and_batched_requests(backend, heldout):
    x, y = heldout
    router = digits_router(backend)
    one_by_one = [router.classify(x[i:i + 1]).tags["class"] for i in range(20)]
    flat = [router.classify(x[i:i + 1].reshape(1, 64)).tags["class"] for i in range(20)]
    assert one_by_one == flat
    sevens = x[y == 7][:5]
    assert router.classify(sevens).tags["class"] == 7 and router.classify(sevens).child == 1


def test_torchscript_and_onnx_agree(heldout):
    x, _ = heldout
    ts, ox = digits_router("torchscript"), digits_router("onnx")
    for i in range(0, len(x), 15):
        a, b = ts.classify(x[i:i + 1]), ox.classify(x[i:i + 1])
        assert a.tags["class"] == b.tags["class"]
        assert a.tags["probability"] == pytest.approx(b.tags["probability"], abs=1e-4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_scores_that_overflow_go_to_the_fallback_or_are_a_bad_request(backend, heldout):
    x, y = heldout
    huge = np.full((1, 64), 3e38, np.float32)  # finite inputs the CNN overflows on: NaN probabilities
    router = digits_router(backend, min_confidence=0.6, fallback=-1)
    d = router.classify(huge)
    assert (d.child, d.tags["class"], d.tags["probability"], d.tags["fallback"]) == (-1, None, None, True)
    json.dumps(d.tags, allow_nan=False)
    assert router.classify(x[:1]).tags["class"] == y[0]  # the others route as before
    with pytest.raises(BadRequest, match="the model's scores for these features are not finite"):
        digits_router(backend).classify(huge)


def fixed_batch_onnx(path, batch: int, classes: int = 4) -> str:
    """A tiny ONNX model whose input has a fixed batch size (what torch.onnx.export gives
    without dynamic_axes): scores = x @ (5 * I)."""
    onnx = need("onnx", "onnx")
    from onnx import TensorProto, helper, numpy_helper

    weights = numpy_helper.from_array(np.eye(4, classes, dtype=np.float32) * 5, "W")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["scores"])], "fixed",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 4])],
                              [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [batch, classes])], [weights])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return str(path)


@pytest.mark.parametrize("batch", [1, 3])
def test_an_onnx_model_with_a_fixed_batch_size_caps_the_batches(tmp_path, caplog, batch):
    need("onnxruntime", "onnx")
    path = fixed_batch_onnx(tmp_path / "fixed.onnx", batch)
    router = ClassifierRouter(model_path=path)  # warm-up with 1 and max_batch_size rows: both must run
    with caplog.at_level(logging.INFO, logger="seldon_routers"):
        router.load()
    assert f"max_batch_size 32 capped to {batch}, the model's fixed batch size" in caplog.text
    state = router.state()
    assert state["batching"]["max_batch_size"] == batch and state["runtime"]["fixed_batch_size"] == batch
    assert router.classify(np.eye(4)[2:3]).child == 2  # fewer rows than the fixed size: padded
    assert router.classify(np.eye(4)[:batch][::-1]).tags["class"] in range(4)
    futures = [router._submit(np.eye(4)[k % 4:k % 4 + 1]) for k in range(8)]  # batched by the worker
    assert [f.result(timeout=5).child for f in futures] == [k % 4 for k in range(8)]
    with pytest.raises(BadRequest, match=f"{batch + 1} rows in one request, but the model's fixed batch size "
                                         f"is {batch}"):
        router.classify(np.ones((batch + 1, 4)))


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_declared_input_shape_must_match_the_model(backend):
    need_backend(backend)  # ONNX declares its input; train.py writes TorchScript's into an extra file
    with pytest.raises(ConfigError, match=r"input_shape: \(64,\) given, but the model takes \(1, 8, 8\)"):
        ClassifierRouter(model_path=MODELS[backend], input_shape="64", class_to_child=SPECIALISTS).load()


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")  # TorchScript, deprecated since torch 2.10
def test_torchscript_without_a_declared_shape_needs_input_shape(tmp_path):
    torch = need("torch", "torch")
    path = tmp_path / "bare.pt"
    torch.jit.save(torch.jit.script(torch.nn.Linear(4, 3)), str(path))
    with pytest.raises(ConfigError, match="input_shape: the torchscript model does not say"):
        ClassifierRouter(model_path=str(path)).load()
    router = ClassifierRouter(model_path=str(path), input_shape="4", n_branches=3)
    router.load()
    assert router.classify(np.ones((2, 4))).child in (0, 1, 2)


@pytest.mark.parametrize("backend", BACKENDS)
def test_device_auto_picks_cuda_when_there_is_one_else_cpu(backend):
    router = digits_router(backend)
    expected = "cuda" if backend == "torchscript" and cuda_available() else "cpu"
    assert router.device.startswith(expected) and router.state()["device"] == router.device
    assert digits_router(backend, device="cpu").device == "cpu"


def test_onnx_reports_the_provider_it_really_runs_on(monkeypatch):
    ort = need("onnxruntime", "onnx")
    real = ort.get_available_providers()
    if "CUDAExecutionProvider" in real:
        pytest.skip("onnxruntime has a CUDA provider here")
    session = ort.InferenceSession

    def falls_back(path, providers):  # a CUDA provider that does not start: ONNX Runtime runs on the CPU
        return session(path, providers=[p for p in providers if (p[0] if isinstance(p, tuple) else p) in real])

    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", *real])
    monkeypatch.setattr(ort, "InferenceSession", falls_back)
    router = digits_router("onnx")
    assert router.device == "cpu" and router.state()["runtime"]["providers"] == ["CPUExecutionProvider"]
    with pytest.raises(ConfigError, match=r"device: 'cuda' asked for, but ONNX Runtime could not start its CUDA "
                                          r"provider \(active: CPUExecutionProvider"):
        ClassifierRouter(model_path=MODELS["onnx"], class_to_child=SPECIALISTS, device="cuda").load()


CUDA_EP = [("CUDAExecutionProvider", {"device_id": 0})]


@pytest.mark.parametrize("device, available, providers", [
    ("auto", ["CUDAExecutionProvider", "CPUExecutionProvider"], CUDA_EP + ["CPUExecutionProvider"]),
    ("auto", ["CPUExecutionProvider"], ["CPUExecutionProvider"]),
    ("cpu", ["CUDAExecutionProvider", "CPUExecutionProvider"], ["CPUExecutionProvider"]),
    ("cuda", ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
     CUDA_EP + ["CPUExecutionProvider"]),
    ("cuda:1", ["CUDAExecutionProvider", "CPUExecutionProvider"],
     [("CUDAExecutionProvider", {"device_id": 1}), "CPUExecutionProvider"]),
])
def test_onnx_provider_choice(device, available, providers):
    assert backends.onnx_providers(device, available) == providers


def test_onnx_provider_choice_on_this_onnxruntime():
    """What device=auto asks this build for: onnxruntime-gpu lists CUDAExecutionProvider, and
    then it comes first; onnxruntime (CPU) does not."""
    ort = need("onnxruntime", "onnx")
    available = ort.get_available_providers()
    asked = backends.onnx_providers("auto", available)
    assert (asked[0] == CUDA_EP[0]) == ("CUDAExecutionProvider" in available) and asked[-1] == "CPUExecutionProvider"
    if "CUDAExecutionProvider" not in available:
        with pytest.raises(ConfigError, match=r"device: 'cuda:0' asked for, but ONNX Runtime has no CUDA provider "
                                              r"\(available: .*; install onnxruntime-gpu\)"):
            backends.onnx_providers("cuda:0", available)


@pytest.mark.skipif(cuda_available(), reason="this machine has CUDA: asking for it is valid")
@pytest.mark.parametrize("backend", BACKENDS)
def test_explicit_cuda_without_cuda_is_a_config_error(backend):
    need_backend(backend)
    if backend == "onnx":
        import onnxruntime

        if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
            pytest.skip("onnxruntime has a CUDA provider here")
    with pytest.raises(ConfigError, match=r"device: 'cuda' asked for, but .* (no CUDA|has no CUDA provider)"):
        ClassifierRouter(model_path=MODELS[backend], class_to_child=SPECIALISTS, device="cuda").load()


@pytest.mark.skipif(not cuda_available(), reason="no CUDA device: the GPU test runs where PyTorch sees one")
def test_on_the_gpu_the_digits_route_as_on_the_cpu(heldout):
    x, y = heldout
    gpu, cpu = digits_router("torchscript", device="cuda"), digits_router("torchscript", device="cpu")
    assert gpu.device == "cuda"
    for i in range(0, len(x), 5):
        a, b = gpu.classify(x[i:i + 1]), cpu.classify(x[i:i + 1])
        assert a.child == b.child and a.tags["class"] == b.tags["class"]
        assert a.tags["probability"] == pytest.approx(b.tags["probability"], abs=1e-3)


# --- pickles -------------------------------------------------------------------------------

def test_a_pickle_is_refused_unless_trusted(tmp_path):
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(one_hot_model()))
    with pytest.raises(ConfigError, match="model_path: .* is a pickle .* refused: unpickling runs arbitrary code"):
        ClassifierRouter(model_path=str(path), input_shape="4")
    router = ClassifierRouter(model_path=str(path), input_shape="4", trust_pickle=True)
    router.load()
    assert router.backend == "pickle" and router.classify(np.eye(4)[2:3]).child == 2


def test_a_pickle_with_predict_proba_is_used_as_probabilities(tmp_path):
    need("sklearn", "test")
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    model = LogisticRegression().fit(x, (x[:, 0] > 0).astype(int))
    path = tmp_path / "model.pickle"
    path.write_bytes(pickle.dumps(model))
    router = ClassifierRouter(model_path=str(path), input_shape="3", trust_pickle=True)
    router.load()
    assert router.output == "probabilities"
    d = router.classify(np.array([[3.0, 0, 0]]))
    assert d.child == 1 and d.tags["probability"] == pytest.approx(model.predict_proba([[3.0, 0, 0]])[0, 1], rel=1e-5)


@pytest.mark.parametrize("name", ["module.pt", "module.pth"])
def test_a_torch_saved_module_is_refused_unless_trusted(tmp_path, name):
    torch = need("torch", "torch")
    path = tmp_path / name
    torch.save(torch.nn.Linear(4, 3), str(path))  # a pickle inside a zip, not TorchScript
    with pytest.raises(ConfigError, match="is a pickle \\(or a torch.save'd module\\), refused"):
        ClassifierRouter(model_path=str(path), input_shape="4", n_branches=3)
    router = ClassifierRouter(model_path=str(path), input_shape="4", n_branches=3, trust_pickle=True)
    router.load()
    assert router.backend == "pickle" and router.classify(np.ones((1, 4))).child in (0, 1, 2)


def test_unknown_extension_needs_a_backend(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(b"\0")
    with pytest.raises(ConfigError, match="model_path: cannot tell the backend from '.bin'"):
        ClassifierRouter(model_path=str(path))
    with pytest.raises(ConfigError, match="is a pickle"):  # not a TorchScript archive: treated as a pickle
        ClassifierRouter(model_path=str(path), backend="torchscript")


def test_a_broken_onnx_file_is_a_config_error(tmp_path):
    need("onnxruntime", "onnx")
    path = tmp_path / "model.onnx"
    path.write_bytes(b"not onnx")
    with pytest.raises(ConfigError, match="model_path: .* is not a loadable ONNX model"):
        ClassifierRouter(model_path=str(path), input_shape="4").load()
