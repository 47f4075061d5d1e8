"""Per-user rate limits: requests per minute (rpm) and tokens per minute (tpm).

A sliding log, not a fixed minute window: every admitted request is remembered for 60 s
with the tokens it is charged, and a request is admitted only if the last 60 s (this one
included) hold at most rpm requests and tpm tokens. So every 60-second interval, wherever
it starts, holds at most rpm admissions; a fixed window (AIBrix's per-minute counter) lets a
user send 2 x rpm across a minute's boundary.

Which limit applies (Policy.limit_for), per dimension, most specific first:
    the user's entry  >  the model's entry  >  the defaults (rpm, tpm parameters or the
    document's top-level rpm, tpm)
`enabled: false` on the user or on the model switches limits off for that request; a
dimension set to null lifts the one below it. A model with an entry has a window of its
own per user; every other model shares the user's general window. A request without a
user is not limited (nobody to charge: as AIBrix, no user header, no limit).

Tokens charged at admission are the estimate (prompt + max_tokens, call.tokens); settle()
replaces them with the response's usage.total_tokens while the request is still within the
window. This is the memory limiter (one process); state/llm_redis.py keeps the same log in
Redis, shared by every replica, with the same Policy and the same replies.
"""

from __future__ import annotations

import json
import math
import threading
from collections import deque
from typing import Any, Callable, NamedTuple, Optional

from ...errors import ConfigError, RateLimited, quote
from .._config import read_document
from .._params import positive_int

WINDOW = 60.0  # seconds: the limits are per minute
ENTRY_KEYS = ("rpm", "tpm", "enabled")


class Limit(NamedTuple):
    """The limit one request is held to, and the window it is counted in."""

    rpm: Optional[int]
    tpm: Optional[int]
    window: str  # the window's id: the user, and the model when it has its own entry
    user: str
    model: Optional[str]


