"""The reconciler in a cluster: replicas found through DNS, the model config kept in a ConfigMap.

No Kubernetes API server can run here: a small HTTP server answers the two calls the store
makes (GET and PUT of one ConfigMap) with the API server's resourceVersion rule (a stale PUT is
refused with 409) and checks the bearer token. The replicas and the registry are real HTTP
servers too; the pass runs the real Reconciler. Budget: under 3 s.
"""
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from service.delivery import config_store, model_config, replicas
from service.delivery.reconciler import Reconciler, run
from service.delivery.registry_client import RegistryClient
from tests.json_server import JsonServer
from tests.service.delivery.test_replicas import StatusServer

PATH = "/api/v1/namespaces/tfship/configmaps/model-server-model-config"


class FakeApiServer:
    """One ConfigMap behind GET/PUT with resourceVersion checks and a bearer token."""

    def __init__(self, text, token):
        self.token, self.tokens_seen, self.puts = token, [], []
        self.object = {"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": "model-server-model-config", "namespace": "tfship",
                                    "resourceVersion": "1", "labels": {"keep": "me"}},
                       "data": {"models.config": text}}
        self.http = JsonServer(self.handle)

    def handle(self, method, path, headers, body):
        self.tokens_seen.append(headers.get("Authorization"))
        if headers.get("Authorization") != f"Bearer {self.token}":
            return 401, {"kind": "Status", "message": "Unauthorized"}
        path, _, query = path.partition("?")
        if path != PATH:
            return 403, {"kind": "Status", "message": "forbidden: not this ConfigMap"}
        if method == "GET":
            return 200, {**self.object, "metadata": {**self.object["metadata"], "managedFields": [{"manager": "pulumi"}]}}
        self.puts.append((query, body))
        if body["metadata"].get("resourceVersion") != self.object["metadata"]["resourceVersion"]:
            return 409, {"kind": "Status", "message": "the object has been modified"}
        self.object = {**body, "metadata": {**body["metadata"],
                                            "resourceVersion": str(int(self.object["metadata"]["resourceVersion"]) + 1)}}
        return 200, self.object


@pytest.fixture
def api(tmp_path):
    text = model_config.render([model_config.ModelEntry(name="m", base_path="/models/m")])
    server = FakeApiServer(text, "token-1")
    token = tmp_path / "token"
    token.write_text("token-1\n")
    yield server, config_store.KubernetesApi(server.http.url, str(token)), token
    server.http.close()


def store_of(client):
    return config_store.ConfigMapStore.parse("tfship/model-server-model-config", "models.config", client)


def test_resolve_gives_one_url_per_address_sorted():
    def lookup(host, port, type):
        assert (host, port) == ("model-server-replicas.tfship.svc.cluster.local", 8501)
        return [(0, 0, 0, "", (a, port)) for a in ("10.0.0.12", "10.0.0.9", "10.0.0.12", "fd00::1")]
    assert replicas.resolve("http://model-server-replicas.tfship.svc.cluster.local:8501", lookup) == [
        "http://10.0.0.9:8501", "http://10.0.0.12:8501", "http://[fd00::1]:8501"]
    assert "http://127.0.0.1:8501" in replicas.resolve("http://localhost:8501")


def test_resolve_without_replicas_is_unreachable_and_a_bad_url_is_refused():
    with pytest.raises(replicas.ReplicaUnreachable, match="no replica address"):
        replicas.resolve("http://no-replicas.invalid:8501")
    for url in ("model-server:8501", "ftp://h:1", "http://h:port", "http://h:8501/v1"):
        with pytest.raises(ValueError):
            replicas.split_url(url)


def test_store_reads_and_replaces_with_the_resource_version_it_read(api):
    server, client, token = api
    store = store_of(client)
    entries = store.read()
    entries[0] = model_config.ModelEntry(name="m", base_path="/models/m", versions=(1, 2), labels={"stable": 1})
    token.write_text("token-2\n")  # the kubelet rotated the projected token
    server.token = "token-2"
    store.write(entries)
    query, body = server.puts[-1]
    assert body["metadata"]["resourceVersion"] == "1" and query == "fieldManager=tfship-reconciler"
    assert "managedFields" not in body["metadata"], "the server keeps field ownership itself"
    assert server.object["metadata"]["labels"] == {"keep": "me"}, "only the key changes"
    assert model_config.parse(server.object["data"]["models.config"])[0].labels == {"stable": 1}
    assert server.tokens_seen[-1] == "Bearer token-2"


