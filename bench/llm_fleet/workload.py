"""A multi-tenant shared-prefix chat workload: tenants with long system prompts, users with
several turns, Poisson arrivals.

Text is made of fixed-width words (3 letters and a space: 4 characters, one simulated
token), so the router's prompt blocks (block_size characters of prompt text) and the pods'
KV blocks (block_tokens tokens) cover the same text: 16 tokens = 64 characters.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field

import numpy as np

CHARS_PER_TOKEN = 4
_LETTERS = np.array(list(string.ascii_lowercase))


@dataclass
class Workload:
    tenants: int = 20
    system_tokens: int = 2000  # mean system prompt; each tenant's drawn within +-25%
    users_per_tenant: int = 50
    turns: tuple = (2, 6)  # turns per conversation, uniform in [lo, hi]
    user_tokens: tuple = (40, 160)  # a user message, uniform
    output_tokens: tuple = (40, 160)  # a reply, uniform
    tenant_skew: float = 0.0  # Zipf exponent of tenant popularity (0: uniform)
    continue_share: float = 0.7  # share of arrivals that are the next turn of an open conversation
    model: str = "llama-3-8b"


def words(rng: np.random.Generator, n: int) -> str:
    """n simulated tokens: n words of 3 letters and a space."""
    letters = _LETTERS[rng.integers(0, 26, size=(n, 3))]
    return "".join(a + b + c + " " for a, b, c in letters)


@dataclass
class Turn:
    """One request: its OpenAI body, who sent it, and what the simulated pod will produce."""
    key: str
    body: dict
    tenant: int
    user: str
    session: str
    output_tokens: int
    arrival: float = 0.0
    text: str = ""  # the prompt text as the router reads it (prompt.prompt_text)


@dataclass
class _Conversation:
    tenant: int
    user: str
    session: str
    turns_left: int
    messages: list = field(default_factory=list)


class Arrivals:
    """Poisson arrivals at `rate` requests/s; each one the next turn of an open conversation
    (share continue_share, while any is open) or the first of a new one. Deterministic per
    seed, so every strategy sees the same requests at the same times."""

    def __init__(self, workload: Workload, rate: float, seed: int):
        self.w, self.rate = workload, rate
        self.rng = np.random.default_rng(seed)
        rng = np.random.default_rng(seed + 1_000_003)  # the tenants do not depend on the rate
        lo, hi = int(workload.system_tokens * 0.75), int(workload.system_tokens * 1.25)
        self.systems = [f"You are the assistant of tenant {t:02d}. " + words(rng, int(rng.integers(lo, hi + 1)))
                        for t in range(workload.tenants)]
        pop = 1.0 / np.arange(1, workload.tenants + 1) ** workload.tenant_skew
        self.popularity = pop / pop.sum()
        self.open: list[_Conversation] = []
        self.n = 0
        self.now = 0.0

    def _new(self) -> _Conversation:
        w, rng = self.w, self.rng
        tenant = int(rng.choice(w.tenants, p=self.popularity))
        user = f"t{tenant:02d}-u{int(rng.integers(w.users_per_tenant)):03d}"
        session = f"{user}-s{self.n}"
        system = {"role": "system", "content": self.systems[tenant]}
        return _Conversation(tenant, user, session, int(rng.integers(w.turns[0], w.turns[1] + 1)), [system])

    def next(self) -> Turn:
        w, rng = self.w, self.rng
        self.now += float(rng.exponential(1.0 / self.rate))
        if self.open and rng.random() < w.continue_share:
            conv = self.open[int(rng.integers(len(self.open)))]
        else:
            conv = self._new()
            self.open.append(conv)
        conv.messages.append({"role": "user", "content": words(rng, int(rng.integers(*w.user_tokens)))})
        out = int(rng.integers(*w.output_tokens))
        body = {"model": w.model, "messages": list(conv.messages), "max_tokens": out, "user": conv.user}
        # The reply the pod will "generate", part of the conversation's next prompt.
        conv.messages.append({"role": "assistant", "content": words(rng, out)})
        conv.turns_left -= 1
        if conv.turns_left <= 0:
            self.open.remove(conv)
        self.n += 1
        return Turn(f"req-{self.n}", body, conv.tenant, conv.user, conv.session, out, self.now)
