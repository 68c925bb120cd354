"""The local environment's settings: ports, paths and the model, with their environment overrides.

This module is the one source of the local defaults; every command and the Makefile read it.
"""
import os
from dataclasses import dataclass
from pathlib import Path

DEFAULTS = {
    "TFSHIP_MODEL_SERVER_PORT": "8501",  # TF Serving's REST default
    "TFSHIP_MODEL_SERVER_GRPC_PORT": "8500",  # TF Serving's gRPC default (the local server has no gRPC)
    "TFSHIP_API_PORT": "8080",
    "TFSHIP_PROMETHEUS_PORT": "9090",
    "TFSHIP_STATE_DIR": ".tfship",
    "TFSHIP_MODELS_DIR": "models",
    "TFSHIP_MODEL_NAME": "penguins",
    "TFSHIP_FILE_SYSTEM_POLL_SECONDS": "2",
    "TFSHIP_MODEL_CONFIG_POLL_SECONDS": "2",
    "TFSHIP_RECONCILE_INTERVAL_SECONDS": "1",  # between the reconciler's passes
    # The API's own setting, passed to it: the unload grace of the reconciler derives from it.
    "TFSHIP_API_ROLLOUT_CACHE_TTL_S": "2",
    # TensorFlow's intra- and inter-op threads in the model server
    # (--tensorflow_session_parallelism); 0, TF Serving's default, sizes both pools from the
    # cores. One thread per pool measured the same as 0 in the bench on 2 shared cores (see
    # loadtests/bench/optimisations.yaml); set it where the server gets fewer cores than it sees.
    "TFSHIP_MODEL_SERVER_TF_THREADS": "0",
}


@dataclass(frozen=True)
class LocalSettings:
    model_server_port: int
    model_server_grpc_port: int
    api_port: int
    prometheus_port: int
    state_dir: Path
    models_dir: Path
    model_name: str
    file_system_poll_seconds: int
    model_config_poll_seconds: int
    reconcile_interval_seconds: float
    rollout_cache_ttl_seconds: float
    model_server_tf_threads: int = 0

    @classmethod
    def from_env(cls, environ=None):
        """Read every setting from the environment, falling back to DEFAULTS."""
        env = dict(DEFAULTS, **{k: v for k, v in (environ or os.environ).items() if k in DEFAULTS})
        return cls(
            model_server_port=int(env["TFSHIP_MODEL_SERVER_PORT"]),
            model_server_grpc_port=int(env["TFSHIP_MODEL_SERVER_GRPC_PORT"]),
            api_port=int(env["TFSHIP_API_PORT"]),
            prometheus_port=int(env["TFSHIP_PROMETHEUS_PORT"]),
            state_dir=Path(env["TFSHIP_STATE_DIR"]).absolute(),
            models_dir=Path(env["TFSHIP_MODELS_DIR"]).absolute(),
            model_name=env["TFSHIP_MODEL_NAME"],
            file_system_poll_seconds=int(env["TFSHIP_FILE_SYSTEM_POLL_SECONDS"]),
            model_config_poll_seconds=int(env["TFSHIP_MODEL_CONFIG_POLL_SECONDS"]),
            reconcile_interval_seconds=float(env["TFSHIP_RECONCILE_INTERVAL_SECONDS"]),
            rollout_cache_ttl_seconds=float(env["TFSHIP_API_ROLLOUT_CACHE_TTL_S"]),
            model_server_tf_threads=int(env["TFSHIP_MODEL_SERVER_TF_THREADS"]),
        )

    @property
    def logs_dir(self):
        return self.state_dir / "logs"

    @property
    def model_config_file(self):
        return self.state_dir / "models.config"

    @property
    def unload_grace_seconds(self):
        """How long the reconciler keeps a dropped label or an unnamed version loaded.

        A gateway may route by a cached rollout state for the TTL, and the model server reads
        the config file once per poll: both must pass first (plus a second to spare).
        """
        return self.rollout_cache_ttl_seconds + self.model_config_poll_seconds + 1.0

    def key_file(self, role):
        """Where `tfship up` writes the bootstrap key of a role (admin, predictor)."""
        return self.state_dir / f"{role}.key"

    @property
    def model_server_url(self):
        return f"http://127.0.0.1:{self.model_server_port}"

    @property
    def api_url(self):
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def prometheus_url(self):
        return f"http://127.0.0.1:{self.prometheus_port}"
