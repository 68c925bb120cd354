"""The local model server's first config and the reconciler's command line. Budget: <1 s."""
from infra.local import api, model_server, reconciler
from infra.local.settings import LocalSettings
from model.server import config as server_config
from service.delivery import model_config, reconciler as reconcile_command


def settings_for(tmp_path):
    return LocalSettings.from_env({"TFSHIP_STATE_DIR": str(tmp_path / "state"),
                                   "TFSHIP_MODELS_DIR": str(tmp_path / "models")})


def test_the_first_config_serves_only_the_stable_version_under_its_label(tmp_path):
    text = model_server.initial_model_config(settings_for(tmp_path), 7)
    [model] = server_config.parse(text)  # the model server's own parser
    assert model.name == "penguins" and model.base_path == str(tmp_path / "models" / "penguins")
    assert (model.policy.kind, model.policy.versions) == ("specific", (7,))
    assert model.label_map == {"stable": 7}
    [entry] = model_config.parse(text)  # and the reconciler's, which owns the file from then
    assert (entry.versions, entry.labels) == ((7,), {"stable": 7})


def test_the_first_stable_version_is_the_newest_export(tmp_path):
    settings = settings_for(tmp_path)
    for version in (1, 3, 2):
        (tmp_path / "models" / "penguins" / str(version)).mkdir(parents=True)
    (tmp_path / "models" / "penguins" / "notes").mkdir()
    assert api.first_stable(settings) == 3


def test_the_reconciler_command_parses_and_follows_the_local_settings(tmp_path):
    settings = LocalSettings.from_env({"TFSHIP_STATE_DIR": str(tmp_path),
                                       "TFSHIP_RECONCILE_INTERVAL_SECONDS": "0.3",
                                       "TFSHIP_API_ROLLOUT_CACHE_TTL_S": "1",
                                       "TFSHIP_MODEL_CONFIG_POLL_SECONDS": "1"})
    command = reconciler.command(settings)
    assert command[3] == "reconcile"
    args = reconcile_command.parser().parse_args(command[4:])
    assert args.registry == settings.api_url and args.model_servers == [settings.model_server_url]
    assert args.key_file == str(tmp_path / "reader.key")
    assert args.model_config_file == str(settings.model_config_file)
    assert (args.interval, args.unload_grace_seconds, args.once) == (0.3, 3.0, False)


def test_the_server_flags_parse_as_tf_servings_and_carry_the_thread_setting(tmp_path):
    from model.server import flags as server_flags

    settings = LocalSettings.from_env({"TFSHIP_STATE_DIR": str(tmp_path),
                                       "TFSHIP_MODEL_SERVER_TF_THREADS": "2"})
    parsed = server_flags.parse(model_server.flags(settings))  # the local server's own parser
    assert parsed.tensorflow_threads == (2, 2)
    assert parsed.model_config_file == str(settings.model_config_file)
