"""prefix-cache through the router's public entry points: decide on an OpenAI body as
jsonData, learn to complete."""

import random
import string
import sys

import pytest
from llm_cases import in_threads

from seldon_routers.errors import ConfigError
from seldon_routers.registry import resolve
from seldon_routers.request import Feedback, Headers, Request

BLOCK = 16  # small blocks keep the prompts short


def router(n=4, name="prefix-cache", **params):
    return resolve(name)(n_branches=n, **{"block_size": BLOCK, "seed": 1, **params})


def chat(*turns, system="You are a helpful assistant who answers briefly and precisely."):
    messages = [{"role": "system", "content": system}]
    for i, text in enumerate(turns):
        messages.append({"role": "user" if i % 2 == 0 else "assistant", "content": text})
    return {"model": "m", "messages": messages}


def request(body, **headers):
    return Request(body, kind="jsonData", headers=Headers(list(headers.items())))


def route(r, body, **headers):
    decision = r.decide(request(body, **headers))
    return decision.child, decision.tags


def done(r, req):
    r.learn(Feedback(req, {}, 0.0, None))


def words(rng, n):
    """n random five-letter words: texts that share no block by chance."""
    return " ".join("".join(rng.choice(string.ascii_lowercase) for _ in range(5)) for _ in range(n))


def test_the_same_prefix_goes_to_the_same_pod():
    r = router()
    req = request(chat("What is the capital of France, and why?"))
    first = r.decide(req)
    assert first.tags["rule"] == "no-match"
    done(r, req)
    for question in ["What is the capital of Spain?", "And of Italy, please?", "Portugal?"]:
        req = request(chat(question))
        decision = r.decide(req)
        assert decision.child == first.child and decision.tags["rule"] == "prefix"
        assert decision.tags["prefix_match"] >= len("system: You are a helpful assistant who answers briefly "
                                                    "and precisely.\nuser: ") // BLOCK
        done(r, req)


class Healthy:
    """The router's signals with only some pods healthy (the signals helper's real one
    excludes down pods; this keeps the test to the index)."""

    def __init__(self, signals, up):
        self.inner, self.up = signals, set(up)

    def healthy(self, pods):
        return [p for p in pods if p in self.up]

    def __getattr__(self, name):
        return getattr(self.inner, name)


def only(r, *pods):
    r.signals = Healthy(r.signals if not isinstance(r.signals, Healthy) else r.signals.inner, pods)


def test_the_longer_match_wins():
    rng = random.Random(1)
    common, more = words(rng, 20), words(rng, 20)
    r = router()
    only(r, 0)
    assert route(r, {"prompt": common})[0] == 0
    only(r, 1)
    assert route(r, {"prompt": common + more})[0] == 1
    only(r, 0, 1, 2, 3)
    pod, tags = route(r, {"prompt": common + more + " and a question"})
    assert pod == 1 and tags["rule"] == "prefix"
    assert tags["prefix_match"] == len((common + more).encode()) // BLOCK
    # a prompt sharing only the shorter part is held by both: either may take it, nobody else
    assert route(r, {"prompt": common + " something else entirely"})[0] in (0, 1)


def test_a_later_turn_of_a_chat_goes_to_the_pod_of_the_earlier_turn():
    rng = random.Random(2)
    r = router(n=8)
    chats = {}
    for user in range(8):
        system, turns = f"tenant {user}: " + words(rng, 10), [words(rng, 12)]
        req = request(chat(*turns, system=system))
        chats[user] = (r.decide(req).child, system, turns)
        done(r, req)
    for _ in range(3):
        for user, (pod, system, turns) in chats.items():
            turns += [words(rng, 8), words(rng, 6)]  # the assistant's answer, the next question
            req = request(chat(*turns, system=system))
            decision = r.decide(req)
            assert decision.child == pod and decision.tags["rule"] == "prefix"
            done(r, req)


def test_a_different_system_prompt_is_a_different_prefix():
    rng = random.Random(3)
    question = words(rng, 30)
    r = router()
    only(r, 0)
    pirate, poet = "Pirate, you are.", "Poet, you are!!!"  # the same length: the question's blocks align
    route(r, chat(question, system=pirate))
    only(r, 0, 1, 2, 3)
    pod, tags = route(r, chat(question, system=poet))
    # the question's blocks are the same bytes at the same offsets, but their keys are chained
    # to a different first block: nothing matches
    assert tags["rule"] == "no-match" and tags["prefix_match"] == 0
    assert r.state()["prefix-cache"]["blocks_per_pod"][pod] == len(f"system: {poet}\nuser: {question}") // BLOCK


