"""prefix-cache: the pod holding the longest cached prefix of the prompt, within a load bound.

The prompt (its UTF-8 text, prompt.py) is cut into blocks of `block_size` bytes (characters,
for ASCII); block i's key is a chained 64-bit hash: xxh3 of each block, summed with a random
odd multiplier per position (key_i = sum_{j<=i} xxh3(block_j) * M_j mod 2^64), so a key
depends on every block before it and one cumulative sum (numpy) chains them all. Only full
blocks count, as a model server caches only full KV blocks.

The index: key -> the pods holding it (a bitmask), and per pod key -> last use (an LRU by
counter, batch-evicted down to `prefix_blocks` when it overflows by an eighth: a pod's cache
evicts its oldest blocks when full, so the index forgets them too). Routing a prompt to a pod
inserts all its blocks there, so what a pod holds is prefix-closed (block i cached implies
every block before it: a prompt's later blocks are never used more recently than its earlier
ones, and they evict first), and "block i is cached on some pod" is monotone in i: the
longest match is found by binary search, never by walking 500 blocks.

The guard (without it prefix routing herds requests onto one pod): when the candidates'
in-flight max - min exceeds `prefix_max_imbalance` and max > `prefix_balance_ratio` x min
(AIBrix: 8 and any; SGLang: 32 and 1.0001), the request goes by least-request (rule
load-fallback); otherwise, with `prefix_sigma` > 0 (AIBrix's filter, off by default: it cost
hits, docs/llm/prefix-cache.md), only pods within mean + `prefix_sigma` sigma of in-flight are
considered, the others score 0. No match anywhere: least-request (rule no-match).

The index is this router replica's own (not shared through a store): each replica learns
from the requests it routes; docs/llm/prefix-cache.md says what that costs.
"""

from __future__ import annotations

import struct
from operator import mul
import threading
from itertools import starmap

import numpy as np

from ...errors import ConfigError
from .._params import integer, number
from .scorers import Scorer, least_loaded

_GROW = 1024  # position multipliers made at a time (a prompt of more blocks grows them)
_HEAD_MIN = 4  # first-message blocks worth keeping the keys of
_HEADS = 4096  # first messages (system prompts) whose keys are kept
_FEW = 16  # blocks chained in plain Python (fewer than numpy's per-call cost)
_MASK = 2 ** 64 - 1
_FRESH = 16  # a prefix among the newest capacity / _FRESH stamps of its pod is not stamped again


def _xxh3():
    try:
        import xxhash
    except ImportError as exc:
        raise ConfigError(f"strategy: prefix-cache needs xxhash ({exc}): pip install 'seldon-routers[llm]'") from None
    return xxhash.xxh3_64_intdigest


