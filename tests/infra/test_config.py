"""Stack config: Pulumi.yaml declares every key the reader reads, and validation names bad keys.

No Pulumi runtime: these call the pure validators. Budget: under 1 s.
"""
import pytest

pytest.importorskip("pulumi", reason="Pulumi programs are tested in .venv-infra")

import dataclasses

import pytest
import yaml

from infra import config, mocked

PROJECTS = {
    config.EnvironmentConfig: (mocked.ENVIRONMENT_PROJECT, ("dev", "staging", "prod")),
    config.PlatformConfig: (mocked.PLATFORM_PROJECT, ("nonprod", "prod")),
}


def typed(project_file, stack):
    """The stack's values as the reader would type them (strings parsed per declared type)."""
    raw, _ = mocked.project_config(project_file, stack)
    declared = yaml.safe_load(project_file.read_text())["config"]
    values = {}
    for full, value in raw.items():
        key = full.split(":", 1)[1]
        kind = declared[key]["type"]
        values[key] = {"integer": int, "boolean": lambda v: v == "true"}.get(kind, str)(value)
    return values


@pytest.mark.parametrize("cls", PROJECTS, ids=lambda c: c.__name__)
def test_pulumi_yaml_declares_exactly_the_keys_read(cls):
    project_file, _ = PROJECTS[cls]
    declared = yaml.safe_load(project_file.read_text())["config"]
    read = {config.key_of(f.name): f for f in dataclasses.fields(cls)}
    assert set(declared) == set(read), f"{project_file}: declared and read keys differ"
    types = {"str": "string", "int": "integer", "bool": "boolean"}
    for key, spec in declared.items():
        assert spec.get("description"), f"{key}: no description"
        if read[key].metadata.get("secret"):
            assert spec.get("secret") is True and "default" not in spec, f"{key}: a secret has no default"
            assert spec["type"] == "string", key
        else:
            assert "default" in spec, f"{key}: no default"
            assert spec["type"] == types[read[key].type], f"{key}: declared {spec['type']}, read as {read[key].type}"


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_environment_stacks_are_valid_before_images_are_pushed(stack):
    values = typed(mocked.ENVIRONMENT_PROJECT, stack)
    assert config.validate_environment(values, deploying=False) == []


@pytest.mark.parametrize("stack", ["dev", "staging", "prod"])
def test_deploying_refuses_placeholder_digests(stack):
    values = typed(mocked.ENVIRONMENT_PROJECT, stack)
    errors = config.validate_environment(values, deploying=True)
    assert {e.split(":")[0] for e in errors} == {k for k in values if k.endswith("Image")}
    real = {k: v.replace(config.PLACEHOLDER_DIGEST, "sha256:" + "ab" * 32) if k.endswith("Image") else v
            for k, v in values.items()}
    assert config.validate_environment(real, deploying=True) == []


@pytest.mark.parametrize("stack", ["nonprod", "prod"])
def test_platform_stacks_are_valid(stack):
    assert config.validate_platform(typed(mocked.PLATFORM_PROJECT, stack)) == []


@pytest.mark.parametrize("key, value, message", [
    ("apiBlueImage", "ghcr.io/example/api:latest", "pinned by digest"),
    ("apiLiveColour", "red", "blue, green"),
    ("apiReleasePhase", "done", "steady, release, switched"),
    ("apiExpandRevision", "0004; drop", "Alembic revision"),
    ("reconcilerUnloadGraceSeconds", 5, "at least 30"),
    ("apiMemoryLimit", "lots", "quantity"),
    ("apiHost", "not a host", "hostname"),
    ("sloProfile", "nightly", "profile of monitoring/slo.yaml"),
    ("modelSource", "ftp", "volume, uri"),
    ("databaseKind", "mysql", "cnpg, sqlite"),
    ("backupSchedule", "0 3 * * *", "six cron fields"),
    ("modelStoreUri", "/local/models", "s3:// or gs://"),
    ("apiMinReplicas", 9, "1 <= 9 <= 4"),
    ("logRetention", "a week", "duration"),
    ("namespace", "Tfship_Dev", "DNS label"),
])
def test_bad_values_are_reported_by_key(key, value, message):
    values = {**typed(mocked.ENVIRONMENT_PROJECT, "staging"), key: value}
    errors = config.validate_environment(values, deploying=False)
    assert any(key in e and message in e for e in errors), errors


def test_sqlite_needs_a_single_api_replica():
    values = {**typed(mocked.ENVIRONMENT_PROJECT, "dev"), "apiMaxReplicas": 3}
    assert any("sqlite" in e for e in config.validate_environment(values, deploying=False))


def test_sqlite_runs_one_colour_at_a_time():
    values = {**typed(mocked.ENVIRONMENT_PROJECT, "dev"), "apiReleasePhase": "release"}
    assert any("apiReleasePhase: sqlite" in e for e in config.validate_environment(values, deploying=False))


def test_build_raises_every_error_at_once():
    with pytest.raises(config.ConfigError) as raised:
        config.build(config.PlatformConfig, {}, ["a: one", "b: two"])
    assert "a: one" in str(raised.value) and "b: two" in str(raised.value)


def test_stack_files_hold_only_declared_keys(tmp_path):
    project = tmp_path / "Pulumi.yaml"
    project.write_text(mocked.ENVIRONMENT_PROJECT.read_text())
    (tmp_path / "Pulumi.dev.yaml").write_text("config:\n  tfship:apiReplicaz: 3\n")
    with pytest.raises(ValueError, match="apiReplicaz"):
        mocked.project_config(project, "dev")
