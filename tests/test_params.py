import pytest

from seldon_routers import ABTest, ConfigError
from seldon_routers import params


def test_seldon_json_types_are_honoured():
    got = params.from_seldon_json(
        '[{"name":"n","value":"3","type":"INT"},{"name":"e","value":"0.5","type":"FLOAT"},'
        '{"name":"d","value":"2","type":"DOUBLE"},{"name":"s","value":"a:b","type":"STRING"},'
        '{"name":"b","value":"yes","type":"BOOL"},{"name":"f","value":"0","type":"BOOL"}]')
    assert got == {"n": 3, "e": 0.5, "d": 2.0, "s": "a:b", "b": True, "f": False}
    assert type(got["n"]) is int


@pytest.mark.parametrize("text, field", [
    ('[{"name":"n","value":"x","type":"INT"}]', "'n'"),
    ('[{"name":"n","value":"1","type":"LONG"}]', "unknown type"),
    ('[{"value":"1"}]', r"parameters\[0\]"),
    ('{"name":"n"}', "JSON list"),
    ('[', "not valid JSON"),
    ('[{"name":"b","value":"maybe","type":"BOOL"}]', "'b'"),
])
def test_bad_seldon_parameters_name_the_fault(text, field):
    with pytest.raises(ConfigError, match=field):
        params.from_seldon_json(text)


def test_flag_values_are_typed_by_the_constructor():
    router = params.build(ABTest, params.from_pairs(["n_branches=3", "seed=0", "weights=[1,1,2]"]))
    assert router.n_children == 3 and router.seed == 0
    assert router.weights == [0.25, 0.25, 0.5]


@pytest.mark.parametrize("pairs, match", [
    (["n_branches=three"], "'n_branches'"),
    (["colour=red"], "'colour'.*takes no such parameter"),
    (["novalue"], "name=value"),
    (["weights=1:x"], "weights"),
    (["n_branches=2", "weights=1:1:1"], "weights"),
])
def test_bad_flag_values_name_the_parameter(pairs, match):
    with pytest.raises(ConfigError, match=match):
        params.build(ABTest, params.from_pairs(pairs))


def test_describe_lists_constructor_parameters():
    names = [p["name"] for p in params.describe(ABTest)]
    assert names[:4] == ["n_branches", "weights", "seed", "branch_names"]


def test_every_builtin_router_refuses_hostile_parameters_with_a_config_error():
    """What `serve` turns into exit 2 and a message naming the parameter; anything else would
    be a traceback (or, for a count that sizes arrays, the machine's memory)."""
    import json
    import os
    import subprocess
    import sys

    script = os.path.join(os.path.dirname(__file__), "params_fuzz.py")
    done = subprocess.run([sys.executable, script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout) == []
