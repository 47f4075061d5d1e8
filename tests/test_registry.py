import pytest

from seldon_routers import ABTest, ConfigError
from seldon_routers import registry


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
