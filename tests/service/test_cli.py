"""`tfship db|keys|api`: migrate, create keys, serve the CRUD flow under a real gunicorn.

`db` and `keys` run in-process through the console script's main (each process start costs
seconds here); `tfship api` (gunicorn, 2 workers) and `flask --app service run` are real
processes. On SQLite (secret file created on first start) and on PostgreSQL (secret from
the environment). Budget: ~15 s.
"""
import json
import os
import signal
import stat
import subprocess
import sys
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from service import migrate
from tests.conftest import free_port

TFSHIP = os.path.join(os.path.dirname(sys.executable), "tfship")
FLASK = os.path.join(os.path.dirname(sys.executable), "flask")
KEY_SECRET = "a-secret-from-the-environment-0123456789"


def tfship(capsys, *args):
    """Run `tfship args` in this process (the console script's main); return (stdout, stderr)."""
    from tfship.cli import main
    capsys.readouterr()
    status = main(list(args))
    out, err = capsys.readouterr()
    assert status == 0, err
    return out, err


@pytest.fixture(params=["sqlite", "postgres"])
def api_env(request, tmp_path, monkeypatch):
    """TFSHIP_API_* settings (set in this process too) for a fresh SQLite file or the session's
    PostgreSQL; returns the environment for API processes."""
    settings = {"TFSHIP_API_DATA_DIR": str(tmp_path / "data"), "TFSHIP_API_KEY_CACHE_TTL_S": "0",
                "TFSHIP_API_LOG_LEVEL": "WARNING",
                "TFSHIP_API_MODEL_SERVER_URL": "http://127.0.0.1:9"}
    if request.param == "postgres":
        settings["TFSHIP_API_DATABASE_URL"] = request.getfixturevalue("postgres_url")
        settings["TFSHIP_API_KEY_SECRET"] = KEY_SECRET
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    return {**os.environ, **settings}


def wait_until_up(url, process, log, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server exited: {log.read_text()[-2000:]}")
        try:
            if requests.get(url, timeout=1).status_code == 200:
                return
        except requests.RequestException:
            time.sleep(0.1)
    pytest.fail(f"the server did not answer {url} within {timeout} s")


def serve(command, env, log_path, health_url):
    """Start command, wait for health_url; return the process (the caller stops it)."""
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        wait_until_up(health_url, process, log_path)
    except BaseException:
        stop(process)
        raise
    return process


def stop(process):
    process.send_signal(signal.SIGINT)  # gunicorn: quick shutdown (TERM waits on keep-alives)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def test_migrate_keys_and_crud_under_gunicorn(api_env, tmp_path, capsys):
    out, _ = tfship(capsys, "db", "upgrade")
    assert "migrated" in out
    admin_key, err = tfship(capsys, "keys", "create", "--role", "admin", "--name", "e2e admin")
    admin_key = admin_key.strip()
    assert admin_key.startswith("tfs_") and "shown only once" in err
    reader_key = tfship(capsys, "keys", "create", "--role", "reader", "--name", "e2e reader")[0].strip()
    if "TFSHIP_API_KEY_SECRET" not in api_env:
        secret_file = os.path.join(api_env["TFSHIP_API_DATA_DIR"], "api-key-secret")
        assert stat.S_IMODE(os.stat(secret_file).st_mode) == 0o600

    listed = json.loads(tfship(capsys, "keys", "list", "--json")[0])
    by_name = {row["name"]: row for row in listed}
    assert by_name["e2e admin"]["role"] == "admin" and by_name["e2e admin"]["revoked_at"] is None
    assert admin_key not in json.dumps(listed)
    assert admin_key.startswith(f"tfs_{by_name['e2e admin']['prefix']}_")

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = serve([TFSHIP, "api", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
                   api_env, tmp_path / "gunicorn.log", f"{base}/healthz")
    try:
        session = requests.Session()
        admin = {"Authorization": f"Bearer {admin_key}"}
        models = f"{base}/api/v1/models"
        created = session.post(models, json={"name": "e2e", "owner": "ci"}, headers=admin, timeout=10)
        assert created.status_code == 201, created.text
        assert created.headers["Location"] == "/api/v1/models/e2e"
        read = session.get(f"{models}/e2e", headers={"X-API-Key": reader_key}, timeout=10)
        assert read.json()["owner"] == "ci"
        updated = session.patch(f"{models}/e2e", json={"owner": "ops"}, timeout=10,
                                headers={**admin, "If-Match": read.headers["ETag"]})
        assert updated.status_code == 200 and updated.json()["owner"] == "ops"
        stale = session.put(f"{models}/e2e", json={"description": "", "owner": "x", "tags": []},
                            headers={**admin, "If-Match": read.headers["ETag"]}, timeout=10)
        assert stale.status_code == 412 and stale.json()["error"]["code"] == "precondition_failed"
        listed = session.get(f"{models}?owner=ops", headers=admin, timeout=10).json()
        assert [m["name"] for m in listed["items"]] == ["e2e"]
        forbidden = session.delete(f"{models}/e2e", headers={"X-API-Key": reader_key}, timeout=10)
        assert forbidden.status_code == 403
        assert session.delete(f"{models}/e2e", headers=admin, timeout=10).status_code == 204
        assert session.get(f"{models}/e2e", headers=admin, timeout=10).status_code == 404
        ready = session.get(f"{base}/readyz", timeout=10).json()
        assert ready["dependencies"]["database"] == {**ready["dependencies"]["database"],
                                                     "status": "ok", "revision": migrate.current_head()}
        assert ready["dependencies"]["model_server"]["status"] == "down"

        # Six calls hit /api/v1/models/<name>, served by either worker: the counter, read
        # through whichever worker answers /metrics, sums them all (multiprocess mode).
        exposition = session.get(f"{base}/metrics", timeout=10).text
        served = sum(sample.value for family in text_string_to_metric_families(exposition)
                     for sample in family.samples
                     if sample.name == "tfship_http_requests_total"
                     and sample.labels["route"] == "/api/v1/models/<name>")
        assert served == 6, exposition

        tfship(capsys, "keys", "revoke", by_name["e2e reader"]["prefix"])
        revoked = session.get(models, headers={"X-API-Key": reader_key}, timeout=10)
        assert revoked.status_code == 401
        session.close()
    finally:
        stop(server)
    assert "Traceback" not in (tmp_path / "gunicorn.log").read_text()


def test_revoking_an_unknown_prefix_fails(tmp_path, monkeypatch, capsys):
    from tfship.cli import main
    monkeypatch.setenv("TFSHIP_API_DATA_DIR", str(tmp_path))
    tfship(capsys, "db", "upgrade")
    assert main(["keys", "revoke", "0123456789ab"]) == 1
    assert "no API key has prefix" in capsys.readouterr().err


def test_flask_run_serves_the_app(tmp_path):
    env = {**os.environ, "TFSHIP_API_DATA_DIR": str(tmp_path), "TFSHIP_API_LOG_LEVEL": "WARNING"}
    port = free_port()
    server = serve([FLASK, "--app", "service", "run", "--port", str(port)], env,
                   tmp_path / "flask.log", f"http://127.0.0.1:{port}/healthz")
    try:
        answer = requests.get(f"http://127.0.0.1:{port}/api/v1/models", timeout=10)
        assert answer.status_code == 401 and answer.json()["error"]["code"] == "unauthorized"
    finally:
        stop(server)
