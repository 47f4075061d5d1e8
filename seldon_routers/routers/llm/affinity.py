"""session-affinity: the same session key to the same pod while that pod is healthy.

Rendezvous (highest-random-weight) hashing: each candidate pod's weight for a session is a
hash of (session, pod name), the highest weight wins. A pod that leaves the candidates
(down, or not serving the model) moves only the sessions it had won, each to its own second
choice; the others stay. The hash is stable (blake2b of the key, a fixed 64-bit mix with
each pod name's blake2b), not Python's salted hash(), so every replica, and every restart,
sends a session to the same pod; pods are keyed by name, not position.

A request without the session header (router.session_header, default x-session-id) goes by
least-request, and its tags say so.
"""

from __future__ import annotations

import hashlib

import numpy as np

from .scorers import Scorer, least_loaded, lower_is_better

_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def stable_hash(text: str) -> int:
    """A 64-bit hash of text, the same in every process."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: a bijection on 64 bits that scatters every input bit."""
    x = x ^ (x >> np.uint64(30))
    x = x * _M1
    x = x ^ (x >> np.uint64(27))
    x = x * _M2
    return x ^ (x >> np.uint64(31))


class SessionAffinity(Scorer):
    name = "session-affinity"

    def __init__(self, router):
        super().__init__(router)
        self._pods = np.array([stable_hash(name) for name in router.branch_names], dtype=np.uint64)

    def weights(self, session: str, pods) -> np.ndarray:
        """Each pod's rendezvous weight for the session (the highest wins)."""
        keys = self._pods if len(pods) == len(self._pods) else self._pods[list(pods)]  # (pods are sorted)
        with np.errstate(over="ignore"):
            return _mix(keys ^ np.uint64(stable_hash(session)))

    def score(self, call, pods):
        if not call.session:
            call.tags["affinity"] = "no-session: least-request"
            return lower_is_better([call.counts[p] for p in pods])
        call.tags["affinity"] = "session"
        scores = [0.0] * len(pods)
        scores[int(np.argmax(self.weights(call.session, pods)))] = 1.0
        return scores

    def pick(self, call, pods):
        if not call.session:
            call.tags["affinity"] = "no-session: least-request"
            return least_loaded(call, pods, self.router.rng)
        call.tags["affinity"] = "session"
        return pods[int(np.argmax(self.weights(call.session, pods)))]
