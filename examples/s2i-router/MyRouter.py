"""A user's router for the s2i builder: each distinct request (its feature values) goes to
one child, always the same, by a murmur hash: a sticky split without any state."""

import mmh3
import numpy as np

from seldon_routers import Router


class MyRouter(Router):
    def __init__(self, n_branches: int = 2):
        super().__init__()
        self.n_children = n_branches

    def route(self, features, feature_names, **kwargs):
        key = np.ascontiguousarray(features, dtype=np.float64).tobytes()
        return mmh3.hash(key, 0, signed=False) % self.n_children
