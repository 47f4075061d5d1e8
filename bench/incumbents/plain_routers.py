"""Plain Seldon-style router classes: what a user writes for `seldon-core-microservice`
without this project, and what a user switching to seldon-routers leaves behind. The
benchmarks serve these under Seldon's own wrapper as the incumbent.

No seldon_routers import and no base class: just `__init__(**parameters)`, `route(self,
features, feature_names)` returning a Python int, and `send_feedback` where the router
learns, as in Seldon's own example routers. The standard library only, so any Seldon
image can load this file.

    seldon-core-microservice plain_routers.PlainABTest --service-type ROUTER \
        --parameters '[{"name":"n_branches","value":"3","type":"INT"}]'

(with this folder on PYTHONPATH, or as the working directory).

The `...WithMetrics` / `...WithTags` variants add one no-op hook each, the ones
`seldon_routers.Router` declares on its base class. They exist to measure what merely
having such a hook costs under the wrapper (bench/wrapper_speed.py --hooks).
"""

import random


def _weights(n_branches, weights):
    """Relative weights from Seldon-style parameters: n_branches alone means equal weights;
    weights is '0.5:0.3:0.2' (a STRING parameter) or a list."""
    if weights is None:
        n = 2 if n_branches is None else int(n_branches)
        return [1.0] * n
    if isinstance(weights, str):
        weights = weights.split(":")
    weights = [float(w) for w in weights]
    if n_branches is not None and int(n_branches) != len(weights):
        raise ValueError(f"{len(weights)} weights for n_branches={n_branches}")
    return weights


class PlainABTest:
    """Sends each request to child i with probability weights[i] (an A/B/C... test)."""

    def __init__(self, n_branches=None, weights=None, seed=None):
        self.weights = _weights(n_branches, weights)
        self.children = list(range(len(self.weights)))
        self.rng = random.Random(seed)

    def route(self, features, feature_names):
        return self.rng.choices(self.children, weights=self.weights)[0]


class PlainABTestWithMetrics(PlainABTest):
    """The same, plus a `metrics()` hook that reports nothing."""

    def metrics(self):
        return []


class PlainABTestWithTags(PlainABTest):
    """The same, plus a `tags()` hook that adds nothing."""

    def tags(self):
        return {}


class PlainABTestWithBoth(PlainABTest):
    """The same, with both no-op hooks, as every seldon_routers built-in has today."""

    def metrics(self):
        return []

    def tags(self):
        return {}


class PlainEpsilonGreedy:
    """Routes to the arm with the best mean reward so far; a share epsilon of routes
    explores an arm drawn uniformly from all of them. Rewards are success fractions in
    [0, 1] of the feedback's rows."""

    def __init__(self, n_branches=2, epsilon=0.1, seed=None):
        self.n = int(n_branches)
        self.epsilon = float(epsilon)
        self.rng = random.Random(seed)
        self.successes = [0.0] * self.n
        self.trials = [0.0] * self.n

    def route(self, features, feature_names):
        if self.rng.random() < self.epsilon:
            return self.rng.randrange(self.n)
        means = [s / t if t else 0.0 for s, t in zip(self.successes, self.trials)]
        best = max(means)
        return self.rng.choice([i for i, m in enumerate(means) if m == best])

    def send_feedback(self, features, feature_names, reward, truth, routing=None):
        if routing is None or not 0 <= int(routing) < self.n:
            return
        rows = len(features) if hasattr(features, "__len__") and len(features) else 1
        self.successes[int(routing)] += float(reward) * rows
        self.trials[int(routing)] += rows
