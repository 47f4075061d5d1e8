"""Toy models for the classifier tests: picklable (module-level), and importable by a
router served in a subprocess (PYTHONPATH=this folder)."""

from __future__ import annotations

import os
import time

import numpy as np

from seldon_routers.routers.classifier import ClassifierRouter


class Linear:
    """Scores = x @ weights (a callable, so also a valid pickled model)."""

    def __init__(self, weights):
        self.weights = np.asarray(weights, dtype=np.float32)

    def __call__(self, batch):
        return batch.reshape(len(batch), -1) @ self.weights


def one_hot_model(n_classes: int = 4, scale: float = 5.0) -> Linear:
    """Row e_k (times anything positive) is class k, with probability growing with scale."""
    return Linear(np.eye(n_classes) * scale)


class GatedModel:
    """Answers only once the file named by $GATE exists: a warm-up that blocks until the test
    lets it through."""

    def __init__(self, gate: str):
        self.gate = gate

    def __call__(self, batch):
        while not os.path.exists(self.gate):
            time.sleep(0.01)
        return np.eye(4, dtype=np.float32)[np.zeros(len(batch), dtype=int)] * 5


class GatedClassifier(ClassifierRouter):
    """`seldon-router serve classifier_models.GatedClassifier`: a classifier whose warm-up waits
    for $GATE."""

    def __init__(self, max_batch_size: int = 8):
        super().__init__(model=GatedModel(os.environ["GATE"]), input_shape="4", max_batch_size=max_batch_size)


class LinearClassifier(ClassifierRouter):
    """`seldon-router serve classifier_models.LinearClassifier`: no torch or onnxruntime needed."""

    def __init__(self, max_batch_size: int = 32, min_confidence: float = 0.0):
        super().__init__(model=one_hot_model(), input_shape="4", class_to_child=[0, 0, 1, 1],
                         branch_names="low:high", max_batch_size=max_batch_size,
                         min_confidence=min_confidence, fallback=-1 if min_confidence else None)