class PrefixCache(Scorer):
    name = "prefix-cache"

    def __init__(self, router):
        super().__init__(router)
        o = router.options
        self.block_size = integer(o["block_size"], "block_size", 1)
        self.capacity = integer(o["prefix_blocks"], "prefix_blocks", 1)
        self.max_imbalance = number(o["prefix_max_imbalance"], "prefix_max_imbalance", 0)
        self.ratio = number(o.get("prefix_balance_ratio", 1.0), "prefix_balance_ratio", 0)
        self.sigma = number(o["prefix_sigma"], "prefix_sigma", 0)
        self._hash = _xxh3()
        self._format = f"{self.block_size}s"
        # Fixed multipliers (not the router's seed): every replica computes the same keys.
        self._mult = np.zeros(0, np.uint64)
        self.holders: dict[int, int] = {}  # block key -> bitmask of the pods holding it
        self.lru: list[dict[int, int]] = [{} for _ in range(router.n_children)]  # pod: key -> last use
        self.ticks = [0] * router.n_children  # per pod: blocks stamped so far (its LRU's time)
        self.evictions = 0
        self._last: tuple = (None, [])
        self._heads: dict[int, list] = {}  # xxh3 of a first message's full blocks -> their keys  # (call, its keys): score() and routed() share one hashing
        self._pods_seen: tuple = (None, 0)
        self._positions_seen: tuple = (None, {})
        self._lock = threading.Lock()

    # --- keys ---------------------------------------------------------------------------

    def _multipliers(self, n: int) -> np.ndarray:
        if n > len(self._mult):
            size = -(-n // _GROW) * _GROW
            rng = np.random.default_rng(0x5E1D0)  # fixed: the same keys in every replica
            self._mult = rng.integers(0, 2 ** 63, size, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
            self._mult_list = self._mult.tolist()
        return self._mult[:n]

    def keys(self, call) -> list[int]:
        """The chained keys of the prompt's full blocks."""
        last = self._last  # one read (threads)
        if last[0] is call:
            return last[1]
        data = call.prompt.encode()
        bs = self.block_size
        n = len(data) // bs
        head = min(self._head_blocks(call.body), n)
        if n == 0:
            keys: list[int] = []
        elif head < _HEAD_MIN:
            keys = self._chain(data, 0, n, 0)
        else:
            # The blocks within the first message (a tenant's system prompt, the same on most
            # of its requests) start at the prompt's start, so their keys depend on it alone:
            # kept by one hash of those bytes, and only the rest is hashed block by block.
            view = memoryview(data)
            digest = self._hash(view[:head * bs])
            cached = self._heads.get(digest)
            if cached is None:
                cached = self._chain(data, 0, head, 0)
                if len(self._heads) >= _HEADS:
                    self._heads.pop(next(iter(self._heads)), None)  # the oldest
                self._heads[digest] = cached
            keys = cached + self._chain(data, head, n, cached[-1]) if n > head else list(cached)
        self._last = (call, keys)
        return keys

    def _chain(self, data: bytes, start: int, stop: int, before: int) -> list[int]:
        """Keys of blocks [start, stop), chained on from `before` (the key of block start - 1)."""
        bs = self.block_size
        blocks = struct.iter_unpack(self._format, memoryview(data)[start * bs:stop * bs])
        mult = self._multipliers(stop)
        if stop - start <= _FEW:  # numpy's per-call cost is more than a few blocks' arithmetic
            keys, key = [], before
            for (block,), m in zip(blocks, self._mult_list[start:stop]):
                key = (key + self._hash(block) * m) & _MASK
                keys.append(key)
            return keys
        h = np.fromiter(starmap(self._hash, blocks), np.uint64, stop - start)
        with np.errstate(over="ignore"):
            keys = (h * mult[start:]).cumsum()
            if before:
                keys += np.uint64(before)
        return keys.tolist()

    def _head_blocks(self, body: dict) -> int:
        """Full blocks inside the prompt text's first message (`role: content` and its line
        end, prompt.py), when that is plain ASCII text (its length is then its bytes)."""
        messages = body.get("messages")
        if not messages or type(messages) is not list or type(messages[0]) is not dict:
            return 0
        role, content = messages[0].get("role", ""), messages[0].get("content")
        if type(content) is not str or type(role) is not str or not (content.isascii() and role.isascii()):
            return 0
        return (len(role) + 2 + len(content)) // self.block_size

    # --- matching -----------------------------------------------------------------------

    def _held(self, keys: list[int], lo: int, hi: int, mask: int, want: int) -> int:
        """The first i in [lo, hi) whose holders (within mask) are exactly `want` (hi if none):
        along a prompt the holder sets only shrink, so this is a binary search."""
        holders = self.holders
        while lo < hi:
            mid = (lo + hi) // 2
            if holders.get(keys[mid], 0) & mask == want:
                hi = mid
            else:
                lo = mid + 1
        return lo

    def levels(self, keys: list[int], mask: int) -> list[tuple[int, int]]:
        """[(pods bitmask, blocks)]: the pods in mask holding that many blocks of the prompt,
        deepest first (a pod of a deeper level is also in the shallower ones)."""
        out = []
        end = self._held(keys, 0, len(keys), mask, 0)  # blocks held by at least one pod
        while end > 0:
            level = self.holders.get(keys[end - 1], 0) & mask
            out.append((level, end))
            end = self._held(keys, 0, end - 1, mask, level)
        return out

    # --- the strategy -------------------------------------------------------------------

    def _candidates(self, pods) -> int:
        """The candidates' bitmask, kept for the last list seen (the same pods serve most requests)."""
        seen = self._pods_seen  # one read: another thread may set it for other pods meanwhile
        if seen[0] is not pods and seen[0] != pods:
            seen = self._pods_seen = (pods, _mask_of(pods))
        return seen[1]

    def score(self, call, pods):
        """Per candidate: (blocks it holds + half its least-request score) / (best + 0.5),
        so one block more always beats less load, and equal matches go to the less loaded.
        The match is added sparsely: a prompt's blocks are on few pods."""
        keys = self.keys(call)
        loads = call.loads(pods)
        tags = call.tags
        lo, hi, fallback, bound = self._guard(loads, (loads.min(), loads.max(), loads.sum(), loads.dot(loads)))
        if fallback:
            tags["rule"] = "load-fallback"
            tags["prefix_imbalance"] = int(hi - lo)
            return (hi - loads) / (hi - lo)
        mask = self._candidates(pods)
        # least-request's score, halved: at most half a block of match
        ease = (hi - loads) * (0.5 / (hi - lo)) if hi > lo else np.full(len(loads), 0.5)
        if bound is not None:
            outside = loads > bound
            ease[outside] = 0.0
            for i in np.flatnonzero(outside).tolist():
                mask &= ~(1 << pods[i])
        levels = self.levels(keys, mask) if keys else []
        if not levels:
            tags["rule"] = "no-match"
            tags["prefix_match"] = 0
            return ease * 2.0
        best = levels[0][1]
        tags["rule"] = "prefix"
        tags["prefix_match"] = best
        position = self._positions(pods)
        shallower = 0
        for level, blocks in reversed(levels):  # shallowest first: each level adds its step
            step, shallower = blocks - shallower, blocks
            while level:
                bit = level & -level
                level ^= bit
                ease[position[bit.bit_length() - 1]] += step
        ease *= 1.0 / (best + 0.5)
        return ease

    def pick(self, call, pods):
        """score()'s argmax, without the dense vector: the least loaded of the deepest-matching
        pods within the load bound, else the least loaded pod."""
        keys = self.keys(call)
        counts = call.counts or [0] * self.router.n_children
        loads = counts if len(pods) == len(counts) else [counts[p] for p in pods]  # (pods are sorted)
        tags, rng = call.tags, self.router.rng
        lo, hi, fallback, bound = self._guard(loads, getattr(loads, "stats", None))  # (the ledger keeps them)
        if fallback:
            tags["rule"] = "load-fallback"
            tags["prefix_imbalance"] = int(hi - lo)
            return least_loaded(call, pods, rng)
        position = self._positions(pods)
        for level, blocks in (self.levels(keys, self._candidates(pods)) if keys else ()):
            # deepest first: the first level with a pod within the bound holds the longest match
            inside = []
            while level:
                bit = level & -level
                level ^= bit
                i = position[bit.bit_length() - 1]
                if bound is None or loads[i] <= bound:
                    inside.append(i)
            if inside:
                tags["rule"] = "prefix"
                tags["prefix_match"] = blocks
                return least_loaded(call, pods, rng, inside)
        tags["rule"] = "no-match"
        tags["prefix_match"] = 0
        return least_loaded(call, pods, rng)

    def _guard(self, loads, stats=None) -> tuple:
        """The load guard over the candidates' in-flight counts: (lo, hi, fallback, bound).
        fallback: max - min past prefix_max_imbalance and max > prefix_balance_ratio x min,
        so the request goes by least-request. bound: AIBrix's filter, mean + sigma x std of
        in flight, a pod above it no prefix candidate; but one request more than the least
        loaded is noise, not load (else at 1, 0, 0, 0 the only pod holding the prefix is left
        out), and None when it is off or cannot matter. stats: (min, max, sum, sum of
        squares) when known (the ledger's, or numpy's), else made here."""
        lo, hi = (min(loads), max(loads)) if stats is None else stats[:2]
        if hi - lo > self.max_imbalance and hi > self.ratio * lo:
            return lo, hi, True, None
        if not self.sigma or hi <= lo + 1:
            return lo, hi, False, None
        n = len(loads)
        total, squares = (sum(loads), sum(map(mul, loads, loads))) if stats is None else stats[2:]
        mean = total / n
        std = max(squares / n - mean * mean, 0.0) ** 0.5  # (np.std costs 10 us here)
        return lo, hi, False, max(mean + self.sigma * std, lo + 1)

    def _positions(self, pods) -> dict:
        """pod -> its position among the candidates (cached with the mask)."""
        seen = self._positions_seen
        if seen[0] is not pods and seen[0] != pods:
            seen = self._positions_seen = (pods, {p: i for i, p in enumerate(pods)})
        return seen[1]

    def routed(self, call, pod):
        """The pod now holds the prompt's blocks (its model server caches them as it prefills)."""
        keys = self.keys(call)
        self._last = (None, [])
        if not keys:
            return
        with self._lock:  # Seldon's wrapper routes from threads; scoring only reads
            lru, bit = self.lru[pod], 1 << pod
            held = self._held_by(lru, keys)
            holders = self.holders
            for key in keys[held:]:
                holders[key] = holders.get(key, 0) | bit
            # Later blocks "older" than earlier ones by one step each: they evict first,
            # which keeps the pod's blocks prefix-closed. A prefix whose stamp is among the
            # pod's newest capacity / _FRESH keeps it (it is near the top anyway, far from
            # eviction): only the new blocks are stamped, just below the last one held.
            if held and lru[keys[0]] >= self.ticks[pod] - self.capacity // _FRESH:
                below = lru[keys[held - 1]] - 1
                lru.update(zip(keys[held:], range(below, below - (len(keys) - held), -1)))
            else:
                top = self.ticks[pod] = self.ticks[pod] + len(keys)
                lru.update(zip(keys, range(top, top - len(keys), -1)))
            if len(lru) > self.capacity + (self.capacity >> 3):
                self._evict(pod)
        call.tags["prefix_match"] = held
        call.tags["prefix_blocks"] = len(keys)

    def _held_by(self, lru: dict, keys: list[int]) -> int:
        lo, hi = 0, len(keys)
        while lo < hi:
            mid = (lo + hi) // 2
            if keys[mid] in lru:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def forget(self, pod: int) -> None:
        """A pod that went down restarts with an empty cache: its blocks leave the index."""
        with self._lock:
            self._drop(pod, list(self.lru[pod]))

    def _evict(self, pod: int) -> None:
        lru = self.lru[pod]
        drop = len(lru) - self.capacity
        cutoff = np.partition(np.fromiter(lru.values(), np.int64, len(lru)), drop)[drop]
        self._drop(pod, [k for k, used in lru.items() if used < cutoff])
        self.evictions += drop

    def _drop(self, pod: int, keys: list) -> None:
        """The pod no longer holds these blocks (under the lock)."""
        lru, clear, holders = self.lru[pod], ~(1 << pod), self.holders
        for key in keys:
            del lru[key]
            left = holders.get(key, 0) & clear
            if left:
                holders[key] = left
            else:
                holders.pop(key, None)

    def state(self) -> dict:
        return {"blocks": len(self.holders), "blocks_per_pod": [len(d) for d in self.lru],
                "evictions": self.evictions, "block_size": self.block_size, "capacity": self.capacity,
                "shared": False}


def _mask_of(pods) -> int:
    mask = 0
    for p in pods:
        mask |= 1 << p
    return mask
