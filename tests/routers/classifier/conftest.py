"""Fixtures for the classifier tests: the committed digits models and their held-out
digits. Tests that need torch, onnxruntime or scikit-learn skip without them on a user's
machine, and fail where SELDON_ROUTERS_REQUIRE_MODELS=1 (CI), so CI is never green by skipping."""

from __future__ import annotations

import importlib
import os
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)  # classifier_models.py: picklable toy models, importable by a served router
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
DIGITS = os.path.join(ROOT, "examples", "digits-router")
MODELS = {"torchscript": os.path.join(DIGITS, "model.pt"), "onnx": os.path.join(DIGITS, "model.onnx")}
SPECIALISTS = [0] * 5 + [1] * 5  # digits 0-4 -> child 0, 5-9 -> child 1, as the example's graph


def need(module: str, extra: str):
    """The module, or a skip (a failure where SELDON_ROUTERS_REQUIRE_MODELS=1)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        reason = f"{module} is not installed ({exc}): pip install 'seldon-routers[{extra}]'"
        if os.environ.get("SELDON_ROUTERS_REQUIRE_MODELS") == "1":
            pytest.fail(f"{reason} (SELDON_ROUTERS_REQUIRE_MODELS=1: the model backends are required)", pytrace=False)
        pytest.skip(reason)


def need_backend(backend: str):
    return need("torch", "torch") if backend == "torchscript" else need("onnxruntime", "onnx")


@pytest.fixture(scope="session")
def heldout():
    """The held-out quarter of scikit-learn's bundled digits, split as train.py splits it."""
    need("sklearn", "test")
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    _, x_test, _, y_test = train_test_split(x.astype(np.float32).reshape(-1, 1, 8, 8), y, test_size=0.25,
                                            random_state=0, stratify=y)
    return x_test, y_test