def test_a_concurrent_change_is_refused_not_overwritten(api):
    server, client, _ = api
    store = store_of(client)
    entries = store.read()
    server.object["metadata"]["resourceVersion"] = "7"  # someone else replaced it meanwhile
    before = server.object["data"]["models.config"]
    with pytest.raises(config_store.ConfigMapError, match="409"):
        store.write(entries)
    assert server.object["data"]["models.config"] == before
    assert store.read() and store.last_read["metadata"]["resourceVersion"] == "7"


def test_errors_name_the_call_but_never_the_token(api, tmp_path):
    server, client, token = api
    server.token = "another"
    with pytest.raises(config_store.ConfigMapError) as raised:
        store_of(client).read()
    assert "401" in str(raised.value) and "token-1" not in str(raised.value)
    missing = config_store.KubernetesApi(server.http.url, str(tmp_path / "none"))
    with pytest.raises(config_store.ConfigMapError, match="cannot read the API token"):
        store_of(missing).read()
    with pytest.raises(ValueError):
        config_store.ConfigMapStore.parse("no-namespace", "models.config", client)


def test_a_pass_loads_the_canary_through_the_config_map_on_replicas_found_by_dns(api, tmp_path):
    server, client, _ = api
    replica = StatusServer({1: ("AVAILABLE", "OK"), 2: ("LOADING", "OK")}, {"stable": 1})
    registry = JsonServer(lambda method, path, headers, body: (
        200, {"stable": 1, "canary": 2, "previous": None, "canary_weight": 0.0})
        if path == "/api/v1/models/m/rollout" else (404, {"message": "no"}))
    try:
        def lookup(host, port, type):
            return [(0, 0, 0, "", ("127.0.0.1", port))] if host == "replicas.test" else []
        found = lambda: replicas.resolve(f"http://replicas.test:{replica.server.server_port}", lookup)  # noqa: E731
        reconciler = Reconciler(RegistryClient(registry.url, "reader-key"), store_of(client), found, 60)
        assert reconciler.reconcile_once() is False
        written = model_config.parse(server.object["data"]["models.config"])[0]
        assert written.versions == (1, 2) and written.labels == {}, "canary loaded first, no label yet"
        assert server.object["metadata"]["resourceVersion"] == "2"
    finally:
        replica.close()
        registry.close()


def test_the_command_outside_a_cluster_says_so(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    (tmp_path / "key").write_text("k")
    code = run("reconcile", ["--registry", "http://127.0.0.1:9", "--key-file", str(tmp_path / "key"),
                             "--model-config-configmap", "tfship/model-server-model-config",
                             "--model-server-dns", "http://replicas.test:8501", "--once", "--timeout", "0"])
    assert code == 1 and "KUBERNETES_SERVICE_HOST is unset" in capsys.readouterr().err


def test_the_loop_touches_its_heartbeat_while_the_registry_is_down(tmp_path):
    config = tmp_path / "models.config"
    config.write_text(model_config.render([model_config.ModelEntry(name="m", base_path="/models/m")]))
    (tmp_path / "key").write_text("k")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]
    heartbeat = tmp_path / "heartbeat"
    process = subprocess.Popen(
        [sys.executable, "-m", "service.delivery.reconciler", "--registry", f"http://127.0.0.1:{dead}",
         "--key-file", str(tmp_path / "key"), "--model-config-file", str(config),
         "--model-server", f"http://127.0.0.1:{dead}", "--interval", "0.1", "--heartbeat-file", str(heartbeat)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        deadline = time.monotonic() + 20
        while not heartbeat.exists() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        assert heartbeat.exists(), "no heartbeat"
        first = heartbeat.stat().st_mtime_ns
        while heartbeat.stat().st_mtime_ns == first and time.monotonic() < deadline:
            time.sleep(0.05)
        assert heartbeat.stat().st_mtime_ns > first, "the heartbeat keeps moving"
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
