"""Settings: defaults, then TFSHIP_API_* environment, then test_config; all documented. Budget: ~1 s."""
import pytest

from service import create_app, settings

SECRET = "a-secret-long-enough-for-the-hmac-key-000"


def test_layers(monkeypatch, tmp_path):
    monkeypatch.setenv("TFSHIP_API_MAX_PER_PAGE", "7")
    monkeypatch.setenv("TFSHIP_API_DEFAULT_PER_PAGE", "5")
    monkeypatch.setenv("TFSHIP_API_DATA_DIR", str(tmp_path))
    app = create_app({"KEY_SECRET": SECRET, "DEFAULT_PER_PAGE": 3})
    assert app.config["MAX_PER_PAGE"] == 7  # environment, parsed as JSON
    assert app.config["DEFAULT_PER_PAGE"] == 3  # test_config wins
    assert app.config["DATABASE_URL"] == f"sqlite:///{tmp_path}/registry.sqlite3"
    assert app.config["KEY_SECRET_FILE"] == f"{tmp_path}/api-key-secret"


def test_the_secret_never_stays_in_the_config(monkeypatch, tmp_path):
    monkeypatch.setenv("TFSHIP_API_KEY_SECRET", SECRET)
    app = create_app({"DATA_DIR": str(tmp_path)})
    assert "KEY_SECRET" not in app.config
    assert SECRET not in repr(dict(app.config))
    assert not (tmp_path / "api-key-secret").exists()


def test_secret_from_a_mounted_file(tmp_path):
    path = tmp_path / "mounted" / "secret"
    path.parent.mkdir()
    path.write_text(SECRET + "\n")
    app = create_app({"DATA_DIR": str(tmp_path), "KEY_SECRET_FILE": str(path),
                      "KEY_SECRET_CREATE": False})
    assert app.extensions["tfship_key_secret"] == SECRET.encode()


@pytest.mark.parametrize("config, message", [
    ({"KEY_SECRET": "short"}, "at least 32 characters"),
    ({"KEY_SECRET_CREATE": False}, "no API key secret"),
])
def test_bad_secrets_stop_the_start(tmp_path, config, message):
    with pytest.raises(RuntimeError, match=message):
        create_app({"DATA_DIR": str(tmp_path), **config})


def test_every_setting_is_documented():
    table = settings.markdown_table()
    names = [setting.name for setting in settings.all_settings()]
    assert len(names) == len(set(names)), "a setting is declared twice"
    for name in names:
        assert f"`TFSHIP_API_{name}`" in table
    for setting in settings.all_settings():
        assert len(setting.description) > 20, setting.name
    assert {"DATABASE_URL", "KEY_SECRET", "MODEL_SERVER_URL", "LOG_LEVEL"} <= set(names)
