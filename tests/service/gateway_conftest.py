"""Real servers for the gateway's tests: a fault-injecting HTTP server and the local model server.

Import the fixtures into a test module (``from tests.service.gateway_conftest import fault_server``).
``FaultServer`` is a real HTTP/1.1 server in a thread that answers like TF Serving or fails on
demand (sleeps, 5xx, non-JSON): fault injection against real HTTP, not a mock.
"""
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from loadtests.bench import servers
from tests.conftest import free_port

MODEL_NAME = "penguins"


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a client that timed out and hung up is what the tests inject


class FaultServer:
    """A TF-Serving-shaped HTTP/1.1 (keep-alive) server whose next answers are set by the test.

    ``mode``: "ok" (echo a predict answer / a status), ("sleep", s), ("status", code),
    "garbage" (200 with a non-JSON body). ``hits`` records (method, path, headers, client
    port, body) of every request.
    """

    def __init__(self):
        self.mode = "ok"
        self.hits = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 5  # idle keep-alive connections end, so their threads do

            def do_GET(self):
                owner._answer(self)

            do_POST = do_GET

            def log_message(self, *args):
                pass

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)
        self._thread.start()

    def close(self):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _answer(self, handler):
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        self.hits.append((handler.command, handler.path, handler.headers,
                          handler.client_address[1], body))
        mode = self.mode
        if isinstance(mode, tuple) and mode[0] == "sleep":
            time.sleep(mode[1])
            mode = "ok"
        if isinstance(mode, tuple) and mode[0] == "status":
            self._send(handler, mode[1], json.dumps({"error": f"injected failure {mode[1]}"}).encode())
        elif mode == "garbage":
            self._send(handler, 200, b"<html>not tf serving</html>", "text/html")
        elif handler.command == "GET":
            self._send(handler, 200, json.dumps({"model_version_status": [
                {"version": "1", "state": "AVAILABLE", "status": {"error_code": "OK"}},
                {"version": "2", "state": "LOADING", "status": {"error_code": "OK"}}]}).encode())
        else:
            self._send(handler, 200, json.dumps(
                {"predictions": [{"echo": json.loads(body or b"null")}]}).encode())

    @staticmethod
    def _send(handler, code, payload, content_type="application/json"):
        handler.send_response(code)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)


@pytest.fixture
def fault_server():
    """A FaultServer for one test."""
    server = FaultServer()
    yield server
    server.close()


def model_config_text(base_path, labels):
    """Return a TF Serving model config serving every version of penguins with labels."""
    label_text = " ".join(f'version_labels {{ key: "{k}" value: {v} }}' for k, v in labels.items())
    return (f'model_config_list {{ config {{ name: "{MODEL_NAME}" base_path: "{base_path}" '
            f'model_platform: "tensorflow" model_version_policy {{ all {{}} }} {label_text} }} }}\n')


class ModelServerProcess:
    """The local TF-Serving-compatible model server (``tfship model-server``) on a fixed port,
    started by the benchmark's own start-up (loadtests/bench/servers.py), restartable."""

    def __init__(self, config_path, log_path):
        self.config_path, self.log_path = config_path, log_path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.handle = self.process = None

    def start(self, timeout=90):
        """Start the server; return once every version of the model is AVAILABLE."""
        self.handle = servers.model_server(
            [f"--rest_api_port={self.port}", f"--model_config_file={self.config_path}",
             "--model_config_file_poll_wait_seconds=1"],
            dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"), self.log_path)
        self.process = self.handle.process

        def all_available():
            states = [v["state"] for v in servers.get_json(
                f"{self.url}/v1/models/{MODEL_NAME}")["model_version_status"]]
            return states and all(state == "AVAILABLE" for state in states)

        try:
            self.handle.wait_ready(all_available, timeout=timeout)
        except servers.StartError as error:
            self.stop()
            pytest.fail(f"the model server did not start ({error}):\n{self.log()[-3000:]}")
        return self

    def stop(self):
        if self.handle is not None:
            self.handle.stop()

    def log(self):
        with open(self.log_path, encoding="utf-8", errors="replace") as handle:
            return handle.read()


@pytest.fixture(scope="session")
def penguin_models(trained_models):
    """(base path of penguins, {version: tfship_metadata}) for the two trained versions."""
    base = os.path.join(str(trained_models[0]), MODEL_NAME)
    metadata = {}
    for version in (1, 2):
        path = os.path.join(base, str(version), "assets.extra", "tfship_metadata.json")
        with open(path, encoding="utf-8") as handle:
            metadata[version] = json.load(handle)
    return base, metadata


@pytest.fixture(scope="session")
def model_server(penguin_models, tmp_path_factory):
    """The local model server serving penguins 1 (stable) and 2 (canary) for the session."""
    root = tmp_path_factory.mktemp("gateway-model-server")
    config_path = root / "models.config"
    config_path.write_text(model_config_text(penguin_models[0], {"stable": 1, "canary": 2}))
    server = ModelServerProcess(str(config_path), str(root / "server.log")).start()
    yield server
    server.stop()
