"""The log pipeline deploys monitoring/elk as it is: Filebeat config, ILM policy, template, Kibana.

Budget: under 1 s (uses the session's mocked runs).
"""
import json

import pytest

pytest.importorskip("pulumi", reason="Pulumi programs are tested in .venv-infra")

import yaml  # noqa: E402

from infra import monitoring_files  # noqa: E402
from infra.components import log_pipeline  # noqa: E402

FILES = monitoring_files.elk_files()
needs_elk = pytest.mark.skipif(not FILES, reason="monitoring/elk has not been written yet")


def find(objects, kind, prefix=""):
    return next(o for o in objects if o["kind"] == kind and o["metadata"]["name"].startswith(prefix))


@needs_elk
def test_filebeat_runs_monitorings_config_with_ecks_connection(objects):
    beat = find(objects["staging"], "Beat")
    source = yaml.safe_load((monitoring_files.ELK / "filebeat.yml").read_text())
    deployed = beat["spec"]["config"]
    assert deployed["filebeat.inputs"] == source["filebeat.inputs"]
    assert {k: v for k, v in deployed.items() if k.startswith("setup.")} == \
           {k: v for k, v in source.items() if k.startswith("setup.")}
    output = deployed.get("output.elasticsearch", {})
    assert not set(output) & set(log_pipeline.ECK_MANAGED_OUTPUT), "ECK sets the connection"
    if "index" in source.get("output.elasticsearch", {}):
        assert output["index"] == source["output.elasticsearch"]["index"]
    assert beat["spec"]["elasticsearchRef"] == {"name": "logs-es", "namespace": "tfship-staging"}
    env = beat["spec"]["daemonSet"]["podTemplate"]["spec"]["containers"][0]["env"]
    assert {"name": "TFSHIP_NAMESPACE", "value": "tfship-staging"} in env


@needs_elk
@pytest.mark.parametrize("stack, retention", [("dev", "3d"), ("prod", "30d")])
def test_setup_job_loads_policy_template_and_saved_objects(objects, stack, retention):
    files = find(objects[stack], "ConfigMap", "logs-elk-files")["data"]
    job = find(objects[stack], "Job", "logs-setup-")
    script = job["spec"]["template"]["spec"]["containers"][0]["command"][2]
    template = json.loads((monitoring_files.ELK / "index-template.json").read_text())
    policy_name = template["template"]["settings"]["index.lifecycle.name"]
    lines = script.splitlines()
    ilm = lines.index(f'es PUT "/_ilm/policy/{policy_name}" ilm-policy.json')
    assert lines.index(f'es PUT "/_index_template/{policy_name}" index-template.json') > ilm
    ndjson = [rel for rel in FILES if rel.endswith(".ndjson")]
    assert ndjson and all(f"kibana {rel}" in lines for rel in ndjson)
    assert json.loads(files["ilm-policy.json"])["policy"]["phases"]["delete"]["min_age"] == retention
    assert files["index-template.json"] == (monitoring_files.ELK / "index-template.json").read_text()


def test_elk_can_be_switched_off(objects, runs):
    assert {"Elasticsearch", "Kibana", "Beat"} <= {o["kind"] for o in objects["dev"]}
    from infra import mocked, render
    off = mocked.run(lambda: __import__("runpy").run_path(str(render.ENVIRONMENT_PROGRAM)),
                     mocked.ENVIRONMENT_PROJECT, "staging",
                     stack_outputs={"organization/tfship-platform/nonprod": runs["platform/nonprod"].exports},
                     extra_config={"tfship:elkEnabled": "false"})
    kinds = {o["kind"] for _, o in off.kubernetes_objects()}
    assert not kinds & {"Elasticsearch", "Kibana", "Beat"}
    assert off.exports["kibanaUrl"] is None
    assert not [o for _, o in off.kubernetes_objects() if o["kind"] == "Namespace" and o["metadata"]["name"].endswith("-agents")]
