"""The pods config and the model catalog: which pods serve a request's model."""

import pytest

from seldon_routers.errors import ConfigError, UnknownModel
from seldon_routers.routers.llm.pods import Catalog, read_pods


def test_pods_from_names_or_config():
    assert [p.name for p in read_pods(None, None, 3, None)] == ["0", "1", "2"]
    pods = read_pods('[{"name": "a", "url": "http://127.0.0.1:1", "models": ["m"], "adapters": ["lora"],'
                     ' "gpu": "A100", "cost_per_hour": 3}, "b"]', None, None, None)
    assert pods[0].models == {"m"} and pods[0].adapters == {"lora"} and pods[0].cost_per_hour == 3.0
    assert pods[1].models is None  # said nothing: serves any model
    yaml_pods = read_pods("pods:\n  - name: a\n    models: [m]\n", None, None, None)
    assert yaml_pods[0].models == {"m"}


@pytest.mark.parametrize("spec, message", [
    ("[]", "non-empty list"),
    ('[{"name": "a", "gpus": 1}]', r"pods\[0\]: unknown field 'gpus'"),
    ('[{"name": ""}]', r"pods\[0\].name"),
    ('[{"name": "a", "url": "ftp://x"}]', r"pods\[0\].url"),
    ('[{"name": "a", "cost_per_hour": -1}]', r"pods\[0\].cost_per_hour"),
    ('[{"name": "a", "models": "m"}, {"name": "a"}]', "unique"),
    ('[{"name": "a", "models": [1]}]', r"pods\[0\].models"),
])
def test_bad_pods_config_names_the_field(spec, message):
    with pytest.raises(ConfigError, match=message):
        read_pods(spec, None, None, None)


def test_pods_must_agree_with_n_branches_and_branch_names():
    with pytest.raises(ConfigError, match="n_branches"):
        read_pods('["a", "b"]', None, 3, None)
    with pytest.raises(ConfigError, match="branch_names"):
        read_pods('["a", "b"]', None, None, "a:c")
    assert len(read_pods('["a", "b"]', None, 2, "a:b")) == 2


def test_catalog_routes_models_and_adapters_to_their_pods():
    pods = read_pods('[{"name": "a", "models": ["llama"], "adapters": ["sql"]},'
                     ' {"name": "b", "models": ["llama", "mistral"]}, {"name": "c", "models": ["e5"]}]',
                     None, None, None)
    catalog = Catalog(pods)
    assert catalog.candidates("llama") == [0, 1]
    assert catalog.candidates("sql") == [0] and catalog.is_adapter("sql")
    assert catalog.candidates(None) == [0, 1, 2]
    with pytest.raises(UnknownModel, match="'gpt-4' is not served here; models: e5, llama, mistral, sql"):
        catalog.candidates("gpt-4")
    catalog.update(2, frozenset({"e5", "mistral"}))  # what its /v1/models now lists
    assert catalog.candidates("mistral") == [1, 2]


def test_pods_that_serve_any_model_take_unknown_names_too():
    catalog = Catalog(read_pods('[{"name": "a", "models": ["llama"]}, "b"]', None, None, None))
    assert catalog.candidates("llama") == [0, 1] and catalog.candidates("other") == [1]


def test_pods_from_a_file_and_errors_naming_pods_parameters(tmp_path):
    path = tmp_path / "pods.yaml"
    path.write_text("- name: a\n  models: [m]\n- b\n")
    assert [p.name for p in read_pods(None, str(path), None, None)] == ["a", "b"]
    with pytest.raises(ConfigError, match="pods_file: cannot read"):
        read_pods(None, str(tmp_path / "missing.yaml"), None, None)
    with pytest.raises(ConfigError, match="pods: give exactly one of pods .* and pods_file"):
        read_pods('["a"]', str(path), None, None)
