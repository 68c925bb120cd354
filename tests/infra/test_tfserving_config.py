"""The TF Serving config files infra deploys parse with TF Serving's own protobuf messages.

Needs the main virtualenv (.venv: tensorflow-serving-api and the local model server's config
readers); skipped in .venv-infra. Budget: under 10 s (importing the protos loads TensorFlow).
"""
import pytest

from infra import tfserving_config



@pytest.mark.parametrize("quantity, threads", [("500m", 1), ("1", 1), ("1500m", 2), ("2", 2), ("2.5", 3), ("100m", 1)])
def test_tensorflow_threads_are_the_requested_cores_rounded_up(quantity, threads):
    assert tfserving_config.session_parallelism(quantity) == threads


@pytest.mark.parametrize("quantity", ["", "two", "0", "-1", "0m", "nan"])
def test_a_cpu_request_that_is_no_positive_quantity_is_refused(quantity):
    with pytest.raises(ValueError, match="CPU"):
        tfserving_config.session_parallelism(quantity)


config = pytest.importorskip("model.server.config", reason="TF Serving's messages live in .venv")
protos = pytest.importorskip("model.server.protos", reason="TF Serving's messages live in .venv")


def test_initial_model_config_parses_as_a_model_server_config():
    (model,) = config.parse(tfserving_config.initial_model_config("penguins", "/models/penguins"))
    assert model.name == "penguins" and model.base_path == "/models/penguins"


def test_monitoring_config_parses(tmp_path):
    path = tmp_path / "monitoring.config"
    path.write_text(tfserving_config.monitoring_config("/monitoring/prometheus/metrics"))
    message = protos.read_monitoring_config(str(path))
    assert message.prometheus_config.enable and message.prometheus_config.path == "/monitoring/prometheus/metrics"


def test_batching_parameters_parse(tmp_path):
    path = tmp_path / "batching.config"
    path.write_text(tfserving_config.batching_parameters(32, 1000, 2))
    message = protos.read_batching_parameters(str(path))
    assert (message.max_batch_size.value, message.batch_timeout_micros.value,
            message.max_enqueued_batches.value, message.num_batch_threads.value) == (32, 1000, 2, 2)
