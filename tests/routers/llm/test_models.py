"""Routing by the body's `model`: each pod serves a set of base models and LoRA adapters
(from config, or from its /v1/models through pod_models); the strategy picks among the pods
serving the model; a model nobody serves is UnknownModel (OpenAI's 404)."""

import pytest

from seldon_routers.errors import ConfigError, NoCapacity, UnknownModel
from seldon_routers.request import Request, empty_meta
from seldon_routers.routers.llm.router import LLMRouter

PODS = [
    {"name": "a", "models": ["llama-3-8b"], "adapters": ["sql-lora"]},
    {"name": "b", "models": ["llama-3-8b"]},
    {"name": "c", "models": ["mistral-7b"], "adapters": ["chat-lora"]},
]


def ask(r, puid: str, model=None):
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
    if model is not None:
        body["model"] = model
    return r.decide(Request(body, kind="jsonData", meta={**empty_meta(), "puid": puid}))


def picks(r, model, n: int = 12) -> set:
    return {ask(r, f"{model}-{i}", model).child for i in range(n)}


def test_a_model_goes_only_to_the_pods_serving_it():
    r = LLMRouter("least-request", pods=PODS, seed=0)
    assert picks(r, "llama-3-8b") == {0, 1}
    assert picks(r, "mistral-7b") == {2}
    d = ask(r, "m", "mistral-7b")
    assert (d.tags["pod"], d.tags["model"]) == ("c", "mistral-7b")


def test_a_lora_adapter_goes_to_the_pods_that_loaded_it():
    r = LLMRouter("random", pods=PODS, seed=0)
    assert picks(r, "sql-lora") == {0}
    assert picks(r, "chat-lora") == {2}
    assert r.catalog.is_adapter("sql-lora") and not r.catalog.is_adapter("llama-3-8b")


def test_no_model_named_means_any_pod():
    r = LLMRouter("random", pods=PODS, seed=0)
    assert picks(r, None, 30) == {0, 1, 2}


def test_an_unknown_model_is_openais_404_naming_what_is_served():
    r = LLMRouter("least-request", pods=PODS, seed=0)
    with pytest.raises(UnknownModel) as err:
        ask(r, "x", "gpt-4")
    assert err.value.http_status == 404
    assert err.value.openai_error == ("invalid_request_error", "model_not_found")
    assert "'gpt-4'" in str(err.value) and "llama-3-8b" in str(err.value) and "sql-lora" in str(err.value)
    assert r.ledger.counts() == [0, 0, 0]  # nothing counted


def test_the_strategy_picks_among_the_models_pods_only():
    r = LLMRouter("least-request", pods=PODS, seed=0)
    for i in range(3):
        ask(r, f"m{i}", "mistral-7b")  # pod c is busy, but serves no llama
    counts = r.ledger.counts()
    d = ask(r, "l", "llama-3-8b")
    assert d.child in (0, 1) and counts[2] == 3


def test_a_pod_listing_no_models_serves_any_model():
    pods = [{"name": "a", "models": ["llama-3-8b"]}, {"name": "any"}]
    r = LLMRouter("random", pods=pods, seed=0)
    assert picks(r, "llama-3-8b", 30) == {0, 1}
    assert picks(r, "something-else") == {1}


def test_discovered_models_and_adapters_replace_what_was_known():
    r = LLMRouter("random", n_branches=2, seed=0)
    assert picks(r, "qwen", 20) == {0, 1}  # nothing known yet: any pod
    r.pod_models(0, ["qwen"], ["qwen-sql"])
    r.pod_models(1, ["llama"], [])
    assert picks(r, "qwen") == {0}
    assert picks(r, "qwen-sql") == {0}
    assert r.state()["models"] == ["llama", "qwen", "qwen-sql"]
    r.pod_models(0, ["qwen"], [])  # the adapter unloaded
    with pytest.raises(UnknownModel):
        ask(r, "gone", "qwen-sql")


def test_when_every_pod_of_a_model_is_down_it_is_no_capacity_naming_them():
    r = LLMRouter("least-request", pods=PODS, seed=0)
    r.pod_down(2)
    assert picks(r, "llama-3-8b") == {0, 1}  # the other model's pods are unaffected
    with pytest.raises(NoCapacity, match=r"mistral-7b.*\(c\)") as err:
        ask(r, "m", "mistral-7b")
    assert err.value.http_status == 503
    r.pod_up(2)
    assert picks(r, "mistral-7b") == {2}


def test_a_pods_models_must_be_names():
    with pytest.raises(ConfigError, match=r"pods\[0\]\.models"):
        LLMRouter("random", pods=[{"name": "a", "models": [1]}])
