"""gateway.yaml: each field checked, errors naming the field; per-model policies inherit."""

import pytest

from seldon_routers.errors import ConfigError
from seldon_routers.gateway import config
from seldon_routers.gateway.app import build_router

PODS = [{"name": "a", "url": "http://127.0.0.1:1", "models": ["llama"]},
        {"name": "b", "url": "http://127.0.0.1:2", "models": ["llama"]}]


def test_models_inherit_the_defaults_and_override_some():
    cfg = config.parse({"pods": PODS, "timeout": 60, "retries": 3, "fallback": [{"name": "spare", "url": "http://127.0.0.1:3"}],
                        "models": {"llama": {"timeout": "30s", "fallback": []}}})
    assert cfg.policy("llama").timeout == 30 and cfg.policy("llama").retries == 3 and cfg.policy("llama").fallback == ()
    assert cfg.policy("other").timeout == 60 and cfg.policy(None).fallback == (0,)


@pytest.mark.parametrize("doc, field", [
    ({}, "pods"),
    ({"pods": [{"name": "a", "url": "ftp://x"}]}, "pods[0].url"),
    ({"pods": PODS, "retries": -1}, "retries"),
    ({"pods": PODS, "timeout": "soon"}, "timeout"),
    ({"pods": PODS, "mirror": {"url": "http://127.0.0.1:9", "fraction": 2}}, "mirror.fraction"),
    ({"pods": PODS, "models": {"llama": {"fallback": ["nope"]}}}, "models.llama.fallback"),
    ({"pods": PODS, "models": {"llama": {"colour": 1}}}, "models.llama"),
    ({"pods": PODS, "prots": 1}, "unknown field"),
])
def test_a_bad_field_is_named(doc, field):
    with pytest.raises(ConfigError, match=field.replace("[", r"\[").replace("]", r"\]")):
        config.parse(doc)


def test_the_router_gets_the_pods_or_their_count():
    llm = build_router(config.parse({"pods": PODS, "strategy": "prefix-cache"}))
    assert llm.branch_names == ["a", "b"]
    weights = build_router(config.parse({"pods": PODS, "router": "ab-test", "parameters": {"weights": [0.5, 0.5]}}))
    assert weights.n_children == 2
    with pytest.raises(ConfigError, match="strategy"):
        build_router(config.parse({"pods": PODS, "strategy": "fastest-please"}))
