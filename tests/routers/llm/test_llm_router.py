"""The LLM router's contract: pods per model, strategies and mixes, in-flight counts that
completions release, tags, and the per-request strategy header."""

import collections

import pytest

from seldon_routers.errors import BadRequest, ConfigError, UnknownModel
from seldon_routers.registry import resolve
from seldon_routers.request import Feedback, Headers, Request, empty_meta

CHAT = {"model": "llama", "messages": [{"role": "user", "content": "Say this is a test!"}]}


def req(body=CHAT, headers=(), puid=""):
    meta = empty_meta()
    meta["puid"] = puid
    return Request(body, kind="jsonData", meta=meta, headers=Headers(list(headers)))


def done(puid, usage=None, routing=None):
    meta = empty_meta()
    meta["puid"] = puid
    response = Request({"usage": usage}, kind="jsonData") if usage else None
    return Feedback(Request(meta=meta), {}, 0.0, None, routing=routing, reward_given=False, response=response)


def test_least_request_spreads_and_a_completion_frees_its_pod():
    router = resolve("least-request")(n_branches=3, seed=0)
    picks = [router.decide(req(puid=f"p{i}")).child for i in range(6)]
    assert collections.Counter(picks) == {0: 2, 1: 2, 2: 2}
    router.learn(done("p0"))
    assert router.state()["in_flight"][picks[0]] == 1
    assert router.decide(req(puid="p6")).child == picks[0]  # now the least loaded


def test_a_request_without_puid_gets_one_for_its_completion():
    router = resolve("least-request")(n_branches=2)
    request = req()
    decision = router.decide(request)
    assert request.puid and decision.tags["pod"] == str(decision.child)
    router.learn(done(request.puid))
    assert router.state()["in_flight"] == [0, 0]


def test_a_completion_naming_only_its_pod_ends_that_pods_oldest_request():
    router = resolve("least-request")(n_branches=2)
    first = router.decide(req(puid="a")).child
    router.learn(done("", routing=first))  # Seldon's wrapper: no puid, the routing only
    assert router.state()["in_flight"] == [0, 0]
    router.learn(done("unknown"))  # never counted: changes nothing, never negative
    assert router.state()["in_flight"] == [0, 0]


def test_requests_go_only_to_pods_serving_their_model():
    pods = '[{"name": "a", "models": ["llama"]}, {"name": "b", "models": ["mistral"]}, {"name": "c", "models": ["llama"]}]'
    router = resolve("least-request")(pods=pods)
    assert {router.decide(req(puid=str(i))).child for i in range(10)} == {0, 2}
    mistral = dict(CHAT, model="mistral")
    decision = router.decide(req(mistral, puid="m"))
    assert decision.child == 1 and decision.tags["model"] == "mistral"
    with pytest.raises(UnknownModel, match="'gpt-4' is not served here"):
        router.decide(req(dict(CHAT, model="gpt-4"), puid="x"))
    assert sum(router.state()["in_flight"]) == 11  # the refused one counted nowhere


def test_llm_takes_the_strategy_from_the_header_and_names_valid_ones_when_unknown():
    router = resolve("llm")(n_branches=4, strategy="least-request", seed=1)
    decision = router.decide(req(headers=[("routing-strategy", "random")], puid="a"))
    assert decision.tags["strategy"] == "random" and decision.tags["strategy_from"] == "header"
    decision = router.decide(req(headers=[("Routing-Strategy", "least-request:2,random:1")], puid="b"))
    assert decision.tags["strategy"] == "least-request,random"
    before = router.state()["in_flight"]
    with pytest.raises(BadRequest, match="unknown strategy 'fastest'; valid: random, least-request"):
        router.decide(req(headers=[("routing-strategy", "fastest")], puid="c"))
    assert router.state()["in_flight"] == before


def test_a_fixed_strategy_router_ignores_the_header():
    router = resolve("least-request")(n_branches=2)
    decision = router.decide(req(headers=[("routing-strategy", "random")]))
    assert decision.tags["strategy"] == "least-request" and "strategy_from" not in decision.tags


