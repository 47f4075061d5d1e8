"""Configuration is validated at start-up: every error names the rule and the field."""

import json
import subprocess
import sys

import pytest

from seldon_routers import ConfigError, RuleRouter, params, registry

CHILDREN = ["pool-a", "pool-b", "general"]


def rules(*rule_list, **top):
    return {"children": CHILDREN, "rules": list(rule_list), **top}


@pytest.mark.parametrize("config, match", [
    (rules({"name": "r", "match": {"headers": {"x": {"regex": "("}}}, "to": "pool-a"}),
     r"rules\[0\] \('r'\).match.headers.x.regex: invalid regex"),
    (rules({"to": "pool-a"}, {"name": "two", "to": "pool-z"}),
     r"rules\[1\] \('two'\).to\[0\].child: unknown child 'pool-z' \(children: pool-a, pool-b, general\)"),
    (rules({"to": 3}), r"rules\[0\].to\[0\].child: unknown child 3"),
    (rules({"name": "w", "to": [{"child": "pool-a", "weight": 1}, {"child": "pool-b"}]}),
     r"rules\[0\] \('w'\).to: set a weight on every target or on none"),
    (rules({"name": "w", "to": [{"child": "pool-a", "weight": 0}, {"child": "pool-b", "weight": 0}]}),
     r"rules\[0\] \('w'\).to weights: at least one weight must be > 0"),
    (rules({"name": "w", "to": [{"child": "pool-a", "weight": -1}, {"child": "pool-b", "weight": 2}]}),
     r"rules\[0\] \('w'\).to weights: weights must be finite and >= 0"),
    (rules({"name": "w", "to": [{"child": "pool-a", "weight": "9"}]}), r"rules\[0\] \('w'\).to\[0\].weight"),
    (rules({"name": "d", "to": ["pool-a", "pool-a"]}), r"rules\[0\] \('d'\).to: a child is listed twice"),
    (rules({"name": "k", "match": {}, "to": "pool-a", "when": {}}), r"rules\[0\] \('k'\): unknown key 'when'"),
    (rules({"name": "k", "match": {"header": {}}, "to": "pool-a"}), r"rules\[0\] \('k'\).match: unknown key 'header'"),
    (rules({"name": "k", "match": {"path": {"glob": "/a/**/b"}}, "to": "pool-a"}),
     r"rules\[0\] \('k'\).match.path.glob: '\*\*' must be the whole last segment"),
    (rules({"name": "k", "any_of": [{"tags": {"t": {"exact": "x", "present": True}}}], "to": "pool-a"}),
     r"rules\[0\] \('k'\).any_of\[0\].tags.t: exactly one of"),
    (rules({"name": "k", "any_of": [], "to": "pool-a"}), r"rules\[0\] \('k'\).any_of: expected a non-empty list"),
    (rules({"name": "k", "match": {"json": {"a..b": "x"}}, "to": "pool-a"}), r"rules\[0\] \('k'\).match.json.a..b"),
    (rules({"name": "k"}), r"rules\[0\] \('k'\).to: missing"),
    (rules({"name": "k", "to": "pool-a", "sticky_key": "cookie:x"}), r"rules\[0\] \('k'\).sticky_key"),
    (rules({"name": "k", "to": "pool-a"}, {"name": "k", "to": "pool-b"}), r"rules\[1\] \('k'\).name: another rule"),
    (rules({"to": "pool-a"}, fallback="nope"), r"fallback: unknown child 'nope'"),
    (rules({"to": "pool-a"}, extra=1), r"config: unknown key 'extra'"),
    ({"children": ["a", "a"], "rules": []}, "children: names must be unique"),
    ({"rules": [{"to": 0}]}, "children: name the children"),
    ({"children": CHILDREN, "rules": "x"}, "rules: expected a list"),
])
def test_bad_config_names_rule_and_field(config, match):
    with pytest.raises(ConfigError, match=match):
        RuleRouter(config=config)
    with pytest.raises(ConfigError, match=match):  # the same as inline JSON text
        RuleRouter(config=json.dumps(config))


def test_exactly_one_of_config_and_config_file():
    with pytest.raises(ConfigError, match="exactly one of config"):
        RuleRouter()
    with pytest.raises(ConfigError, match="exactly one of config"):
        RuleRouter(config="{}", config_file="x.yaml")


def test_config_file_json_and_yaml(tmp_path):
    doc = rules({"name": "r", "match": {"tags": {"t": "x"}}, "to": "pool-b"}, fallback="general")
    (tmp_path / "r.json").write_text(json.dumps(doc))
    (tmp_path / "r.yaml").write_text(
        "children: [pool-a, pool-b, general]\nfallback: general\n"
        "rules:\n  - name: r\n    match: {tags: {t: x}}\n    to: pool-b\n")
    for name in ("r.json", "r.yaml"):
        router = RuleRouter(config_file=str(tmp_path / name))
        assert router.state()["rules"] == [{"rule": "r", "to": {"pool-b": 1.0}}]
    with pytest.raises(ConfigError, match="config_file: cannot read"):
        RuleRouter(config_file=str(tmp_path / "absent.yaml"))
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ConfigError, match="config_file: not valid JSON"):
        RuleRouter(config_file=str(tmp_path / "bad.json"))


def test_branch_names_name_the_children_and_must_agree():
    doc = {"rules": [{"to": "b"}]}
    assert RuleRouter(config=doc, branch_names="a:b").decide.__self__.branch_names == ["a", "b"]
    with pytest.raises(ConfigError, match="branch_names: .* differs from the config's children"):
        RuleRouter(config={**doc, "children": ["b", "a"]}, branch_names="a:b")
    assert RuleRouter(config={"rules": [{"to": 1}]}, n_branches=2).branch_names == ["0", "1"]


def test_yaml_without_pyyaml_says_what_to_install(tmp_path):
    # A real interpreter where `import yaml` fails (a shadowing module that raises ImportError).
    (tmp_path / "yaml.py").write_text("raise ImportError('no PyYAML here')\n")
    code = ("from seldon_routers import RuleRouter, ConfigError\n"
            "try:\n    RuleRouter(config='rules: []', branch_names='a')\n"
            "except ConfigError as e:\n    print(e)\n"
            "print(RuleRouter(config='{\"rules\": [], \"fallback\": \"a\"}', branch_names='a').fallback)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                         env={"PYTHONPATH": str(tmp_path)}, check=True).stdout
    assert "pip install 'seldon-routers[rules]'" in out and out.strip().endswith("0")


def test_registered_and_listed_with_typed_parameters():
    assert registry.resolve("rules") is RuleRouter
    described = {p["name"]: p["type"] for p in params.describe(RuleRouter)}
    assert described == {"config": "str | dict", "config_file": "str", "branch_names": "str | list",
                         "n_branches": "int", "seed": "int"}


def test_seldon_parameters_build_it():
    parameters = [{"name": "config", "value": json.dumps(rules({"to": "pool-a"})), "type": "STRING"},
                  {"name": "seed", "value": "0", "type": "INT"}]
    router = params.build(RuleRouter, params.from_seldon_json(json.dumps(parameters)))
    assert router.n_children == 3 and router.seed == 0
