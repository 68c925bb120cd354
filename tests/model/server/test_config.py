"""ModelServerConfig text parsing and version policies. Time budget: < 1 s (no TensorFlow)."""
import pytest

from model.server import config

TEXT = """
model_config_list {
  config { name: "m" base_path: "/models/m" model_platform: "tensorflow"
           model_version_policy { specific { versions: 1 versions: 2 } }
           version_labels { key: "stable" value: 1 } version_labels { key: "canary" value: 2 } }
  config { name: "n" base_path: "relative/n" model_version_policy { latest { num_versions: 2 } } }
  config { name: "o" base_path: "/o" model_version_policy { all {} } }
  config { name: "p" base_path: "/p" }
}
"""


def test_parse_policies_labels_and_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    m, n, o, p = config.parse(TEXT)
    assert m == config.ModelConfig("m", "/models/m", config.VersionPolicy("specific", 1, (1, 2)),
                                   (("canary", 2), ("stable", 1)))
    assert m.label_map == {"stable": 1, "canary": 2}
    assert n.base_path == str(tmp_path / "relative" / "n")
    assert n.policy == config.VersionPolicy("latest", 2)
    assert o.policy.kind == "all"
    assert p.policy == config.VersionPolicy("latest", 1)


@pytest.mark.parametrize("policy,found,selected", [
    (config.VersionPolicy(), {1, 2, 10}, {10}),
    (config.VersionPolicy("latest", 2), {1, 2, 10}, {2, 10}),
    (config.VersionPolicy("all"), {1, 2}, {1, 2}),
    (config.VersionPolicy("specific", versions=(1, 3)), {1, 2}, {1}),
    (config.VersionPolicy(), set(), set()),
])
def test_policy_selection(policy, found, selected):
    assert policy.select(found) == selected


@pytest.mark.parametrize("text,message", [
    ("model_config_list { config { name: 'm' base_path: '/m' } ", "Invalid ModelServerConfig"),
    ("model_config_list { config { name: 'm' base_path: '/m' } "
     "config { name: 'm' base_path: '/n' } }",
     "Illegal to list model m multiple times"),
    ("model_config_list { config { name: 'm' } }", "has no base_path"),
    ("model_config_list { config { name: 'm' base_path: '/m' model_platform: 'onnx' } }",
     "unsupported model_platform"),
    ("model_config_list { config { name: 'm' base_path: '/m' "
     "model_version_policy { specific { } } } }", "lists no versions"),
])
def test_refused_configs(text, message):
    with pytest.raises(config.ConfigError, match=message):
        config.parse(text)


def test_read_reports_a_missing_file(tmp_path):
    with pytest.raises(config.ConfigError, match="Cannot read model config file"):
        config.read(str(tmp_path / "missing.config"))


def test_from_flags_is_latest_one():
    (model,) = config.from_flags("m", "/m")
    assert model == config.ModelConfig("m", "/m")