def _entry(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected an object with rpm, tpm or enabled, got {quote(value)}")
    out = {}
    for key, v in value.items():
        if key not in ENTRY_KEYS:
            raise ConfigError(f"{where}.{key}: unknown key; expected {', '.join(ENTRY_KEYS)}")
        if key == "enabled":
            if not isinstance(v, bool):
                raise ConfigError(f"{where}.enabled: expected true or false, got {quote(v)}")
            out[key] = v
        else:  # null: no limit in this dimension (lifts the default)
            out[key] = None if v is None else positive_int(v, f"{where}.{key}")
    return out


def _entries(value: Any, where: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected an object of name: {{rpm, tpm, enabled}}, got {quote(value)}")
    return {str(name): _entry(v, f"{where}.{name}") for name, v in value.items()}


def _document(limits: Any, limits_file: Optional[str]) -> Any:
    """The limits document, from either parameter or neither (no overrides)."""
    if limits is not None and limits_file is not None:
        raise ConfigError("limits: give limits (inline JSON/YAML) or limits_file (a path), not both")
    return None if limits is None and limits_file is None else read_document(limits, limits_file, "limits")


class Policy:
    """The configured limits, resolved per request."""

    def __init__(self, rpm: Optional[int] = None, tpm: Optional[int] = None, users: Optional[dict] = None,
                 models: Optional[dict] = None):
        self.defaults = {"rpm": rpm, "tpm": tpm}
        self.users, self.models = users or {}, models or {}

    @classmethod
    def from_params(cls, rpm, tpm, limits, limits_file) -> "Policy":
        doc: Any = {}
        if limits is not None or limits_file is not None:
            field = "limits_file" if limits_file is not None else "limits"
            doc = _document(limits, limits_file) or {}
            if not isinstance(doc, dict):
                raise ConfigError(f"{field}: expected an object with users, models, rpm, tpm; got {quote(doc)}")
            unknown = set(doc) - {"users", "models", "rpm", "tpm"}
            if unknown:
                raise ConfigError(f"{field}.{sorted(unknown)[0]}: unknown key; expected users, models, rpm, tpm")
        defaults = {}
        for name, param in (("rpm", rpm), ("tpm", tpm)):
            if param is not None and doc.get(name) is not None:
                raise ConfigError(f"{name}: given both as a parameter and in limits; give it once")
            value = param if param is not None else doc.get(name)
            defaults[name] = None if value is None else positive_int(value, name)
        return cls(defaults["rpm"], defaults["tpm"], _entries(doc.get("users"), "limits.users"),
                   _entries(doc.get("models"), "limits.models"))

    def limit_for(self, user: Optional[str], model: Optional[str]) -> Optional[Limit]:
        if not user:
            return None
        u, m = self.users.get(user), self.models.get(model) if model is not None else None
        if (u is not None and u.get("enabled") is False) or (m is not None and m.get("enabled") is False):
            return None
        values = {}
        for dim in ("rpm", "tpm"):
            for source in (u, m, self.defaults):
                if source is not None and dim in source:
                    values[dim] = source[dim]
                    break
        if values.get("rpm") is None and values.get("tpm") is None:
            return None
        return Limit(values["rpm"], values["tpm"], json.dumps([user, model if m is not None else None]), user, model)

    def describe(self) -> dict:
        return {**self.defaults, "users": self.users, "models": self.models, "window_s": WINDOW}


# --- replies: the same from the memory and the Redis limiter ----------------------------

def reset_text(seconds: float) -> str:
    """A duration as OpenAI writes its x-ratelimit-reset-* headers: 1.5s, 1m0s."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{round(seconds, 3):g}s"
    return f"{int(seconds // 60)}m{round(seconds % 60, 3):g}s"


def headers(limit: Limit, count: int, used: int, reset_requests: float, reset_tokens: float) -> dict:
    """OpenAI's x-ratelimit-* headers for the dimensions that are limited: count and used
    are what the window holds (after this request, if admitted)."""
    out = {}
    if limit.rpm is not None:
        out.update({"x-ratelimit-limit-requests": str(limit.rpm),
                    "x-ratelimit-remaining-requests": str(max(0, limit.rpm - count)),
                    "x-ratelimit-reset-requests": reset_text(reset_requests)})
    if limit.tpm is not None:
        out.update({"x-ratelimit-limit-tokens": str(limit.tpm),
                    "x-ratelimit-remaining-tokens": str(max(0, limit.tpm - used)),
                    "x-ratelimit-reset-tokens": reset_text(reset_tokens)})
    return out


def refusal(limit: Limit, over: str, count: int, used: int, cost: int, retry: float,
            reset_requests: float, reset_tokens: float) -> RateLimited:
    """The 429 of a request over `over` ("rpm" or "tpm"): names the limit, says when to retry."""
    who = f"user {quote(limit.user)}" + (f" on model {quote(limit.model)}" if limit.model is not None else "")
    if over == "rpm":
        what = f"requests per minute (RPM): limit {limit.rpm}, used {count}, requested 1"
    elif cost > limit.tpm:
        what = (f"tokens per minute (TPM): limit {limit.tpm}, requested {cost} (prompt estimate + max_tokens): "
                "this request alone is over the limit; lower max_tokens")
    else:
        what = f"tokens per minute (TPM): limit {limit.tpm}, used {used}, requested {cost}"
    out = headers(limit, count, used, reset_requests, reset_tokens)
    out["retry-after"] = str(max(1, math.ceil(retry - 1e-9)))
    return RateLimited(f"Rate limit reached for {who} on {what}. Please try again in {reset_text(retry)}.", out)


# --- the memory limiter -----------------------------------------------------------------

class _Window:
    __slots__ = ("entries", "total")

    def __init__(self):
        self.entries: deque = deque()  # [time, tokens, key, window id], oldest first
        self.total = 0


class RateLimits:
    """Sliding-log limits in this process (thread-safe). admit(call) returns the remaining
    headers or raises RateLimited, changing nothing when it refuses."""

    is_async = False

    def __init__(self, policy: Policy, clock: Callable[[], float]):
        self.policy, self.clock = policy, clock
        self._windows: dict[str, _Window] = {}
        self._log: deque = deque()  # every entry of every window, in admission order
        self._by_key: dict[str, list] = {}  # request key -> its (latest) entry, for settle
        self._lock = threading.Lock()
        self.refused = 0

    @classmethod
    def from_params(cls, rpm, tpm, limits, limits_file, clock) -> "RateLimits":
        return cls(Policy.from_params(rpm, tpm, limits, limits_file), clock)

    def _purge(self, now: float) -> None:
        cutoff = now - WINDOW
        log = self._log
        while log and log[0][0] <= cutoff:
            entry = log.popleft()
            window = self._windows[entry[3]]
            window.entries.popleft()  # the same entry: both are in admission order
            window.total -= entry[1]
            if not window.entries:
                del self._windows[entry[3]]
            if self._by_key.get(entry[2]) is entry:
                del self._by_key[entry[2]]

    def admit(self, call) -> Optional[dict]:
        limit = self.policy.limit_for(call.user, call.model)
        if limit is None:
            return None
        cost = int(call.tokens)
        with self._lock:
            now = self.clock()
            self._purge(now)
            window = self._windows.get(limit.window)
            entries = window.entries if window is not None else ()
            count, used = len(entries), window.total if window is not None else 0
            over = None
            if limit.rpm is not None and count + 1 > limit.rpm:
                over = "rpm"
            elif limit.tpm is not None and used + cost > limit.tpm:
                over = "tpm"
            if over is not None:
                self.refused += 1
                first = entries[0][0] + WINDOW - now if entries else 0.0
                tokens_at = _tokens_free_at(entries, used + cost - limit.tpm, now) if limit.tpm is not None else 0.0
                raise refusal(limit, over, count, used, cost, first if over == "rpm" else tokens_at, first, tokens_at)
            if window is None:
                window = self._windows[limit.window] = _Window()
            entry = [now, cost, call.key, limit.window]
            window.entries.append(entry)
            window.total += cost
            self._log.append(entry)
            self._by_key[call.key] = entry
            reset = window.entries[0][0] + WINDOW - now
            return headers(limit, count + 1, used + cost, reset, reset)

    async def admit_async(self, call) -> Optional[dict]:
        return self.admit(call)

    def settle(self, key: str, tokens: int) -> bool:
        """The request's charge becomes its actual usage (if it is still within the window)."""
        with self._lock:
            self._purge(self.clock())
            entry = self._by_key.get(key)
            if entry is None:
                return False
            self._windows[entry[3]].total += int(tokens) - entry[1]
            entry[1] = int(tokens)
            return True

    async def settle_async(self, key: str, tokens: int) -> bool:
        return self.settle(key, tokens)

    def usage(self, window: str) -> tuple[int, int]:
        """(requests, tokens) a window holds now."""
        with self._lock:
            self._purge(self.clock())
            w = self._windows.get(window)
            return (len(w.entries), w.total) if w is not None else (0, 0)

    def state(self) -> dict:
        with self._lock:
            self._purge(self.clock())
            busiest = sorted(self._windows.items(), key=lambda kv: -len(kv[1].entries))[:20]
            return {**self.policy.describe(), "refused": self.refused, "windows": len(self._windows),
                    "busiest": [{"window": json.loads(k), "requests": len(w.entries), "tokens": w.total}
                                for k, w in busiest]}


def _tokens_free_at(entries, needed: int, now: float) -> float:
    """Seconds until the oldest entries leaving the window free `needed` tokens (the whole
    window if they never can: a request over the limit by itself)."""
    if needed <= 0:
        return 0.0
    freed = 0
    for t, tokens, *_ in entries:
        freed += tokens
        if freed >= needed:
            return t + WINDOW - now
    return WINDOW
