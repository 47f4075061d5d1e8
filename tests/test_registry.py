import json
import os

import pytest

from seldon_routers import ABTest, ConfigError
from seldon_routers import params, registry


def test_builtin_names_and_import_paths_resolve_to_the_same_class():
    assert registry.resolve("ab-test") is ABTest
    assert registry.resolve("seldon_routers.ABTest") is ABTest
    assert registry.resolve("seldon_routers.routers.ab_test:ABTest") is ABTest


@pytest.mark.parametrize("spec, match", [
    ("no-such-router", "neither a built-in"),
    ("no_such_module.Router", "cannot import"),
    ("seldon_routers.NoSuchClass", "no class"),
    ("seldon_routers.errors:ConfigError", "no route"),
])
def test_unknown_routers_are_config_errors(spec, match):
    with pytest.raises(ConfigError, match=match):
        registry.resolve(spec)


DIGITS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples", "digits-router",
                      "model.onnx")
# The `--param` strings each built-in is given: n_branches, plus what it needs (a config, a
# criterion, a model) and its seed where it draws at random.
PARAMS = {
    "rules": ['config={"rules": [{"to": 0}]}', "seed=1"],
    "time-of-day": ['config={"default": 0, "windows": []}', "seed=1"],
    "canary": ["min_reward=0.5", "seed=1"],
    "classifier": [f"model_path={DIGITS}", 'class_to_child={"0": 0, "1": 1}', "fallback=2"],
    "slo": ['pods=' + json.dumps([{"name": n, "cost_per_hour": 1, "profile": {"load": [0], "ttft": [0.1]}}
                                  for n in "abc"]), "slo_ttft=0.5", "seed=1"],
}


def test_every_builtin_builds_from_string_parameters():
    for name in registry.BUILTINS:
        pairs = ["n_branches=3", *PARAMS.get(name, ["seed=1"])]
        router = params.build(registry.resolve(name), params.from_pairs(pairs))
        assert router.n_children == 3, name
