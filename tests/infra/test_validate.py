"""Rendered objects pass Kubernetes' schemas (strict, oldest and newest) and the operators' CRDs.

Budget: under 20 s (kubernetes-validate loads each schema once per version).
"""
import pytest

pytest.importorskip("pulumi", reason="Pulumi programs are tested in .venv-infra")

import copy

import pytest
import yaml

from infra import render, validate


@pytest.mark.parametrize("stack", render.ALL_STACKS)
def test_rendered_stack_is_valid(rendered, stack):
    objects = validate.load([rendered / stack.replace("/", "-")])
    assert objects
    problems = [error for _, manifest in objects for error in validate.object_errors(manifest)]
    assert problems == []


def test_both_kubernetes_versions_are_checked():
    assert validate.OLDEST_KUBERNETES.startswith("1.30")
    assert validate.NEWEST_KUBERNETES != validate.OLDEST_KUBERNETES


def test_every_custom_resource_kind_has_a_schema(objects):
    kinds = {(o["apiVersion"], o["kind"]) for stack in objects.values() for o in stack if validate.is_custom(o)}
    assert {k for _, k in kinds} >= {"ServiceMonitor", "PrometheusRule", "Elasticsearch", "Kibana", "Beat",
                                     "Cluster", "ScheduledBackup", "ClusterIssuer"}
    assert all(validate.crd_validator(*k) is not None for k in kinds)


def find(objects, kind, name=None):
    return copy.deepcopy(next(o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)))


def test_misspelt_custom_resource_field_fails(objects):
    cluster = find(objects["prod"], "Cluster")
    cluster["spec"]["backup"]["barmanObjectStore"]["destinationPth"] = cluster["spec"]["backup"]["barmanObjectStore"].pop("destinationPath")
    errors = validate.object_errors(cluster)
    assert any("destinationPth" in e for e in errors) and any("destinationPath" in e for e in errors), errors
    monitor = find(objects["prod"], "ServiceMonitor")
    monitor["spec"]["endpoints"][0]["intreval"] = "15s"
    assert any("intreval" in e for e in validate.object_errors(monitor))


def test_misspelt_core_field_fails_on_both_versions(objects):
    deployment = find(objects["prod"], "Deployment", "api-blue")
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessprobe"] = {}
    errors = validate.object_errors(deployment)
    assert len(errors) == 2 and all("livenessprobe" in e for e in errors)


def test_unknown_custom_kind_fails():
    errors = validate.object_errors({"apiVersion": "monitoring.coreos.com/v1", "kind": "Probe",
                                     "metadata": {"name": "x"}, "spec": {}})
    assert errors and "no schema" in errors[0]


def test_cli_reports_problems(tmp_path, objects, capsys):
    broken = find(objects["dev"], "Service", "api")
    broken["spec"]["portz"] = broken["spec"].pop("ports")
    (tmp_path / "broken.yaml").write_text(yaml.safe_dump(broken))
    assert validate.main([str(tmp_path)]) == 1
    assert "portz" in capsys.readouterr().out
    assert validate.main([]) == 2
