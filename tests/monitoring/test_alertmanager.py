"""Alertmanager routing passes amtool, routes each severity and every generated alert, and a real Alertmanager
groups alerts and inhibits tickets.

Budget: ~4 s (one Alertmanager process on a free port; amtool once per generated alert, concurrently).
"""
import subprocess
import time
from datetime import datetime, timedelta, timezone

import pytest
import requests
import yaml

from monitoring import alertmanager, alerts
from tests.monitoring.conftest import GENERATED, free_port, run, serving, tool

CONFIG = GENERATED / "alertmanager" / "alertmanager.yml"


def test_amtool_check_config():
    result = run(tool("amtool"), "check-config", str(CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 inhibit rules" in result.stdout


@pytest.mark.parametrize("labels,receiver", [
    (["severity=page", "alertname=TfshipModelServerDown"], "page"),
    (["severity=page", "alertname=TfshipApiAvailabilityFastBurn", "slo=api-availability"], "page"),
    (["severity=ticket", "alertname=TfshipApiSaturated"], "ticket"),
    (["severity=none", "alertname=Watchdog"], "watchdog"),
    (["severity=none", "alertname=SomethingInformational"], "blackhole"),
    (["alertname=UnlabelledAlert"], "ticket"),
])
def test_routes(labels, receiver):
    result = run(tool("amtool"), "config", "routes", "test", f"--config.file={CONFIG}", *labels)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receiver


RECEIVER_OF = {"page": "page", "ticket": "ticket", "none": "blackhole"}


def test_every_generated_alert_reaches_the_receiver_of_its_severity(rule_groups):
    """amtool on each generated alert's own labels: pages to page, tickets to ticket, the Watchdog to the dead
    man's switch; every severity the generator allows has a route."""
    label_sets = {tuple(sorted({"alertname": rule["alert"], **rule["labels"]}.items()))
                  for groups in rule_groups.values() for group in groups["groups"] for rule in group["rules"]
                  if "alert" in rule}
    assert set(RECEIVER_OF) == set(alerts.SEVERITIES)
    runs = {labels: subprocess.Popen([tool("amtool"), "config", "routes", "test", f"--config.file={CONFIG}",
                                      *(f"{k}={v}" for k, v in labels)], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True) for labels in label_sets}
    wrong = {}
    for labels, process in runs.items():
        got = process.communicate(timeout=30)[0].strip()
        labels = dict(labels)
        wanted = "watchdog" if labels["alertname"] == "Watchdog" else RECEIVER_OF[labels["severity"]]
        if got != wanted:
            wrong[labels["alertname"]] = f"{got} (wanted {wanted})"
    assert not wrong


def _secrets(node, path=""):
    """Every receiver setting that could hold a secret, with its dotted path."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if any(word in key for word in ("key", "url", "password", "token", "secret", "credentials")):
                found.append((f"{path}.{key}", value))
            found += _secrets(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, item in enumerate(node):
            found += _secrets(item, f"{path}[{i}]")
    return found


def test_receivers_take_secrets_from_files_not_the_repo():
    config = yaml.safe_load(CONFIG.read_text())
    for path, value in _secrets(config["receivers"]):
        if isinstance(value, dict):
            continue
        leaf = path.rsplit(".", 1)[-1]
        if leaf == "url":  # a non-secret endpoint; its token is in credentials_file
            assert value == alertmanager.DEAD_MANS_SWITCH_URL, path
        else:
            assert leaf.endswith("_file") and value.startswith(alertmanager.SECRETS_DIR + "/"), path


@pytest.fixture(scope="module")
def running_alertmanager(tmp_path_factory):
    binary = tool("alertmanager", "prometheus-alertmanager")  # the second is Debian's name
    root = tmp_path_factory.mktemp("alertmanager")
    port = free_port()
    with serving([binary, f"--config.file={CONFIG}", f"--storage.path={root}",
                  f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
                 root / "alertmanager.log", port) as url:
        yield url


def _post(url, *label_sets):
    now = datetime.now(timezone.utc)
    alerts = [{"labels": labels, "startsAt": now.isoformat(), "endsAt": (now + timedelta(minutes=5)).isoformat()}
              for labels in label_sets]
    requests.post(f"{url}/api/v2/alerts", json=alerts, timeout=5).raise_for_status()


def _inhibited(url, alertname, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = {a["labels"].get("slo", a["labels"].get("component")): a["status"]["inhibitedBy"]
                 for a in requests.get(f"{url}/api/v2/alerts", timeout=5).json()
                 if a["labels"]["alertname"] == alertname}
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"{alertname} never reached Alertmanager")


def test_a_page_inhibits_the_ticket_of_its_own_slo_only(running_alertmanager):
    _post(running_alertmanager,
          {"alertname": "TfshipApiAvailabilityFastBurn", "severity": "page", "component": "slo",
           "slo": "api-availability", "profile": "test"},
          {"alertname": "TfshipApiAvailabilityBudgetBurn", "severity": "ticket", "component": "slo",
           "slo": "api-availability", "profile": "test"},
          {"alertname": "TfshipApiLatencyBudgetBurn", "severity": "ticket", "component": "slo",
           "slo": "api-latency", "profile": "test"})
    time.sleep(0.5)  # inhibition is evaluated when alerts are listed; give the page time to land
    assert _inhibited(running_alertmanager, "TfshipApiAvailabilityBudgetBurn")["api-availability"]
    assert _inhibited(running_alertmanager, "TfshipApiLatencyBudgetBurn")["api-latency"] == []


def test_a_component_page_inhibits_that_components_tickets(running_alertmanager):
    _post(running_alertmanager,
          {"alertname": "TfshipModelServerDown", "severity": "page", "component": "model-server"},
          {"alertname": "TfshipModelServerScrapeFailing", "severity": "ticket", "component": "model-server"},
          {"alertname": "TfshipApiSaturated", "severity": "ticket", "component": "api"})
    time.sleep(0.5)
    assert _inhibited(running_alertmanager, "TfshipModelServerScrapeFailing")["model-server"]
    assert _inhibited(running_alertmanager, "TfshipApiSaturated")["api"] == []


def test_alerts_are_grouped_by_name_slo_component_and_model(running_alertmanager):
    """Two instances of one problem make one notification group; another model makes its own."""
    common = {"alertname": "TfshipUpstreamErrorRatioHigh", "severity": "ticket", "component": "model-server"}
    _post(running_alertmanager, {**common, "model": "penguins", "instance": "api-0:8080"},
          {**common, "model": "penguins", "instance": "api-1:8080"},
          {**common, "model": "iris", "instance": "api-0:8080"})
    deadline = time.monotonic() + 10
    while True:
        groups = [g for g in requests.get(f"{running_alertmanager}/api/v2/alerts/groups", timeout=5).json()
                  if g["labels"].get("alertname") == common["alertname"]]
        if sum(len(g["alerts"]) for g in groups) == 3 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    sizes = {g["labels"]["model"]: len(g["alerts"]) for g in groups}
    assert sizes == {"penguins": 2, "iris": 1}, groups
    assert all(g["receiver"]["name"] == "ticket" and set(g["labels"]) == set(alertmanager.GROUP_BY) - {"slo"}
               for g in groups), groups
