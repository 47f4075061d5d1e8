"""What the LLM routers' tests share: a clock the test moves (router.clock, the ledger's,
the limiter's), what the limiter reads of a call, and N threads run at once."""

from __future__ import annotations

import threading


class Clock:
    def __init__(self, t: float = 1000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


class Ask:
    """What the limiter reads of a call."""

    def __init__(self, user="alice", model=None, tokens=10, key="k"):
        self.user, self.model, self.tokens, self.key = user, model, tokens, key


def in_threads(work, n: int = 8) -> None:
    """work(0) .. work(n - 1), each in its own thread, all joined."""
    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
