"""A Prometheus configuration for tfship's processes: the local stack, `make demo` and the live tests."""
from monitoring.generate import GENERATED
from monitoring.metrics import API_JOB, MODEL_SERVER_JOB

MODEL_SERVER_METRICS_PATH = "/monitoring/prometheus/metrics"  # TF Serving's, from its monitoring config


def rule_files(profile, root=GENERATED):
    """The rule files a Prometheus of this profile loads: its SLO rules and the component rules."""
    components = "components-test.rules.yml" if profile == "test" else "components.rules.yml"
    return [root / "prometheus" / f"slo-{profile}.rules.yml", root / "prometheus" / components]


def config(api_target, model_server_target, profile, scrape_interval="15s", alertmanager_target=None):
    """prometheus.yml as a dict: both jobs under the names the rules and dashboards expect."""
    result = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
        "rule_files": [str(path) for path in rule_files(profile)],
        "scrape_configs": [
            {"job_name": API_JOB, "metrics_path": "/metrics", "static_configs": [{"targets": [api_target]}]},
            {"job_name": MODEL_SERVER_JOB, "metrics_path": MODEL_SERVER_METRICS_PATH,
             "static_configs": [{"targets": [model_server_target]}]},
        ],
    }
    if alertmanager_target:
        result["alerting"] = {"alertmanagers": [{"static_configs": [{"targets": [alertmanager_target]}]}]}
    return result