def test_load_imbalance_beyond_the_bound_routes_by_least_request():
    rng = random.Random(4)
    prompt = {"prompt": words(rng, 40)}
    r = router(prefix_max_imbalance=3, prefix_sigma=0)
    home, _ = route(r, prompt)
    for _ in range(3):  # three more in flight on the pod holding the prefix: max - min = 3
        pod, tags = route(r, prompt)
        assert pod == home and tags["rule"] == "prefix"
    pod, tags = route(r, prompt)  # 4 in flight there, 0 elsewhere: beyond the bound
    assert tags["rule"] == "load-fallback" and tags["prefix_imbalance"] == 4
    assert pod != home


def test_the_relative_rule_also_has_to_hold():
    """SGLang's rule: rebalance only when max - min > bound and max > ratio x min."""
    rng = random.Random(5)
    prompt = {"prompt": words(rng, 40)}
    r = router(n=2, prefix_max_imbalance=2, prefix_balance_ratio=3, prefix_sigma=0)
    home = route(r, prompt)[0]
    other = 1 - home
    only(r, other)
    for _ in range(3):
        route(r, {"prompt": words(rng, 40)})  # 3 in flight on the other pod
    only(r, 0, 1)
    held_by_ratio = False
    while True:
        counts = r.ledger.counts()
        if counts[home] - counts[other] > 2 and counts[home] > 3 * counts[other]:
            break
        held_by_ratio |= counts[home] - counts[other] > 2  # the absolute bound alone would fall back
        pod, tags = route(r, prompt)
        assert (pod, tags["rule"]) == (home, "prefix")
    assert held_by_ratio
    pod, tags = route(r, prompt)
    assert (pod, tags["rule"]) == (other, "load-fallback")


def test_the_sigma_filter_leaves_out_pods_above_mean_plus_sigma():
    rng = random.Random(6)
    prompt = {"prompt": words(rng, 40)}
    r = router(n=5, prefix_max_imbalance=100, prefix_sigma=1.0)
    home, _ = route(r, prompt)  # the prefix on home, 1 in flight there
    only(r, *[p for p in range(5) if p != home])
    for _ in range(4):  # one in flight on each other pod: all at 1
        route(r, {"prompt": words(rng, 30)})
    only(r, home)
    route(r, {"prompt": words(rng, 30)})
    only(r, *range(5))
    assert route(r, prompt)[0] == home  # 2 there, 1 elsewhere: one more is noise, not load
    pod, tags = route(r, {"prompt": words(rng, 30)})  # one more elsewhere: 3 there, 1, 1, 1 and 2
    assert pod != home
    # mean 1.6, sigma 0.8: home (3 > 2.4, and 2 above the least loaded) is out, nobody else has it
    pod, tags = route(r, prompt)
    assert pod != home and tags["rule"] == "no-match"
    r2 = router(n=5, prefix_max_imbalance=100, prefix_sigma=0)  # the same without the filter
    home2, _ = route(r2, prompt)
    route(r2, prompt)
    assert route(r2, prompt)[0] == home2


def test_capacity_evicts_a_pods_oldest_blocks_and_bounds_the_index():
    rng = random.Random(7)
    r = router(n=1, prefix_blocks=16)
    prompts = [{"prompt": words(rng, 24)} for _ in range(12)]  # about 9 blocks each
    for body in prompts:
        route(r, body)
    state = r.state()["prefix-cache"]
    assert state["blocks_per_pod"][0] <= 16 + 16 // 8 and state["blocks"] <= 18
    assert state["evictions"] > 0
    # the newest prompt is remembered whole, the oldest forgotten
    assert route(r, prompts[-1])[1]["prefix_match"] == len(prompts[-1]["prompt"]) // BLOCK
    assert route(r, prompts[0])[1]["prefix_match"] == 0


def test_eviction_keeps_a_shared_prefix_used_since():
    rng = random.Random(8)
    r = router(n=1, prefix_blocks=24)
    system = words(rng, 16)
    first = {"prompt": system + " " + words(rng, 16)}
    route(r, first)
    for _ in range(10):  # new prompts on the same system prompt, then others
        route(r, {"prompt": system + " " + words(rng, 16)})
    assert r.state()["prefix-cache"]["evictions"] > 0
    assert route(r, {"prompt": system + " tail"})[1]["prefix_match"] >= len(system) // BLOCK
    assert route(r, first)[1]["prefix_match"] < len(first["prompt"]) // BLOCK  # its own tail went


def test_state_and_completion():
    r = router()
    req = request(chat("hello there, how are you doing today?"))
    pod = r.decide(req).child
    assert r.state()["in_flight"][pod] == 1
    done(r, req)
    assert r.state()["in_flight"][pod] == 0
    state = r.state()["prefix-cache"]
    assert state["blocks"] == state["blocks_per_pod"][pod] > 0 and state["block_size"] == BLOCK


