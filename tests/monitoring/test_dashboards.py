"""The four dashboards: fixed uids, and every query parses in a real Prometheus and names real metrics.

Budget: ~3 s (shares the session's Prometheus with test_rules).
"""
import json

import pytest
import yaml

from monitoring import dashboards, lint
from tests.monitoring.conftest import GENERATED, PROMETHEUS_DIR, query

FILES = sorted((GENERATED / "grafana").glob("*.json"))
UIDS = {"api.json": "tfship-api", "model-server.json": "tfship-model-server", "slo.json": "tfship-slo",
        "canary.json": "tfship-canary"}


def _queries():
    return [(path.name, title, expr) for path in FILES for title, expr in lint.dashboard_queries(path.read_text())]


@pytest.fixture(scope="module")
def recorded():
    return lint.recorded_labels(yaml.safe_load(p.read_text()) for p in PROMETHEUS_DIR.glob("*.rules.yml"))


def test_four_dashboards_with_fixed_unique_uids():
    found = {path.name: json.loads(path.read_text())["uid"] for path in FILES}
    assert found == UIDS


def test_dashboards_come_from_the_sdk_builders():
    assert set(dashboards.dashboards()) == set(UIDS)
    for name, text in dashboards.dashboards().items():
        board = json.loads(text)
        assert board["panels"], name
        assert any(v["type"] == "datasource" for v in board["templating"]["list"]), name


def test_every_panel_has_a_query_on_the_datasource_variable():
    for path in FILES:
        for panel in json.loads(path.read_text())["panels"]:
            if panel["type"] == "row":
                continue
            assert panel.get("targets"), f"{path.name}: {panel['title']} has no query"
            assert all(t["datasource"]["uid"] == "${datasource}" for t in panel["targets"])


@pytest.mark.parametrize("board,title,expr", _queries(), ids=lambda v: v if len(str(v)) < 40 else None)
def test_query_names_only_exported_metrics(board, title, expr, recorded):
    assert not lint.problems(lint.grafana_expr(expr), recorded), f"{board}: {title}"


def test_every_query_runs_in_real_prometheus(prometheus):
    failures = []
    for board, title, expr in _queries():
        answer = query(prometheus, lint.grafana_expr(expr))
        if answer["status"] != "success":
            failures.append(f"{board}: {title}: {answer.get('error')}")
    assert not failures


def test_real_prometheus_rejects_a_broken_query(prometheus):
    """The check above can fail: Prometheus answers bad_data for a syntax error."""
    answer = query(prometheus, lint.grafana_expr('sum by (route (rate(tfship_http_requests_total[$__rate_interval]))'))
    assert answer["status"] == "error" and answer["errorType"] == "bad_data"


def test_grafana_variables_are_substituted():
    assert lint.grafana_expr('rate(x{model=~"$model"}[$__rate_interval])') == 'rate(x{model=~".*"}[1m])'
    assert lint.grafana_expr('x{model="$model"}', {"$model": "penguins"}) == 'x{model="penguins"}'
