"""Check the PromQL in rules and dashboards against the metrics the processes really export.

An unknown metric name or label makes a query silently empty against the real servers, so the tests
fail on one. PromQL is parsed with promql-parser (Prometheus's grammar); Prometheus itself then runs
every query in tests/monitoring.
"""
import json
import re

import promql_parser

from monitoring.metrics import API, HISTOGRAM, PROMETHEUS, TFSERVING, series_names

# What a Grafana panel's variables stand for when a query is checked outside Grafana.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "1h"}
SCRAPE_LABELS = {"job", "instance"}
FREE_LABELS = {"ALERTS", "ALERTS_FOR_STATE"}  # carry each alert's own labels
LABEL_VALUES = re.compile(r"^label_values\((?P<selector>.+),\s*(?P<label>\w+)\)$")


def grafana_expr(expr, values=None):
    """Replace dashboard variables ($model, $__rate_interval, ...) by concrete values."""
    for name, value in {**GRAFANA_VARIABLES, **(values or {})}.items():
        expr = expr.replace(name, value)
    return re.sub(r"\$\{?\w+\}?", ".*", expr)  # any variable left: a match-all regex


def selectors(expr):
    """(metric name, {label: value}) for every vector selector in the expression."""
    found = []

    def visit(node):
        if isinstance(node, promql_parser.VectorSelector):
            matchers = {m.name: m.value for m in node.matchers.matchers}
            found.append((node.name or matchers.get("__name__"), matchers))
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    return found


def known_labels():
    """metric series name -> labels it may carry (its own, the scrape's, and le for buckets)."""
    labels = {}
    for catalogue in (API, TFSERVING, PROMETHEUS):
        for name, (kind, own) in catalogue.items():
            names = [f"{name}{s}" for s in ("_bucket", "_sum", "_count")] if kind == HISTOGRAM else [name]
            for series in names:
                labels[series] = set(own) | SCRAPE_LABELS | ({"le"} if series.endswith("_bucket") else set())
    return labels


def problems(expr, recorded=None):
    """What is wrong with one query: unknown metric names, or labels the metric does not carry."""
    recorded = recorded or {}
    allowed, labels = series_names() | set(recorded), known_labels()
    found = []
    for name, matchers in selectors(expr):
        if name not in allowed:
            found.append(f"unknown metric {name!r}")
            continue
        if name in FREE_LABELS:
            continue
        carried = labels.get(name, recorded.get(name, set())) | {"__name__"}
        unknown = set(matchers) - carried
        if unknown:
            found.append(f"{name} has no label {sorted(unknown)}")
    return found


def recorded_labels(rule_files):
    """Recording rule name -> labels its series may carry (static labels plus aggregation labels)."""
    recorded = {}
    for groups in rule_files:
        for group in groups["groups"]:
            for rule in group["rules"]:
                if "record" in rule:
                    by = re.findall(r"by \(([^)]*)\)", rule["expr"])
                    kept = {label.strip() for clause in by for label in clause.split(",")}
                    recorded.setdefault(rule["record"], set()).update(set(rule.get("labels", {})) | kept)
    return recorded


def dashboard_queries(dashboard):
    """(panel title, expr) for every target of every panel, and every query variable's selector."""
    if isinstance(dashboard, str):
        dashboard = json.loads(dashboard)
    queries = []
    for panel in dashboard.get("panels", []):
        for target in panel.get("targets", []) or []:
            queries.append((panel.get("title", ""), target["expr"]))
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            match = LABEL_VALUES.match(variable["query"].strip())
            if not match:
                raise ValueError(f"variable {variable['name']}: only label_values(selector, label) is supported")
            queries.append((f"variable {variable['name']}", match["selector"]))
    return queries
