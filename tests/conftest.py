"""Fixtures shared across the suite: free ports, and models trained once per test session."""
import os
import socket
import tempfile

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_HOME", os.path.join(tempfile.gettempdir(), "tfship-keras"))


def free_port():
    """A TCP port nothing listens on right now (the kernel's pick for port 0)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def trained_models(tmp_path_factory):
    """Two real penguin versions exported by the pipeline (seeds 1 and 2): (base dir, results)."""
    from model import pipeline
    from model.training import TrainingConfig

    base = tmp_path_factory.mktemp("models")
    results = [pipeline.run(base, config=TrainingConfig(seed=seed), progress=lambda _: None)
               for seed in (1, 2)]
    return base, results
