"""The local stack (`tfship up`) on free ports in a scratch folder, timed from start to healthy."""
import json
import os
import time

from infra.local.settings import LocalSettings
from loadtests.bench import servers

MODEL = "penguins"
UNREACHED_LIMIT = "1000000000 per minute;1000000000 per second"


class LocalStack:
    """`tfship up` over `models_dir`; the processes it records give the pids to account."""

    def __init__(self, root, models_dir):
        self.root = root
        self.state = root / "state"
        # One key sends every benchmark request: its limit is set past anything the bench sends,
        # so the limiter counts every request as deployed (its CPU is in the API's) and never
        # refuses one.
        self.env = dict(os.environ, TFSHIP_API_RATELIMIT_PER_KEY=UNREACHED_LIMIT,
                        TFSHIP_STATE_DIR=str(self.state), TFSHIP_MODELS_DIR=str(models_dir),
                        TFSHIP_MODEL_SERVER_PORT=str(servers.free_port()),
                        TFSHIP_MODEL_SERVER_GRPC_PORT=str(servers.free_port()),
                        TFSHIP_API_PORT=str(servers.free_port()),
                        TFSHIP_PROMETHEUS_PORT=str(servers.free_port()))
        self.model_server_url = f"http://127.0.0.1:{self.env['TFSHIP_MODEL_SERVER_PORT']}"
        self.api_url = f"http://127.0.0.1:{self.env['TFSHIP_API_PORT']}"
        self.seconds_to_healthy = None
        self.settings = LocalSettings.from_env(self.env)

    def start(self):
        """Run `tfship up`; it returns once every component is healthy and the model registered."""
        started = time.monotonic()
        self.up_output = servers.tfship("up", env=self.env, timeout=300)
        self.seconds_to_healthy = time.monotonic() - started
        self.processes = {p["name"]: p for p in
                          json.loads((self.state / "processes.json").read_text())}
        self.predictor_key = (self.state / "predictor.key").read_text().strip()
        return self

    def pid(self, name):
        return self.processes[name]["pid"]

    def api_env(self):
        """The settings `tfship up` gave the API (same registry, same model server)."""
        return dict(self.env, TFSHIP_API_DATA_DIR=str(self.state / "api"),
                    TFSHIP_API_MODEL_SERVER_URL=self.model_server_url)

    def stop(self):
        servers.tfship("down", env=self.env, timeout=120)
