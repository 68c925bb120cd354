"""The local settings: defaults, environment overrides, and what derives from them. Budget: <1 s."""
from pathlib import Path

from infra.local.settings import LocalSettings


def test_defaults_are_the_local_stack_and_tf_servings():
    settings = LocalSettings.from_env({})
    assert (settings.model_server_port, settings.api_port) == (8501, 8080)
    assert settings.reconcile_interval_seconds == 1.0
    assert settings.rollout_cache_ttl_seconds == 2.0
    assert settings.state_dir == Path(".tfship").absolute()
    assert settings.model_server_tf_threads == 0  # TF Serving's default: TensorFlow sizes the pools


def test_the_environment_overrides_and_unknown_variables_are_ignored():
    settings = LocalSettings.from_env({
        "TFSHIP_RECONCILE_INTERVAL_SECONDS": "0.3", "TFSHIP_API_ROLLOUT_CACHE_TTL_S": "1",
        "TFSHIP_MODEL_CONFIG_POLL_SECONDS": "1", "TFSHIP_STATE_DIR": "/tmp/x", "OTHER": "y",
        "TFSHIP_MODEL_SERVER_TF_THREADS": "1"})
    assert settings.reconcile_interval_seconds == 0.3
    assert settings.model_server_tf_threads == 1
    assert settings.state_dir == Path("/tmp/x")
    assert settings.key_file("reader") == Path("/tmp/x/reader.key")


def test_the_unload_grace_outlasts_the_gateway_cache_and_the_config_poll():
    settings = LocalSettings.from_env({"TFSHIP_API_ROLLOUT_CACHE_TTL_S": "1.5",
                                       "TFSHIP_MODEL_CONFIG_POLL_SECONDS": "3"})
    assert settings.unload_grace_seconds == 1.5 + 3 + 1
    assert LocalSettings.from_env({}).unload_grace_seconds == 5.0
