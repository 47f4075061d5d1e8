"""Tiny policies for the simulator's tests (importable as sim_policies.X from this folder)."""

import numpy as np

from seldon_routers import Router


class Fixed(Router):
    """Always the same arm."""

    def __init__(self, n_branches: int = 2, arm: int = 0, seed=None):
        self.n_children, self.arm = n_branches, arm

    def route(self, features, feature_names, **kwargs):
        return self.arm


class Greedy(Router):
    """A random arm until every arm has a reward, then the best empirical mean (ties to the
    lowest arm)."""

    def __init__(self, n_branches: int = 2, seed=None):
        self.n_children = n_branches
        self.pulls = np.zeros(n_branches)
        self.wins = np.zeros(n_branches)
        self.rng = np.random.default_rng(seed)

    def route(self, features, feature_names, **kwargs):
        unplayed = np.flatnonzero(self.pulls == 0)
        if len(unplayed):
            return int(self.rng.choice(unplayed))
        return int(np.argmax(self.wins / self.pulls))

    def send_feedback(self, features, feature_names, reward, truth, routing=None, **kwargs):
        self.pulls[routing] += 1
        self.wins[routing] += reward


LOG = []  # (backwards, step, arm, reward, features, feature_names) from Recorders, in-process runs only


class Recorder(Router):
    """Cycles through the arms (forwards or backwards) and logs every reward it is sent."""

    def __init__(self, n_branches: int = 2, backwards: bool = False, seed=None):
        self.n_children, self.backwards, self.t = n_branches, backwards, 0
        self.seen = 0

    def route(self, features, feature_names, **kwargs):
        arm = self.t % self.n_children
        self.t += 1
        return self.n_children - 1 - arm if self.backwards else arm

    def send_feedback(self, features, feature_names, reward, truth, routing=None, **kwargs):
        LOG.append((self.backwards, self.seen, routing, reward, features, feature_names))
        self.seen += 1


class Seeded(Router):
    """Random arm from its own seed: the same seed gives the same arms."""

    def __init__(self, n_branches: int = 2, seed=None):
        self.n_children = n_branches
        self.rng = np.random.default_rng(seed)

    def route(self, features, feature_names, **kwargs):
        return int(self.rng.integers(self.n_children))


class OutOfRange(Router):
    def __init__(self, n_branches: int = 2):
        self.n_children = None

    def route(self, features, feature_names, **kwargs):
        return -1


class Null:
    """Not even a Router: route returns 0, feedback does nothing (measures the simulator)."""

    def __init__(self, n_branches: int = 2):
        pass

    def route(self, features, feature_names):
        return 0

    def send_feedback(self, features, feature_names, reward, truth, routing=None):
        pass
