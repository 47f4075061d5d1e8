"""Per-user rate limits (routers/llm/limits.py): a sliding log exact at every window
boundary, where a fixed minute window admits twice the limit; tokens charged from the
estimate and settled from usage; precedence of user, model and default limits; refusals
that change nothing; exactness under threads; the router's order (limits after the pick,
before the in-flight count). Time is the router's injected clock, so every count is exact."""

from __future__ import annotations

import threading

import pytest
from llm_cases import Ask, Clock, in_threads

from seldon_routers.errors import ConfigError, RateLimited
from seldon_routers.request import Feedback, Headers, Request
from seldon_routers.routers.llm.limits import WINDOW, Policy, RateLimits, reset_text
from seldon_routers.routers.llm.prompt import estimate_tokens, prompt_text
from seldon_routers.routers.llm.router import LLMRouter


def limiter(rpm=None, tpm=None, limits=None, clock=None) -> tuple[RateLimits, Clock]:
    clock = clock or Clock()
    return RateLimits.from_params(rpm, tpm, limits, None, clock), clock


def admitted(limits, ask=None) -> bool:
    try:
        limits.admit(ask or Ask())
        return True
    except RateLimited:
        return False


class FixedMinuteWindow:
    """AIBrix's limiter, for comparison: a counter per user and minute (floor(t / 60))."""

    def __init__(self, rpm: int):
        self.rpm, self.counts = rpm, {}

    def admit(self, now: float) -> bool:
        minute = int(now // 60)
        if self.counts.get(minute, 0) >= self.rpm:
            return False
        self.counts[minute] = self.counts.get(minute, 0) + 1
        return True


def most_in_any_60s(times: list) -> int:
    """The most admissions any half-open 60-second interval holds (it suffices to start
    one at each admission)."""
    return max(sum(1 for u in times if t <= u < t + WINDOW) for t in times)


# --- the window -----------------------------------------------------------------------------

def test_sliding_log_admits_exactly_rpm_in_every_60_seconds_where_a_fixed_window_admits_twice():
    rpm = 5
    limits, clock = limiter(rpm=rpm, clock=Clock(0.0))
    fixed = FixedMinuteWindow(rpm)
    # A burst at the end of one minute and at the start of the next, then steady load.
    schedule = [59.0 + 0.1 * i for i in range(20)] + [61.0 + 0.5 * i for i in range(400)]
    ours, theirs = [], []
    for t in schedule:
        clock.t = t
        if admitted(limits, Ask(key=f"r{t}")):
            ours.append(t)
        if fixed.admit(t):
            theirs.append(t)
    assert most_in_any_60s(ours) == rpm  # never more, and the limit is reached
    assert most_in_any_60s(theirs) == 2 * rpm  # 5 in 59.0..59.4 and 5 in 60.0..60.4
    assert theirs[:2 * rpm] == [59.0 + 0.1 * i for i in range(5)] + [60.0 + 0.1 * i for i in range(5)]
    # In steady state the log frees one slot exactly 60 s after each admission.
    assert ours[:rpm] == [59.0 + 0.1 * i for i in range(5)]
    assert ours[rpm:2 * rpm] == [119.0, 119.5, 120.0, 120.5, 121.0]  # 59.0 leaves at 119.0, the next by 119.5, ...


def test_an_admission_leaves_exactly_60_seconds_later():
    limits, clock = limiter(rpm=1)
    assert admitted(limits)
    clock.t += WINDOW - 1e-6
    assert not admitted(limits)
    clock.t += 1e-6
    assert admitted(limits)


def test_refusal_names_the_limit_and_says_when_to_retry_and_changes_nothing():
    limits, clock = limiter(rpm=2, tpm=1000)
    limits.admit(Ask(tokens=100, key="a"))
    clock.t += 10
    limits.admit(Ask(tokens=100, key="b"))
    clock.t += 5
    before = limits.state()
    with pytest.raises(RateLimited) as caught:
        limits.admit(Ask(tokens=100, key="c"))
    exc = caught.value
    assert (exc.http_status, exc.grpc_code, exc.openai_error) == (429, "RESOURCE_EXHAUSTED",
                                                                  ("rate_limit_error", "rate_limit_exceeded"))
    assert "requests per minute (RPM): limit 2, used 2" in exc.message and "'alice'" in exc.message
    assert exc.headers == {"x-ratelimit-limit-requests": "2", "x-ratelimit-remaining-requests": "0",
                           "x-ratelimit-reset-requests": "45s", "x-ratelimit-limit-tokens": "1000",
                           "x-ratelimit-remaining-tokens": "800", "x-ratelimit-reset-tokens": "0s",
                           "retry-after": "45"}  # the first admission leaves at +60, 45 s from now
    assert limits.state() == {**before, "refused": 1}
    assert limits.usage('["alice", null]') == (2, 200)


def test_tokens_per_minute_and_the_retry_when_enough_tokens_leave():
    limits, clock = limiter(tpm=100)
    limits.admit(Ask(tokens=30, key="a"))
    clock.t += 20
    limits.admit(Ask(tokens=50, key="b"))
    clock.t += 1
    with pytest.raises(RateLimited) as caught:  # 80 + 40 > 100: 20 must leave, the first 30 do at +60
        limits.admit(Ask(tokens=40, key="c"))
    assert caught.value.headers["retry-after"] == "39"
    assert caught.value.headers["x-ratelimit-remaining-tokens"] == "20"
    assert "tokens per minute (TPM): limit 100, used 80, requested 40" in caught.value.message
    assert admitted(limits, Ask(tokens=20, key="d"))  # exactly the limit is allowed
    assert limits.usage('["alice", null]') == (3, 100)


def test_a_request_over_the_limit_by_itself_says_so():
    limits, _ = limiter(tpm=100)
    with pytest.raises(RateLimited) as caught:
        limits.admit(Ask(tokens=101))
    assert "this request alone is over the limit" in caught.value.message
    assert caught.value.headers["retry-after"] == "60"


def test_settle_replaces_the_estimate_while_the_request_is_in_the_window():
    limits, clock = limiter(tpm=1000)
    limits.admit(Ask(tokens=900, key="a"))  # the estimate: prompt + max_tokens
    assert not admitted(limits, Ask(tokens=200, key="b"))
    assert limits.settle("a", 120) is True  # the usage the response reported
    assert admitted(limits, Ask(tokens=200, key="b"))
    assert limits.usage('["alice", null]') == (2, 320)
    assert limits.settle("unknown", 5) is False
    clock.t += WINDOW
    assert limits.settle("a", 999) is False  # out of the window: nothing to reconcile
    assert limits.usage('["alice", null]') == (0, 0)


def test_headers_of_an_admission():
    limits, clock = limiter(rpm=10, tpm=1000)
    limits.admit(Ask(tokens=100, key="a"))
    clock.t += 15
    assert limits.admit(Ask(tokens=50, key="b")) == {
        "x-ratelimit-limit-requests": "10", "x-ratelimit-remaining-requests": "8", "x-ratelimit-reset-requests": "45s",
        "x-ratelimit-limit-tokens": "1000", "x-ratelimit-remaining-tokens": "850", "x-ratelimit-reset-tokens": "45s"}
    assert (reset_text(60), reset_text(0.25), reset_text(-1)) == ("1m0s", "0.25s", "0s")


def test_a_reused_puid_is_still_counted_each_time():
    limits, _ = limiter(rpm=2)
    assert admitted(limits, Ask(key="same")) and admitted(limits, Ask(key="same"))
    assert not admitted(limits, Ask(key="same"))


def test_idle_users_are_forgotten():
    limits, clock = limiter(rpm=5)
    for i in range(50):
        limits.admit(Ask(user=f"u{i}", key=str(i)))
    assert limits.state()["windows"] == 50
    clock.t += WINDOW
    limits.admit(Ask(user="late"))
    assert limits.state()["windows"] == 1
    assert len(limits._by_key) == 1


# --- which limit -------------------------------------------------------------------------

DOC = {"users": {"alice": {"rpm": 10, "tpm": 1000}, "bob": {"enabled": False}, "carol": {"rpm": None}},
       "models": {"llama": {"rpm": 100}, "embed": {"enabled": False}}}


def test_precedence_user_then_model_then_default():
    policy = Policy.from_params(5, 500, DOC, None)
    assert policy.limit_for("alice", "gpt")[:2] == (10, 1000)  # the user's entry
    assert policy.limit_for("alice", "llama")[:2] == (10, 1000)  # beats the model's
    assert policy.limit_for("dave", "llama")[:2] == (100, 500)  # the model's rpm, the default tpm
    assert policy.limit_for("dave", "gpt")[:2] == (5, 500)  # the defaults
    assert policy.limit_for("carol", "gpt")[:2] == (None, 500)  # null lifts the default rpm
    assert policy.limit_for("bob", "gpt") is None  # switched off for the user
    assert policy.limit_for("alice", "embed") is None  # and for the model, whoever calls it
    assert policy.limit_for(None, "gpt") is None and policy.limit_for("", "gpt") is None  # no user, no limit
    # A model with an entry has a window of its own; the others share the user's general one.
    assert policy.limit_for("dave", "llama").window != policy.limit_for("dave", "gpt").window
    assert policy.limit_for("dave", "gpt").window == policy.limit_for("dave", "mistral").window
    assert Policy.from_params(None, None, None, None).limit_for("x", None) is None


def test_each_model_with_an_entry_counts_apart():
    limits, _ = limiter(rpm=1, limits={"models": {"llama": {"rpm": 1}}})
    assert admitted(limits, Ask(model="llama")) and admitted(limits, Ask(model="gpt"))
    assert not admitted(limits, Ask(model="mistral"))  # shares gpt's (the general) window
    assert not admitted(limits, Ask(model="llama"))


def test_limits_file_in_yaml(tmp_path):
    path = tmp_path / "limits.yaml"
    path.write_text("rpm: 3\nusers:\n  alice: {rpm: 10, tpm: 1000}\nmodels:\n  embed: {enabled: false}\n")
    policy = Policy.from_params(None, None, None, str(path))
    assert policy.limit_for("alice", None)[:2] == (10, 1000)
    assert policy.limit_for("bob", None)[:2] == (3, None)
    assert policy.limit_for("bob", "embed") is None


@pytest.mark.parametrize("kwargs, message", [
    ({"limits": {"users": {"alice": {"rmp": 1}}}}, "limits.users.alice.rmp: unknown key"),
    ({"limits": {"users": {"alice": {"rpm": 0}}}}, "limits.users.alice.rpm: must be an integer >= 1"),
    ({"limits": {"models": {"m": {"enabled": "no"}}}}, "limits.models.m.enabled: expected true or false"),
    ({"limits": {"user": {}}}, "limits.user: unknown key"),
    ({"limits": {"users": ["alice"]}}, "limits.users: expected an object"),
    ({"limits": "[1, 2]"}, "limits: expected an object"),
    ({"limits": "{bad json"}, "limits: not valid JSON"),
    ({"rpm": 5, "limits": {"rpm": 6}}, "rpm: given both as a parameter and in limits"),
    ({"tpm": -1}, "tpm: must be an integer >= 1"),
    ({"limits": {}, "limits_file": "x.yaml"}, "limits: give limits .* or limits_file"),
    ({"limits_file": "/nonexistent/limits.yaml"}, "limits_file: cannot read"),
])
def test_bad_configuration_names_the_field(kwargs, message):
    args = {"rpm": None, "tpm": None, "limits": None, "limits_file": None, **kwargs}
    with pytest.raises(ConfigError, match=message):
        Policy.from_params(**args)


# --- concurrency ---------------------------------------------------------------------------

def test_exact_under_eight_threads():
    limits, _ = limiter(rpm=300, tpm=10 ** 9)
    results, barrier = [], threading.Barrier(8)

    def worker(n):
        barrier.wait()
        mine = [admitted(limits, Ask(key=f"{n}-{i}")) for i in range(100)]
        results.extend(mine)

    in_threads(worker)
    assert results.count(True) == 300 and len(results) == 800
    assert limits.usage('["alice", null]') == (300, 3000)


# --- in the router ---------------------------------------------------------------------------

def chat(user=None, puid="", text="hello there", max_tokens=20, header_user=None, model="llama"):
    body = {"model": model, "messages": [{"role": "user", "content": text}], "max_tokens": max_tokens}
    if user:
        body["user"] = user
    headers = Headers([("user", header_user)] if header_user else [])
    return Request(body, kind="jsonData", meta={"puid": puid} if puid else None, headers=headers)


def completion(puid, total_tokens):
    return Feedback(Request(meta={"puid": puid}), {}, 0.0, None,
                    response=Request({"usage": {"total_tokens": total_tokens}, "choices": []}, kind="jsonData"))


def test_router_checks_limits_after_the_pick_and_before_counting():
    router = LLMRouter(n_branches=2, rpm=2, tpm=100)
    clock = Clock()
    router.clock = clock
    d = router.decide(chat(header_user="alice", puid="p1"))
    assert d.tags["ratelimit_remaining"]["x-ratelimit-remaining-requests"] == "1"
    cost = estimate_tokens(prompt_text(chat().features)) + 20  # the estimate: prompt + max_tokens
    assert d.tags["ratelimit_remaining"]["x-ratelimit-remaining-tokens"] == str(100 - cost)
    router.decide(chat(user="alice", puid="p2"))  # the body's user, without the header
    counts = router.ledger.counts()
    with pytest.raises(RateLimited):
        router.decide(chat(header_user="alice", puid="p3"))
    assert router.ledger.counts() == counts and sum(counts) == 2  # refused: not counted in flight
    assert router.decide(chat(puid="p4")).tags.get("ratelimit_remaining") is None  # no user: no limit
    router.learn(completion("p1", 7))  # usage settles the charge, and the request completes
    assert router.limits.usage('["alice", null]') == (2, 7 + cost)
    assert sum(router.ledger.counts()) == 2
    clock.t += WINDOW
    assert router.decide(chat(header_user="alice", puid="p5")).child in (0, 1)


def test_router_user_header_is_configurable():
    router = LLMRouter(n_branches=1, rpm=1, user_header="X-Api-User")
    router.decide(Request({"model": "m", "prompt": "x"}, kind="jsonData", headers=Headers([("x-api-user", "al")])))
    with pytest.raises(RateLimited):
        router.decide(Request({"model": "m", "prompt": "x"}, kind="jsonData", headers=Headers([("x-api-user", "al")])))
    router.decide(chat(header_user="al"))  # the `user` header is no longer read; the body has none
