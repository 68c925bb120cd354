"""The ELK config: real ECS lines from the API's logger decode, with Filebeat's settings, into the fields the
index template maps and the Kibana objects use. Budget: < 2 s (a Flask test client, no servers).

Filebeat cannot be installed here: tests/monitoring/filebeat.py applies its `ndjson` parser as documented.
The live proof (test_live.py) decodes the lines the real API processes wrote during its run too.
"""
import io
import json
import logging

import pytest

from tests.monitoring.filebeat import ELK, decode, filebeat_config, ndjson_settings


@pytest.fixture(scope="module")
def api_log_lines():
    """Real lines from service/logs.py: an access line of a prediction, and an error logged in a request."""
    from flask import Flask

    from service import logs, metrics

    app = Flask("elk-test")
    stream = io.StringIO()

    @app.post("/v1/models/<name>:predict")
    def predict(name):
        metrics.label_request(name, "3")
        logging.getLogger("tfship.gateway").error("model server failed for %s", name)
        return {"error": "upstream failed"}, 502

    logs.init_app(app)
    handler = logs.configure_logging(stream=stream)
    try:
        response = app.test_client().post("/v1/models/penguins:predict", json={},
                                          headers={"X-Request-ID": "req-123"})
        assert response.status_code == 502 and response.headers["X-Request-ID"] == "req-123"
    finally:
        logging.getLogger().removeHandler(handler)
    return [line for line in stream.getvalue().splitlines() if line]


def test_real_lines_decode_into_the_expected_ecs_fields(api_log_lines):
    events = [decode(line, ndjson_settings()) for line in api_log_lines]
    error = next(e for e in events if e["log"]["logger"] == "tfship.gateway")
    access = next(e for e in events if e["log"]["logger"] == "tfship.access")
    assert error["log"]["level"] == "error"
    assert error["message"] == "model server failed for penguins"
    assert error["http"]["request"]["id"] == "req-123"
    assert access["log"]["level"] == "info"
    assert access["http"]["request"]["id"] == "req-123"
    assert access["tfship"]["model"] == "penguins" and access["tfship"]["version"] == "3"
    assert access["http"]["response"]["status_code"] == 502
    assert all(e["@timestamp"] != "filebeat-read-time" for e in events), "the app's timestamp must win"


def test_the_decode_settings_matter(api_log_lines):
    """Without expand_keys the level stays a dotted key that ECS consumers do not find."""
    event = decode(api_log_lines[0], {**ndjson_settings(), "expand_keys": False})
    assert "log.level" in event and "level" not in event["log"]


def test_template_maps_every_field_kibana_uses_and_names_the_ilm_policy():
    template = json.loads((ELK / "index-template.json").read_text())
    policy = json.loads((ELK / "ilm-policy.json").read_text())
    assert template["template"]["settings"]["index.lifecycle.name"] == "tfship-logs"
    assert set(policy["policy"]["phases"]) == {"hot", "warm", "delete"}
    assert policy["policy"]["phases"]["hot"]["actions"]["rollover"]
    properties = template["template"]["mappings"]["properties"]

    def mapped(dotted):
        node = {"properties": properties}
        for part in dotted.split("."):
            node = node.get("properties", {}).get(part)
            if node is None:
                return None
        return node

    search = _saved_objects()["tfship-api-errors"]
    for field in search["attributes"]["columns"] + ["@timestamp"]:
        assert mapped(field), f"{field} is not in the index template"
    for field in ("log.level", "http.request.id", "tfship.model", "tfship.version"):
        assert mapped(field)["type"] == "keyword", field


def test_filebeat_writes_where_the_template_and_data_view_look():
    from fnmatch import fnmatch
    output = filebeat_config()["output.elasticsearch"]
    index = output["index"].replace("${TFSHIP_NAMESPACE:tfship}", "tfship")
    template = json.loads((ELK / "index-template.json").read_text())
    assert any(fnmatch(index, pattern) for pattern in template["index_patterns"])
    assert "data_stream" in template
    assert _saved_objects()["tfship-logs-data-view"]["attributes"]["title"] in template["index_patterns"]
    assert filebeat_config()["setup.template.enabled"] is False
    assert output["password"].startswith("${") and output["username"].startswith("${")


def _saved_objects():
    objects = {}
    for line in (ELK / "kibana-saved-objects.ndjson").read_text().splitlines():
        obj = json.loads(line)
        key = obj["id"]
        objects[key] = obj
    return objects


def test_saved_objects_reference_each_other():
    objects = list(_saved_objects().values())
    by_ref = {(o["type"], o["id"]) for o in objects}
    assert {o["type"] for o in objects} == {"index-pattern", "search", "dashboard"}
    for obj in objects:
        for ref in obj["references"]:
            assert (ref["type"], ref["id"]) in by_ref, f"{obj['id']} references a missing {ref}"
        for key in ("searchSourceJSON",):
            meta = obj["attributes"].get("kibanaSavedObjectMeta", {})
            if key in meta:
                json.loads(meta[key])
    dashboard = _saved_objects()["tfship-logs"]
    panels = json.loads(dashboard["attributes"]["panelsJSON"])
    assert {p["panelRefName"] for p in panels} == {r["name"] for r in dashboard["references"]}
