"""The Prometheus configuration: promtool accepts it, and the local stack (`tfship up`, `make demo`) starts a real
Prometheus with the generated rules of its profile.

Budget: ~3 s (promtool check config, one Prometheus on a free port).
"""
import time
from pathlib import Path

import pytest
import requests
import yaml

from monitoring import metrics, prometheus_config
from tests.monitoring.conftest import free_port, run, tool


@pytest.mark.parametrize("profile", ["local", "test", "prod"])
def test_promtool_accepts_the_config_and_its_rule_files(tmp_path, profile):
    config = prometheus_config.config("127.0.0.1:8080", "127.0.0.1:8501", profile, alertmanager_target="127.0.0.1:9093")
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    result = run(tool("promtool"), "check", "config", str(tmp_path / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert all(f"Checking {path}\n  SUCCESS" in result.stdout for path in config["rule_files"]), result.stdout


def test_both_jobs_are_named_as_the_rules_expect():
    config = prometheus_config.config("a:1", "b:2", "local")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {metrics.API_JOB, metrics.MODEL_SERVER_JOB}
    assert jobs[metrics.MODEL_SERVER_JOB]["metrics_path"] == prometheus_config.MODEL_SERVER_METRICS_PATH


# processes.start leaves Prometheus running in the background on purpose (as `tfship up` does) and records it.
@pytest.mark.filterwarnings("ignore:subprocess \\d+ is still running:ResourceWarning")
def test_the_local_stack_starts_prometheus_with_the_generated_rules(tmp_path):
    """What `tfship up` (and so `make demo`) runs when the binary is installed: infra.local.prometheus.start."""
    tool("prometheus")
    from infra.local import processes
    from infra.local import prometheus as local_prometheus
    from infra.local.settings import LocalSettings

    settings = LocalSettings.from_env({"TFSHIP_STATE_DIR": str(tmp_path), "TFSHIP_PROMETHEUS_PORT": str(free_port()),
                                       "TFSHIP_API_PORT": str(free_port()),
                                       "TFSHIP_MODEL_SERVER_PORT": str(free_port())})
    assert local_prometheus.installed()
    local_prometheus.start(settings)
    try:
        wanted = {str(path) for path in prometheus_config.rule_files(local_prometheus.PROFILE)}
        deadline = time.monotonic() + 15
        while True:
            groups = requests.get(f"{settings.prometheus_url}/api/v1/rules", timeout=5).json()["data"]["groups"]
            rules = [rule for group in groups for rule in group["rules"]]
            if rules and all(rule.get("lastEvaluation", "").startswith("20") for rule in rules) \
                    or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        expected = sum(len(group["rules"]) for path in wanted
                       for group in yaml.safe_load(Path(path).read_text())["groups"])
        assert {group["file"] for group in groups} == wanted
        assert len(rules) == expected and all(rule["health"] == "ok" for rule in rules)
    finally:
        processes.stop(settings, "prometheus")
