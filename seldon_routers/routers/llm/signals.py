"""Pod signals (placeholder until the metrics work lands: every pod healthy, no metrics)."""

from __future__ import annotations


class PodSignals:
    def __init__(self, n_pods, interval, stale, clock):
        self.n = n_pods

    def healthy(self, pods):
        return pods

    def routed(self, pod, call):
        pass

    def completed(self, pod, entry, usage):
        pass

    def observe(self, pod, sample, now=None):
        pass

    def down(self, pod):
        pass

    def up(self, pod):
        pass

    def state(self):
        return {}
