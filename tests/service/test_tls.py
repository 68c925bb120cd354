"""TLS: gunicorn serves HTTPS with a generated certificate (and HSTS), and the gateway's link to
the model server verifies the server's certificate against MODEL_SERVER_CA_BUNDLE.

Budget: ~7 s (openssl twice, two gunicorn starts, a TLS HTTP server in a thread).
"""
import json
import os
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from service import tls, upstream
from tests.service.reliability.api_process import ApiProcess
from tests.service.reliability.stores import registry_with_keys


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tls")
    return tls.generate_self_signed(str(folder / "cert.pem"), str(folder / "private" / "key.pem"))


def test_the_generated_key_is_private_and_the_certificate_names_localhost(certificate):
    cert_file, key_file = certificate
    assert os.stat(key_file).st_mode & 0o777 == 0o600
    context = ssl.create_default_context(cafile=cert_file)
    assert context.cert_store_stats()["x509_ca"] == 1


def test_half_a_tls_configuration_is_refused(certificate, tmp_path):
    with pytest.raises(RuntimeError, match="both"):
        tls.gunicorn_options(certificate[0], None)
    with pytest.raises(RuntimeError, match="does not exist"):
        tls.gunicorn_options(certificate[0], str(tmp_path / "missing.pem"))
    assert tls.gunicorn_options(None, None) == {}


def test_gunicorn_serves_https_with_hsts(certificate, tmp_path):
    settings, role_keys = registry_with_keys(tmp_path)
    cert_file, key_file = certificate
    api = ApiProcess({**settings, "TLS_CERT_FILE": cert_file, "TLS_KEY_FILE": key_file},
                     tmp_path / "api.log", workers=1, scheme="https", verify=cert_file).start()
    try:
        answer = requests.get(f"{api.url}/api/v1/models", verify=cert_file, timeout=10,
                              headers={"Authorization": f"Bearer {role_keys['reader']}"})
        assert answer.status_code == 200
        assert answer.headers["Strict-Transport-Security"].startswith("max-age=")
        with pytest.raises(requests.exceptions.SSLError):  # an unknown CA is refused
            requests.get(f"{api.url}/healthz", timeout=10)
        with pytest.raises(requests.ConnectionError):  # no plain HTTP beside HTTPS
            requests.get(api.url.replace("https", "http") + "/healthz", timeout=5)
    finally:
        api.stop()


def test_tfship_api_self_signed_tls_makes_and_serves_a_certificate(tmp_path):
    settings, _ = registry_with_keys(tmp_path)
    cert_file = tmp_path / "tls" / "cert.pem"  # <DATA_DIR>/tls
    api = ApiProcess(settings, tmp_path / "api.log", workers=1, scheme="https",
                     verify=str(cert_file), extra_args=["--self-signed-tls"])
    try:
        api.start()  # its health check trusts only the generated certificate
        assert (tmp_path / "tls" / "key.pem").stat().st_mode & 0o777 == 0o600
    finally:
        api.stop()
    assert "self-signed certificate" in api.log()


class _StatusHandler(BaseHTTPRequestHandler):
    def do_GET(self):
        payload = json.dumps({"model_version_status": [
            {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK"}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


@pytest.fixture
def tls_model_server(certificate):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StatusHandler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"https://localhost:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_the_model_server_link_verifies_the_certificate(tls_model_server, certificate):
    trusted = upstream.ModelServerClient(tls_model_server, ca_bundle=certificate[0])
    assert trusted.available_versions("penguins") == [1]
    untrusted = upstream.ModelServerClient(tls_model_server)
    with pytest.raises(upstream.UpstreamUnavailable):
        untrusted.available_versions("penguins")


def test_the_ca_bundle_comes_from_the_settings(app_factory, sqlite_url, certificate):
    from service import gateway
    app = app_factory(sqlite_url, MODEL_SERVER_CA_BUNDLE=certificate[0])
    assert gateway.state(app).client.pool.ca_bundle == certificate[0]
