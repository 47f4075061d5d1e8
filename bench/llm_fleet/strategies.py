"""What the simulator routes with: the package's routers (built by name through the
registry, driven through decide/learn) and the bench-side strategies that are no package
router (round-robin, the oracle, N router replicas), written against the same shape:
decide(request) -> Decision, learn(feedback)."""

from __future__ import annotations

import itertools
import json

import numpy as np

from seldon_routers.registry import resolve
from seldon_routers.router import Decision
from seldon_routers.routers.llm.prompt import body_of, prompt_text

from .pods import block_keys
from .workload import CHARS_PER_TOKEN

MEAN_OUTPUT = 100  # output tokens of a mean request (the workload's default)


def pods_config(pods) -> list[dict]:
    """The routers' pods parameter for a simulated fleet (gpu, cost, the measured profile)."""
    out = []
    for p in pods:
        spec = {"name": f"pod-{p.index}-{p.gpu.name}", "gpu": p.gpu.name, "cost_per_hour": p.gpu.cost_per_hour}
        if getattr(p, "profile", None) is not None:
            spec["profile"] = p.profile
        out.append(spec)
    return out


def package_router(name: str, pods, clock, seed: int, **params):
    """A built-in router (resolve(name)) over the simulated pods, on the simulated clock."""
    cls = resolve(name)
    router = cls(pods=json.dumps(pods_config(pods)), seed=seed, **params)
    router.clock = clock
    return router


class RoundRobin:
    """Each pod in turn (no state but a counter): what a plain Kubernetes Service does."""

    def __init__(self, pods, clock, seed: int):
        self.next = itertools.cycle(range(len(pods)))

    def decide(self, request):
        return Decision(next(self.next), {"strategy": "round-robin"})

    def learn(self, feedback):
        pass


class Oracle:
    """Knows every pod's cache and queue: the pod with the lowest predicted TTFT, i.e. the
    prefill backlog ahead of the request plus its own uncached prefill, plus a wait for a
    slot when the pod's slots are full (the queue ahead times the mean decode, per slot)."""

    def __init__(self, pods, clock, seed: int):
        self.pods, self.clock = pods, clock
        self.rng = np.random.default_rng(seed)

    def decide(self, request):
        now = self.clock()
        text = prompt_text(body_of(request))
        keys, tokens = block_keys(text), -(-len(text) // CHARS_PER_TOKEN)
        best, best_t = [], float("inf")
        for pod in self.pods:
            g = pod.gpu
            hit = min(pod.cache.cached_prefix(keys) * pod.block_tokens, tokens - 1)
            t = pod.backlog(now) + g.prefill_overhead + (tokens - hit) * g.prefill_per_token
            full = pod.running + len(pod.waiting) + 1 - g.slots
            if full > 0:
                t += full * MEAN_OUTPUT * g.decode_per_token / g.slots
            if t < best_t - 1e-12:
                best, best_t = [pod.index], t
            elif abs(t - best_t) <= 1e-12:
                best.append(pod.index)
        pick = best[0] if len(best) == 1 else int(self.rng.choice(best))
        return Decision(pick, {"strategy": "oracle", "predicted_ttft": best_t})

    def learn(self, feedback):
        pass


class Replicas:
    """N replicas of one router (each its own instance: its own prefix index) sharing one
    in-flight ledger, as N router pods on one Redis would; requests alternate between them,
    each completion goes to the replica that routed it."""

    def __init__(self, routers):
        self.routers = routers
        shared = routers[0].ledger
        for r in routers[1:]:
            r.use_ledger(shared)
        self.turn = itertools.cycle(range(len(routers)))
        self.owner: dict = {}

    def decide(self, request):
        i = next(self.turn)
        self.owner[request.puid] = i
        return self.routers[i].decide(request)

    def learn(self, feedback):
        self.routers[self.owner.pop(feedback.request.puid)].learn(feedback)