@pytest.mark.parametrize("spec, message", [
    ("nope", "unknown strategy 'nope'"),
    ("random:0", "weight of random must be a number > 0"),
    ("random:x", "weight 'x' of random is not a number"),
    ("random,random", "random given twice"),
    ("", "expected a strategy name"),
])
def test_bad_strategy_config_stops_start_up(spec, message):
    with pytest.raises(ConfigError, match=message):
        resolve("llm")(n_branches=2, strategy=spec)


def test_power_of_two_takes_the_less_loaded_of_two_random_pods():
    router = resolve("power-of-two")(n_branches=8, seed=3)
    for i in range(7):  # load pods 0..6 with one request each
        router.ledger.acquire(f"x{i}", i)
    picks = collections.Counter(router.decide(req(puid=f"p{i}")).child for i in range(200))
    # pod 7 is empty: chosen whenever it is one of the two draws (about 2/8 of the time,
    # as the count grows the others catch up); no pod ever gets a request while a drawn
    # rival had fewer, so the spread stays within one request
    counts = router.state()["in_flight"]
    assert max(counts) - min(counts) <= 2 and picks[7] > 0


def test_random_spreads_over_the_candidates_and_is_seeded():
    a = [resolve("random")(n_branches=4, seed=5).decide(req()).child for _ in range(1)]
    b = [resolve("random")(n_branches=4, seed=5).decide(req()).child for _ in range(1)]
    assert a == b
    router = resolve("random")(n_branches=4, seed=5)
    picks = collections.Counter(router.decide(req()).child for _ in range(400))
    assert set(picks) == {0, 1, 2, 3} and min(picks.values()) > 60


def test_the_in_flight_ttl_is_read_as_a_duration():
    assert resolve("llm")(n_branches=2, in_flight_ttl="90s").ledger.ttl == 90
    with pytest.raises(ConfigError, match="in_flight_ttl"):
        resolve("llm")(n_branches=2, in_flight_ttl="0")


def test_a_body_that_is_no_openai_request_is_a_bad_request_and_counts_nothing():
    router = resolve("least-request")(n_branches=2)
    with pytest.raises(BadRequest, match="jsonData: an LLM router needs an OpenAI request body"):
        router.decide(Request([1, 2], kind="jsonData"))
    with pytest.raises(BadRequest, match="messages"):
        router.decide(req({"messages": 3}))
    assert router.state()["in_flight"] == [0, 0]


def test_a_strategy_the_router_is_not_configured_for_is_the_requests_400():
    router = resolve("llm")(n_branches=2)  # no profiles: slo cannot be built
    with pytest.raises(BadRequest, match="header routing-strategy: strategy slo is not available on this router"):
        router.decide(req(headers=[("routing-strategy", "slo")]))
    assert router.state()["in_flight"] == [0, 0]


@pytest.mark.parametrize("user", [{"id": 1}, ["a"], 5])
def test_a_user_that_is_no_string_is_a_400_and_counts_nothing(user):
    router = resolve("least-request")(n_branches=2)
    with pytest.raises(BadRequest, match="user: expected a string"):
        router.decide(req(dict(CHAT, user=user)))
    assert router.state()["in_flight"] == [0, 0]


def test_a_completion_as_str_data_settles_too():
    router = resolve("least-request")(n_branches=2, rpm=10, tpm=1000)
    request = req(puid="s", headers=[("user", "ann")])
    router.decide(request)
    meta = empty_meta()
    meta["puid"] = "s"
    router.learn(Feedback(Request(meta=meta), {}, 0.0, None, reward_given=False,
                          response=Request('{"usage": {"total_tokens": 7}}', kind="strData")))
    assert router.state()["in_flight"] == [0, 0]
    assert router.limits.usage('["ann", null]') == (1, 7)  # the estimate replaced by the usage
    with pytest.raises(BadRequest, match="response.strData"):
        router.learn(Feedback(Request(meta=meta), {}, 0.0, None, response=Request("nope", kind="strData")))
