"""Fixtures for the classifier tests: the held-out digits (classifier_cases.py has the
models and the backend gate)."""

from __future__ import annotations

import numpy as np
import pytest

from classifier_cases import need


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
