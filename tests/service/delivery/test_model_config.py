"""Reading and writing TF Serving's ModelServerConfig text. Budget: <1 s."""
import pytest

from service.delivery import model_config

INITIAL = '''# written by tfship up
model_config_list {
  config {
    name: "penguins"
    base_path: "/srv/models/penguins"
    model_platform: "tensorflow"
    model_version_policy { all {} }
    version_labels { key: "stable" value: 2 }
  }
  config: { name: "other" base_path: "/srv/o" model_version_policy { latest { num_versions: 2 } } }
}
'''


def test_reads_what_tfship_up_and_pulumi_write():
    penguins, other = model_config.parse(INITIAL)
    assert (penguins.name, penguins.base_path, penguins.platform) == (
        "penguins", "/srv/models/penguins", "tensorflow")
    assert penguins.versions is None and penguins.policy_text == "all {}"
    assert penguins.labels == {"stable": 2}
    assert other.versions is None and other.policy_text == "latest { num_versions: 2 }"


def test_written_specific_config_reads_back(tmp_path):
    entries = model_config.parse(INITIAL)
    entries[0].versions, entries[0].labels = (3, 2), {"stable": 2, "canary": 3}
    path = tmp_path / "models.config"
    model_config.write(path, entries)
    text = path.read_text()
    assert "model_version_policy { specific { versions: 2 versions: 3 } }" in text
    assert 'version_labels { key: "canary" value: 3 }' in text
    assert "latest { num_versions: 2 }" in text
    again = model_config.read(path)
    assert (again[0].versions, again[0].labels) == ((2, 3), {"canary": 3, "stable": 2})
    assert [p.name for p in tmp_path.iterdir()] == ["models.config"]  # no temporary left


@pytest.mark.parametrize("text", ["model_config_list {", "model_config_list { config { name } }",
                                  'model_config_list { config { name: "a" } } }', "{{"])
def test_malformed_text_is_a_clear_error(text):
    with pytest.raises(model_config.ConfigFileError):
        model_config.parse(text)
