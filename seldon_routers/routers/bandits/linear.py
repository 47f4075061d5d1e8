"""`lin-ucb`: a contextual bandit over the request's numeric features (Li et al. 2010)."""

from __future__ import annotations

from typing import Optional, Union

import numpy as np

from ...errors import BadRequest, ConfigError
from ...request import Request
from .._params import number, optional, positive_int
from .base import Bandit


MAX_FEATURE = 1e6  # larger values overflow the rank-one updates and poison the model
# Columns at most: the model holds two d x d matrices per arm (1,024: 16 MB an arm), and an
# unconfigured width is taken from the first request, which must not size them at will.
MAX_FEATURES = 1024


class LinUCB(Bandit):
    """Disjoint LinUCB: each arm's expected reward is linear in the context x (the
    request's features: one row, or the mean row of a batch). Routes to the arm with
    the highest theta.x + alpha * sqrt(x' A^-1 x). n_features fixes the width (default:
    the first request's); a request of another width is a 400. Discount and window are
    not supported (use the Bernoulli routers for drifting rewards)."""

    name = "lin-ucb"
    reads_features = True
    reward_range = None  # any finite reward

    def __init__(self, n_branches: Optional[int] = None, alpha: float = 1.0, ridge: float = 1.0,
                 n_features: Optional[int] = None, seed: Optional[int] = None,
                 branch_names: Union[str, list, None] = None, min_share: Optional[float] = None,
                 max_share: Optional[float] = None, dedupe: int = 100_000):
        super().__init__(n_branches, branch_names, seed, None, None, min_share, max_share, dedupe)
        self.alpha, self.ridge = number(alpha, "alpha", 0.0), number(ridge, "ridge", 0.0, lo_open=True)
        self.n_features = n_features = optional(positive_int, n_features, "n_features")
        if n_features is not None and n_features > MAX_FEATURES:
            raise ConfigError(f"n_features: at most {MAX_FEATURES:,} columns, got {n_features:,}")
        if n_features:
            self._init_model(n_features)

    def _init_model(self, d: int) -> None:
        self.n_features = d
        k = self.n_children
        self.a_inv = np.stack([np.eye(d) / self.ridge] * k)  # (k, d, d)
        self.xx = np.zeros((k, d, d))  # sum of x x' (additive: what stores keep and merge)
        self.b = np.zeros((k, d))  # sum of reward * x
        self.theta = np.zeros((k, d))

    def context_of(self, request: Request) -> np.ndarray:
        x = request.features
        if not isinstance(x, np.ndarray) or x.dtype.kind not in "fiub" or x.size == 0:
            raise BadRequest("features: lin-ucb needs numeric tensor data (ndarray, tensor or tftensor), "
                             f"got {type(x).__name__}")
        x = x.astype(np.float64).reshape(len(x), -1) if x.ndim > 1 else x.astype(np.float64).reshape(1, -1)
        if not np.isfinite(x).all() or np.abs(x).max() > MAX_FEATURE:
            raise BadRequest(f"features: must be finite numbers within +-{MAX_FEATURE:g}")
        if x.shape[1] > MAX_FEATURES:
            raise BadRequest(f"features: at most {MAX_FEATURES:,} numeric columns per row, got {x.shape[1]:,}")
        with self.lock:
            if self.n_features is None:
                self._init_model(x.shape[1])
        if x.shape[1] != self.n_features:
            raise BadRequest(f"features: expected {self.n_features} numeric columns per row, got {x.shape[1]}")
        return x

    def scores(self, x: np.ndarray) -> np.ndarray:
        ctx = x.mean(axis=0)
        spread = np.einsum("i,kij,j->k", ctx, self.a_inv, ctx)
        return self.theta @ ctx + self.alpha * np.sqrt(np.maximum(spread, 0.0))

    def choose(self, request: Request) -> tuple[int, float]:
        scores = self.scores(self.context_of(request))
        if not np.isfinite(scores).all():
            raise BadRequest("features: too large for the model to score")
        best = np.flatnonzero(scores == scores.max())
        arm = int(best[int(self.rng.random() * len(best))])
        return arm, 1.0 / len(best)

    def choose_probability(self, request: Request, arm: int) -> float:
        scores = self.scores(self.context_of(request))
        best = np.flatnonzero(scores == scores.max())
        return float(arm in best) / len(best)

    def _update(self, arm, successes, trials, context) -> None:
        reward = successes / trials if trials else 0.0
        a_inv, b = self.a_inv[arm].copy(), self.b[arm].copy()
        with np.errstate(over="ignore", invalid="ignore"):  # an overflow is refused below, not warned of
            for x in context:  # Sherman-Morrison: one rank-one update per row
                ax = a_inv @ x
                a_inv -= np.outer(ax, ax) / (1.0 + x @ ax)
                b += reward * x
            theta = a_inv @ b
        if not (np.isfinite(a_inv).all() and np.isfinite(theta).all()):
            raise BadRequest("features: this feedback would overflow the model; nothing was applied")
        super()._update(arm, successes, trials, context)  # counts only once the model update is sound
        self.a_inv[arm], self.b[arm], self.theta[arm] = a_inv, b, theta
        self.xx[arm] += context.T @ context

    def load_state(self, state: dict) -> None:
        self.check_state(state)
        width = state.get("n_features")
        if self.n_features is None:
            if width is None:  # a snapshot taken before the first request: nothing learned yet
                return  # (it was refused: stats() needs a width, so a restart before any request failed)
            if isinstance(width, int) and not isinstance(width, bool) and width >= 1:
                self._init_model(width)  # the width the snapshot was learned with
                try:
                    super().load_state(state)
                except ConfigError:  # refused: the width is not fixed by it either
                    self.n_features = None
                    del self.a_inv, self.xx, self.b, self.theta
                    raise
                return
        if width != self.n_features:  # said so, rather than "state.xx: expected ... numbers"
            raise ConfigError(f"state.n_features: {width!r}, this router has {self.n_features!r}")
        super().load_state(state)

    def _fixed_width(self) -> int:
        if self.n_features is None:
            raise ConfigError("n_features: lin-ucb needs a fixed width to export or restore its statistics")
        return self.n_features

    def stats(self) -> dict:
        self._fixed_width()
        return {**super().stats(), "xx": self.xx.ravel().tolist(), "xr": self.b.ravel().tolist()}

    def _set_stats(self, stats: dict) -> None:
        super()._set_stats(stats)
        k, d = self.n_children, self._fixed_width()
        self.xx = np.asarray(stats["xx"], dtype=np.float64).reshape(k, d, d)
        self.b = np.asarray(stats["xr"], dtype=np.float64).reshape(k, d)

    def _rebuild(self) -> None:
        a = self.xx + np.eye(self.n_features) * self.ridge
        self.a_inv = np.linalg.inv(a)
        self.theta = np.einsum("kij,kj->ki", self.a_inv, self.b)

    def delta(self, arm, successes, trials, context) -> dict:
        out = super().delta(arm, successes, trials, context)
        d = self.n_features
        base = arm * d * d
        out["xx"] = {base + i: v for i, v in enumerate((context.T @ context).ravel().tolist())}
        out["xr"] = {arm * d + i: v for i, v in enumerate((successes / trials * context.sum(axis=0)).tolist())}
        return out

    def _extra_state(self) -> dict:
        if self.n_features is None:
            return {"n_features": None}
        return {"n_features": self.n_features, "alpha": self.alpha, "theta": self.theta.tolist(),
                "b": self.b.tolist(), "a_inv": self.a_inv.tolist(),
                "xx": self.xx.ravel().tolist(), "xr": self.b.ravel().tolist()}