def test_the_llm_router_mixes_prefix_cache_with_least_request():
    rng = random.Random(9)
    prompt = {"prompt": words(rng, 40)}
    r = resolve("llm")(n_branches=4, block_size=BLOCK, seed=1, prefix_sigma=0)
    mix = {"routing-strategy": "prefix-cache:3,least-request:2"}
    home, tags = route(r, prompt, **mix)
    assert tags["strategy"] == "prefix-cache,least-request" and tags["strategy_from"] == "header"
    # prefix 3 beats least-request 2 while home is at most a little busier
    assert route(r, prompt, **mix)[0] == home
    # the default strategy (least-request) neither reads nor fills the index
    assert route(r, prompt)[0] != home


@pytest.mark.parametrize("field,value", [("block_size", 0), ("prefix_blocks", 0), ("prefix_sigma", -1),
                                         ("prefix_max_imbalance", -1), ("prefix_balance_ratio", -2)])
def test_bad_options_name_the_field(field, value):
    with pytest.raises(ConfigError, match=field):
        router(**{field: value}).decide(request({"prompt": "x" * 64}))


def test_threads_routing_at_once_keep_the_index_whole():
    """Seldon's wrapper routes from threads: inserts and batch evictions must not race."""
    r = router(n=4, prefix_blocks=32)
    bodies = [{"prompt": words(random.Random(i), 40)} for i in range(200)]
    errors = []

    def work(k):
        try:
            for body in bodies[k::8]:
                req = request(body)
                r.decide(req)
                done(r, req)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    in_threads(work)
    assert not errors
    state = r.state()["prefix-cache"]
    assert state["evictions"] > 0 and max(state["blocks_per_pod"]) <= 32 + 4
    assert state["blocks"] == len(set().union(*(d.keys() for d in r.scorer("prefix-cache").lru)))


def test_without_xxhash_it_says_which_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "xxhash", None)  # import xxhash now raises ImportError
    with pytest.raises(ConfigError, match=r"prefix-cache needs xxhash.*seldon-routers\[llm\]"):
        router()


def test_a_pod_that_goes_down_leaves_the_index_and_comes_back_empty():
    r = router(n=3)
    req = request(chat("Tell me about the weather in Paris in spring."))
    pod = r.decide(req).child
    done(r, req)
    assert r.decide(request(chat("Tell me about the weather in Rome."))).tags["rule"] == "prefix"
    r.pod_down(pod)
    r.pod_up(pod)  # restarted: its KV cache is empty, and so is its share of the index
    assert r.state()["prefix-cache"]["blocks_per_pod"][pod] == 0
    assert r.decide(request(chat("Tell me about the weather in Oslo."))).tags["rule"] == "no-match"


def test_keys_kept_for_a_system_prompt_are_the_keys_hashed_afresh(monkeypatch):
    """The first message's keys come from a cache after its first request: they must be the
    very keys the plain block-by-block chain gives, for every length around the block edges."""
    from seldon_routers.routers.llm import prefix

    rng = random.Random(9)
    warm = router()
    bodies = []
    for length in range(60, 130):
        system = words(rng, 40)[:length]
        bodies += [chat(turn, system=system) for turn in ("one question", "another, longer question on it")]
    got = [warm.scorer("prefix-cache").keys(warm.call_of(request(b))) for b in bodies]
    assert warm.scorer("prefix-cache")._heads  # the cache was used
    monkeypatch.setattr(prefix, "_HEAD_MIN", 10 ** 9)  # no cache: every block hashed
    plain = router()
    assert got == [plain.scorer("prefix-cache").keys(plain.call_of(request(b))) for b in bodies]
    assert not plain.scorer("prefix-cache")._heads
    monkeypatch.setattr(prefix, "_FEW", 0)  # every chain through numpy, none in plain Python
    vector = router()
    assert got == [vector.scorer("prefix-cache").keys(vector.call_of(request(b))) for b in bodies]


def test_what_a_pod_holds_stays_a_whole_prefix_under_eviction():
    """Blocks of a prompt held by a pod are always its first k blocks (the binary search
    relies on it), through evictions and prefixes kept without a fresh stamp."""
    rng = random.Random(5)
    r = router(n=3, prefix_blocks=40)
    systems = [words(rng, 12) for _ in range(4)]
    prompts = [chat(*[words(rng, rng.randrange(2, 8)) for _ in range(rng.randrange(1, 4))],
                    system=rng.choice(systems)) for _ in range(60)]
    scorer = r.scorer("prefix-cache")
    for step in range(1500):
        req = request(rng.choice(prompts))
        r.decide(req)
        if rng.random() < 0.7:
            done(r, req)
    assert scorer.evictions > 0
    for body in prompts:
        keys = scorer.keys(r.call_of(request(body)))
        for lru in scorer.lru:
            held = [k in lru for k in keys]
            assert held == sorted(held, reverse=True), held
