"""Simulated vLLM-like pods.

A pod has `slots` batch slots (vLLM's max_num_seqs): a request waits in a FIFO for a slot,
then for the pod's prefill (one prompt at a time: prefill is compute-bound), then decodes
in its slot. Prefill takes `prefill_overhead` plus `prefill_per_token` per UNCACHED prompt
token; the cached part is the longest prefix of the prompt's full KV blocks found in the
pod's LRU block cache (`cache_blocks` blocks of `block_tokens` tokens; a prefill adds the
prompt's blocks and evicts the least recently used beyond the capacity). The first token
comes out when the prefill ends (TTFT); decoding takes `decode_per_token` per output token,
slowed by `batch_slowdown` per other request running (TPOT by load), fixed when decoding
starts. A GPU type scales the speeds and carries a cost per hour.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass

import xxhash

from .workload import CHARS_PER_TOKEN


@dataclass(frozen=True)
class GPU:
    name: str
    prefill_per_token: float  # seconds per uncached prompt token
    decode_per_token: float  # seconds per output token, batch of one
    cost_per_hour: float
    slots: int = 16
    cache_blocks: int = 2000
    prefill_overhead: float = 0.002  # scheduling and the last partial block
    batch_slowdown: float = 0.03  # decode slower by this share per other running request


# The measured-peers calibration (shared/llm_peers): 50 us/token prefill, 2 ms/token decode.
BASE = GPU("base", 50e-6, 2e-3, 2.0)
# A heterogeneous fleet: a fast, expensive type and a slow, cheap one.
FAST = GPU("fast", 25e-6, 1e-3, 4.0)
SLOW = GPU("slow", 100e-6, 3e-3, 1.0)
GPUS = {g.name: g for g in (BASE, FAST, SLOW)}


def block_keys(text: str, block_tokens: int = 16) -> list[int]:
    """The chained hashes of the prompt's full KV blocks (block_tokens tokens of
    CHARS_PER_TOKEN characters each): a block's key depends on every block before it."""
    width = block_tokens * CHARS_PER_TOKEN
    data = text.encode()  # the fixed-width words are ASCII: one byte per character
    keys, prev = [], 0
    for i in range(0, len(data) - width + 1, width):
        prev = xxhash.xxh3_64_intdigest(data[i:i + width], seed=prev)
        keys.append(prev)
    return keys


class BlockCache:
    """An LRU set of KV blocks with a capacity."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.blocks: OrderedDict[int, None] = OrderedDict()

    def cached_prefix(self, keys: list[int]) -> int:
        """How many leading blocks of `keys` are cached (no change)."""
        n = 0
        for k in keys:
            if k not in self.blocks:
                break
            n += 1
        return n

    def add(self, keys: list[int]) -> None:
        blocks = self.blocks
        for k in keys:
            if k in blocks:
                blocks.move_to_end(k)
            else:
                blocks[k] = None
        while len(blocks) > self.capacity:
            blocks.popitem(last=False)


class Job:
    """One request on a pod."""

    __slots__ = ("turn", "keys", "prompt_tokens", "cached_tokens", "ttft", "tpot", "done", "pod", "in_flight_at_arrival", "tags")

    def __init__(self, turn, keys: list[int], prompt_tokens: int):
        self.turn, self.keys, self.prompt_tokens = turn, keys, prompt_tokens
        self.cached_tokens = 0
        self.ttft = self.tpot = self.done = None
        self.pod = -1
        self.tags = None
        self.in_flight_at_arrival = 0


class Pod:
    def __init__(self, index: int, gpu: GPU, block_tokens: int = 16):
        self.index, self.gpu, self.block_tokens = index, gpu, block_tokens
        self.cache = BlockCache(gpu.cache_blocks)
        self.waiting: deque = deque()  # for a slot
        self.prefills: deque = deque()  # in a slot, for the prefill
        self.prefilling = None
        self.prefill_ends = 0.0
        self.running = 0  # in a slot (prefilling or decoding)
        self.routed = 0
        self.busy_since = None
        self.busy = 0.0  # seconds with at least one request in flight

    @property
    def in_flight(self) -> int:
        return self.running + len(self.waiting)

    def prefill_time(self, job: Job) -> float:
        uncached = job.prompt_tokens - min(self.cache.cached_prefix(job.keys) * self.block_tokens, job.prompt_tokens - 1)
        return self.gpu.prefill_overhead + uncached * self.gpu.prefill_per_token

    def backlog(self, now: float) -> float:
        """Seconds of prefill ahead of a new request (the oracle's view)."""
        ahead = max(0.0, self.prefill_ends - now) if self.prefilling is not None else 0.0
        return ahead + sum(self.prefill_time(j) for j in self.prefills)

    # --- the event loop's calls (each returns the events to schedule: (time, kind, pod, job)) ---

    def arrive(self, now: float, job: Job) -> list:
        job.pod, job.in_flight_at_arrival = self.index, self.in_flight
        self.routed += 1
        if self.in_flight == 0:
            self.busy_since = now
        if self.running < self.gpu.slots:
            return self._admit(now, job)
        self.waiting.append(job)
        return []

    def _admit(self, now: float, job: Job) -> list:
        self.running += 1
        self.prefills.append(job)
        return self._next_prefill(now) if self.prefilling is None else []

    def _next_prefill(self, now: float) -> list:
        if not self.prefills:
            self.prefilling = None
            return []
        job = self.prefills.popleft()
        hit = self.cache.cached_prefix(job.keys) * self.block_tokens
        job.cached_tokens = min(hit, job.prompt_tokens - 1)  # the last token is always computed
        self.cache.add(job.keys)
        self.prefilling = job
        self.prefill_ends = now + self.gpu.prefill_overhead + (job.prompt_tokens - job.cached_tokens) * self.gpu.prefill_per_token
        return [(self.prefill_ends, "prefilled", self.index, job)]

    def prefilled(self, now: float, job: Job) -> list:
        job.ttft = now - job.turn.arrival
        out_tokens = job.turn.output_tokens
        job.tpot = self.gpu.decode_per_token * (1 + self.gpu.batch_slowdown * (self.running - 1))
        events = [(now + out_tokens * job.tpot, "decoded", self.index, job)]
        return events + self._next_prefill(now)

    def decoded(self, now: float, job: Job) -> list:
        job.done = now
        self.running -= 1
        events = self._admit(now, self.waiting.popleft()) if self.waiting else []
        if self.in_flight == 0:
            self.busy += now - self.busy_since
            self.busy_since = None
        return events

    def busy_time(self, now: float) -> float:
        return self.busy + (now - self.busy_since if self.busy_since is not None else 0.0)
