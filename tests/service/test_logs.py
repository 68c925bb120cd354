"""ECS JSON logs: request ids, the access line, prediction samples, no secrets. Budget: < 1 s."""
import io
import json
import logging
import sys
import uuid

import pytest
from flask import Flask

from service import errors, logs, metrics

KEY = "tfs_0123456789ab_" + "S" * 43


@pytest.fixture
def stream():
    captured = io.StringIO()
    logs.configure_logging("INFO", stream=captured)
    yield captured
    logs.configure_logging("INFO", stream=sys.stderr)


@pytest.fixture
def app(stream):
    application = Flask(__name__)
    application.config["PREDICTION_LOG_SAMPLE_RATE"] = 1.0
    logs.init_app(application)

    @application.post("/models/<name>:predict")
    def predict(name):
        metrics.label_request(name, 2)
        logging.getLogger("service.test").info("working on %s", name)
        logs.log_prediction_sample(name, 2, {"instances": [{"x": float("nan")}]},
                                   {"predictions": [{"class_name": "Adelie"}]})
        return {"request_id": logs.request_id()}

    return application


def lines(stream):
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_request_id_is_kept_returned_and_on_every_line(app, stream):
    answer = app.test_client().post("/models/penguins:predict", json={},
                                    headers={"X-Request-ID": "req-42"})
    assert answer.headers["X-Request-ID"] == "req-42"
    assert answer.get_json() == {"request_id": "req-42"}
    written = lines(stream)
    assert {line["http"]["request"]["id"] for line in written} == {"req-42"}
    access = [line for line in written if line["log"]["logger"] == "tfship.access"]
    assert len(access) == 1
    assert access[0]["tfship"] == {"route": "/models/<name>:predict", "model": "penguins",
                                   "version": "2"}
    assert access[0]["http"]["response"]["status_code"] == 200
    assert access[0]["url"]["path"] == "/models/penguins:predict"
    assert access[0]["event"]["dataset"] == "tfship.access" and access[0]["event"]["duration"] > 0
    assert "ecs.version" in access[0]


def test_an_error_answers_access_line_says_why(stream):
    """The access line of an error answer carries its code (error.code); a success has none."""
    application = Flask(__name__)
    logs.init_app(application)
    errors.register_error_handlers(application)

    @application.post("/models/<name>:predict")
    def predict(name):
        if name == "broken":
            raise errors.ServiceUnavailable("the model server is unreachable", code="upstream_unavailable")
        return {}

    client = application.test_client()
    assert client.post("/models/broken:predict", json={}).status_code == 503
    assert client.post("/models/fine:predict", json={}).status_code == 200
    access = [line for line in lines(stream) if line["log"]["logger"] == "tfship.access"]
    assert [(line["http"]["response"]["status_code"], line.get("error")) for line in access] == [
        (503, {"code": "upstream_unavailable"}), (200, None)]


@pytest.mark.parametrize("given", [None, "", "has space", "x" * 200, "quote\"and;semicolon"])
def test_a_missing_or_unsafe_request_id_is_replaced(app, given, stream):
    headers = {} if given is None else {"X-Request-ID": given}
    answer = app.test_client().post("/models/m:predict", json={}, headers=headers)
    made = answer.headers["X-Request-ID"]
    assert made != given and len(made) == 32 and int(made, 16) >= 0


def test_a_made_request_id_is_a_random_uuid4_in_hex():
    made = {logs.new_request_id() for _ in range(200)}
    assert len(made) == 200
    for request_id in made:
        parsed = uuid.UUID(hex=request_id)
        assert parsed.hex == request_id and parsed.version == 4
        assert parsed.variant == uuid.RFC_4122


def test_prediction_sample_logs_inputs_and_outputs_as_strict_json(app, stream):
    app.test_client().post("/models/penguins:predict", json={})
    sample = [line for line in lines(stream) if line["log"]["logger"] == "tfship.predictions"]
    assert len(sample) == 1
    assert sample[0]["tfship"]["prediction"]["inputs"] == {"instances": [{"x": None}]}
    assert sample[0]["tfship"]["prediction"]["outputs"]["predictions"][0]["class_name"] == "Adelie"
    assert "NaN" not in stream.getvalue()


def test_prediction_sampling_rate(app):
    with app.test_request_context():
        assert not logs.log_prediction_sample("m", 1, {}, {}, rate=0.0)
        assert not logs.log_prediction_sample("m", 1, {}, {}, rate=0.5, chance=lambda: 0.7)
        assert logs.log_prediction_sample("m", 1, {}, {}, rate=0.5, chance=lambda: 0.3)
    app.config["PREDICTION_LOG_SAMPLE_RATE"] = 0.0
    with app.test_request_context():
        assert not logs.log_prediction_sample("m", 1, {}, {}, chance=lambda: 0.0)


def test_keys_and_authorization_headers_never_reach_the_logs(app, stream):
    app.test_client().post("/models/m:predict", json={},
                           headers={"Authorization": f"Bearer {KEY}", "X-API-Key": KEY})
    logging.getLogger("service.test").warning("rejected key %s", KEY)
    text = stream.getvalue()
    assert KEY not in text and "Bearer" not in text
    assert "tfs_[REDACTED]" in text


@pytest.mark.parametrize("path", ["/models/penguins:predict", "/models/pingüinos:predict"])
def test_the_access_lines_fast_path_writes_what_ecs_logging_writes(path):
    """The access line's own formatting equals ecs-logging's generic output, byte for byte
    (an ASCII-escaped line too: a non-ASCII path goes through ecs-logging itself)."""
    fields = {"event": {"dataset": "tfship.access", "duration": 1234},
              "http": {"request": {"method": "POST"}, "response": {"status_code": 200}},
              "url": {"path": path}, "client": {"ip": "127.0.0.1"},
              "tfship": {"route": "/models/<name>:predict", "model": "penguins", "version": ""}}
    record = logging.LogRecord(logs.ACCESS_LOGGER, logging.INFO, "logs.py", 7, "%s %s %s",
                               ("POST", path, 200), None, func="_finish_request")
    setattr(record, "http.request.id", "rid-1")
    generic = logging.makeLogRecord(dict(record.__dict__, **logs._dotted(fields)))
    formatter = logs.RedactingFormatter(exclude_fields=["log.original"])
    fast = formatter.format(logging.makeLogRecord(dict(record.__dict__, **{logs.ECS_FIELDS: fields})))
    assert fast == formatter.format(generic)
    assert json.loads(fast)["http"]["request"] == {"id": "rid-1", "method": "POST"}
