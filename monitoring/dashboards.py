"""The four Grafana dashboards as code (grafana-foundation-sdk), each with a fixed uid.

Every query uses only names from monitoring/metrics.py or the SLO recordings; the tests run each one
against a real Prometheus. Ratios fall back to 0 (`or ... * 0`) so a healthy system shows 0, not "No data".
"""
import json

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard, prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import StackingMode
from grafana_foundation_sdk.models.dashboard import DataSourceRef, VariableRefresh, VariableSort

from monitoring.component_rules import CANARY_FALLBACK_RATIO, CLASS_SHARE_DIVERGENCE
from monitoring.metrics import API_JOB, MODEL_SERVER_JOB

DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
RATE = "$__rate_interval"
TAGS = ["tfship"]


def _query(expr, legend="", ref="A"):
    return prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref).datasource(DATASOURCE)


def _timeseries(title, description, unit, queries, width=12, stacked=False):
    panel = (timeseries.Panel().title(title).description(description).unit(unit).datasource(DATASOURCE)
             .span(width).height(8))
    for ref, (expr, legend) in zip("ABCDEFGH", queries):
        panel = panel.with_target(_query(expr, legend, ref))
    if stacked:
        panel = panel.stacking(common_builders.StackingConfig().mode(StackingMode.PERCENT))
    return panel


def _stat(title, description, unit, expr, legend="", width=6):
    return (stat.Panel().title(title).description(description).unit(unit).datasource(DATASOURCE)
            .span(width).height(4).with_target(_query(expr, legend)))


def _ratio(bad, total):
    """bad / total, 0 where total exists but no bad series does (yet)."""
    return f"({bad} or {total} * 0)\n/\n{total}"


def _quantile(q, bucket, by, matchers=""):
    return f"histogram_quantile({q}, sum by (le, {by}) (rate({bucket}{matchers}[{RATE}])))"


def _variables(board, label_query=None):
    board = board.with_variable(dashboard.DatasourceVariable("datasource").label("Prometheus").type("prometheus"))
    if label_query:
        name, query = label_query
        board = board.with_variable(
            dashboard.QueryVariable(name).label(name).query(query).datasource(DATASOURCE)
            .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED).sort(VariableSort.ALPHABETICAL_ASC)
            .include_all(True).all_value(".*").multi(True))
    return board


def _board(uid, title, description):
    return (dashboard.Dashboard(title).uid(uid).description(description).tags(TAGS).refresh("30s")
            .time("now-1h", "now").timezone("utc").editable())


def api_dashboard():
    requests = "tfship_http_requests_total"
    by_route = f"sum by (route) (rate({requests}[{RATE}]))"
    model = 'model=~"$model"'
    board = _variables(_board("tfship-api", "tfship API", "Requests, errors and duration per route and version."),
                       ("model", f"label_values({requests}, model)"))
    return (board
            .with_row(dashboard.Row("Traffic and errors"))
            .with_panel(_timeseries("Requests per route", "Requests per second by route and model version.", "reqps",
                                    [(f"sum by (route, version) (rate({requests}[{RATE}]))", "{{route}} v{{version}}")]))
            .with_panel(_timeseries("Responses by status code", "Answers per second by route and HTTP status.", "reqps",
                                    [(f"sum by (route, code) (rate({requests}[{RATE}]))", "{{route}} {{code}}")]))
            .with_panel(_timeseries("Server error ratio per route", "Share of 5xx answers.", "percentunit",
                                    [(_ratio(f'sum by (route) (rate({requests}{{code=~"5.."}}[{RATE}]))', by_route),
                                      "{{route}}")]))
            .with_panel(_timeseries("Synthetic traffic", "Requests per second from load tests (X-Tfship-Synthetic).",
                                    "reqps", [(f"sum by (synthetic) (rate({requests}[{RATE}]))", "synthetic={{synthetic}}")]))
            .with_row(dashboard.Row("Duration"))
            .with_panel(_timeseries("Duration per route (p50, p95, p99)", "From the gateway's histogram.", "s", [
                (_quantile(q, "tfship_http_request_duration_seconds_bucket", "route"), f"p{int(q * 100)} {{{{route}}}}")
                for q in (0.5, 0.95, 0.99)]))
            .with_panel(_timeseries("Prediction duration per version (p95)", "Model routes only.", "s", [
                (_quantile(0.95, "tfship_http_request_duration_seconds_bucket", "model, version", f"{{{model}}}"),
                 "{{model}} v{{version}}")]))
            .with_row(dashboard.Row("Saturation and dependencies"))
            .with_panel(_timeseries("Requests in flight", "Per instance; the saturation alert watches this.", "short",
                                    [("sum by (instance) (tfship_http_requests_in_flight)", "{{instance}}")]))
            .with_panel(_timeseries("Upstream outcomes", "Forwarded requests per second by outcome.", "reqps",
                                    [(f"sum by (model, outcome) (rate(tfship_upstream_requests_total{{{model}}}[{RATE}]))",
                                      "{{model}} {{outcome}}")]))
            .with_panel(_timeseries("Upstream duration (p95)", "Gateway to model server, per version.", "s", [
                (_quantile(0.95, "tfship_upstream_request_duration_seconds_bucket", "model, version", f"{{{model}}}"),
                 "{{model}} v{{version}}")]))
            .with_panel(_timeseries("Dependencies up", "1 when the gateway's last check passed.", "short",
                                    [("max by (dependency) (tfship_dependency_up)", "{{dependency}}"),
                                     (f'up{{job="{API_JOB}"}}', "scrape {{instance}}")])))


def model_server_dashboard():
    count = ":tensorflow:serving:request_count"
    model = 'model_name=~"$model_name"'
    total = f"sum by (model_name) (rate({count}{{{model}}}[{RATE}]))"
    board = _variables(_board("tfship-model-server", "tfship model server",
                              "TF Serving's own metrics (names as the real server exports them; latencies in µs)."),
                       ("model_name", f"label_values({count}, model_name)"))
    return (board
            .with_panel(_timeseries("Requests by status", "Per model and TF Serving status code.", "reqps",
                                    [(f"sum by (model_name, status) (rate({count}{{{model}}}[{RATE}]))",
                                      "{{model_name}} {{status}}")]))
            .with_panel(_timeseries("Error ratio", "Requests whose status is not OK.", "percentunit",
                                    [(_ratio(f'sum by (model_name) (rate({count}{{{model},status!="OK"}}[{RATE}]))', total),
                                      "{{model_name}}")]))
            .with_panel(_timeseries("Request latency (p50, p99)", "Server-side, per API; converted from µs.", "s", [
                (f"{_quantile(q, ':tensorflow:serving:request_latency_bucket', 'model_name, API', f'{{{model}}}')} / 1e6",
                 f"p{int(q * 100)} {{{{model_name}}}} {{{{API}}}}") for q in (0.5, 0.99)]))
            .with_panel(_timeseries("Runtime latency (p99)", "Time in the TensorFlow runtime; converted from µs.", "s", [
                (f"{_quantile(0.99, ':tensorflow:serving:runtime_latency_bucket', 'model_name, runtime', f'{{{model}}}')} / 1e6",
                 "{{model_name}} {{runtime}}")]))
            # request_example_counts exists only for Classify/Regress/MultiInference, never for Predict.
            .with_panel(_timeseries("Runtime calls per second", "Session runs in the TensorFlow runtime.", "ops",
                                    [(f"sum by (model_name, runtime) (rate(:tensorflow:serving:runtime_latency_count"
                                      f"{{{model}}}[{RATE}]))", "{{model_name}} {{runtime}}")]))
            .with_panel(_timeseries("Batches per second", "Only with --enable_batching: batched session runs.", "ops",
                                    [(f"sum(rate(:tensorflow:serving:batching_session:wrapped_run_count[{RATE}]))",
                                      "batches")]))
            .with_panel(_timeseries("Batching queue latency (p99)", "Only with --enable_batching; converted from µs.", "s", [
                (f"{_quantile(0.99, ':tensorflow:serving:batching_session:queuing_latency_bucket', 'thread_pool_name')}"
                 " / 1e6", "{{thread_pool_name}}")]))
            .with_panel(_timeseries("Scrape up", "0 when Prometheus cannot read the metrics endpoint.", "short",
                                    [(f'up{{job="{MODEL_SERVER_JOB}"}}', "{{instance}}")])))


def slo_dashboard():
    slo = 'slo=~"$slo"'
    board = _variables(_board("tfship-slo", "tfship SLOs and error budget",
                              "Objectives from monitoring/slo.yaml, as recorded by the generated SLO rules."),
                       ("slo", "label_values(slo:objective:ratio, slo)"))
    return (board
            .with_panel(_stat("Objective", "The target ratio of good requests.", "percentunit",
                              f"slo:objective:ratio{{{slo}}}", "{{slo}}"))
            .with_panel(_stat("Achieved over the period", "Good requests over the compliance window.", "percentunit",
                              f"1 - slo:period_burn_rate:ratio{{{slo}}} * on(slo, profile) slo:error_budget:ratio{{{slo}}}",
                              "{{slo}}"))
            .with_panel(_stat("Error budget remaining", "1 is untouched, 0 is spent.", "percentunit",
                              f"slo:period_error_budget_remaining:ratio{{{slo}}}", "{{slo}}"))
            .with_panel(_stat("SLO alerts firing", "Burn-rate alerts firing now.", "short",
                              'count(ALERTS{component="slo", alertstate="firing"}) or vector(0)'))
            .with_panel(_timeseries("Current burn rate", "Error ratio over the shortest window / budget; 1 spends "
                                    "the budget exactly over the period.", "short",
                                    [(f"slo:current_burn_rate:ratio{{{slo}}}", "{{slo}}")]))
            .with_panel(_timeseries("Period burn rate", "Over the whole compliance window.", "short",
                                    [(f"slo:period_burn_rate:ratio{{{slo}}}", "{{slo}}")]))
            .with_panel(_timeseries("Error budget remaining over time", "", "percentunit",
                                    [(f"slo:period_error_budget_remaining:ratio{{{slo}}}", "{{slo}}")], width=24)))


def canary_dashboard():
    model = 'model=~"$model"'
    requests = f"tfship_http_requests_total{{{model}}}"
    classes = f"rate(tfship_predicted_class_total{{{model}}}[{RATE}])"
    version_share = (f"sum by (model, version, class_name) ({classes})\n"
                     f"/ on(model, version) group_left\nsum by (model, version) ({classes})")
    model_share = (f"sum by (model, class_name) ({classes})\n"
                   f"/ on(model) group_left\nsum by (model) ({classes})")
    rows = f"sum by (model, version) (rate(tfship_prediction_rows_total{{{model}}}[{RATE}]))"
    calls = f"sum by (model, version) (rate(tfship_upstream_requests_total{{{model}}}[{RATE}]))"
    board = _variables(_board("tfship-canary", "tfship canary vs stable",
                              "Per-version traffic, errors, latency and predicted class mix, canary fallbacks, and "
                              "shadow mode's comparison (from the gateway: TF Serving's metrics carry no version)."),
                       ("model", "label_values(tfship_prediction_rows_total, model)"))
    return (board
            .with_panel(_timeseries("Traffic share per version", "Prediction requests per second.", "reqps",
                                    [(f"sum by (model, version) (rate({requests}[{RATE}]))", "{{model}} v{{version}}")],
                                    stacked=True))
            .with_panel(_timeseries("Server error ratio per version", "", "percentunit", [(_ratio(
                f'sum by (model, version) (rate(tfship_http_requests_total{{{model},code=~"5.."}}[{RATE}]))',
                f"sum by (model, version) (rate({requests}[{RATE}]))"), "{{model}} v{{version}}")]))
            .with_panel(_timeseries("Canary calls retried on stable", "Share of a version's model-server calls "
                                    "that failed and fell back to stable, by the failed call's outcome; callers "
                                    "got stable's answer, so only this panel and its alert (above "
                                    f"{CANARY_FALLBACK_RATIO:g}) show a broken canary.", "percentunit", [(
                                        f"(sum by (model, version, reason) (rate(tfship_canary_fallbacks_total"
                                        f"{{{model}}}[{RATE}]))\n/ on(model, version) group_left\n{calls})\n"
                                        f"or {calls} * 0", "v{{version}} {{reason}}")]))
            .with_panel(_timeseries("Latency per version (p95, p99)", "", "s", [
                (_quantile(q, "tfship_http_request_duration_seconds_bucket", "model, version", f"{{{model}}}"),
                 f"p{int(q * 100)} {{{{model}}}} v{{{{version}}}}") for q in (0.95, 0.99)]))
            .with_panel(_timeseries("Class distribution per version", "Share of each predicted class.",
                                    "percentunit", [(version_share, "v{{version}} {{class_name}}")]))
            .with_panel(_timeseries("Class share divergence", "A version's class share minus all versions' share; "
                                    f"the divergence alert fires above {CLASS_SHARE_DIVERGENCE:g}.", "percentunit",
                                    [(f"abs(\n{version_share}\n- on(model, class_name) group_left\n{model_share}\n)",
                                      "v{{version}} {{class_name}}")]))
            .with_panel(_timeseries("Inputs out of range per version", "Share of rows outside the training range, "
                                    "per feature.", "percentunit", [(
                                        f"(sum by (model, version, feature) (rate(tfship_input_out_of_range_total"
                                        f"{{{model}}}[{RATE}]))\n/ on(model, version) group_left\n{rows})\n"
                                        f"or {rows} * 0", "v{{version}} {{feature}}")]))
            .with_row(dashboard.Row("Shadow mode"))
            .with_panel(_shadow_agreement(model))
            .with_panel(_timeseries("Shadow latency against stable (p95)", "Upstream time of the same mirrored "
                                    "predictions: stable's (primary) and the shadow version's (shadow).", "s", [
                                        (_quantile(0.95, "tfship_shadow_latency_seconds_bucket", "model, version, role",
                                                   f"{{{model}}}"), "v{{version}} {{role}}")])))


def _shadow_agreement(model):
    rows = f"rate(tfship_shadow_rows_total{{{model}}}[{RATE}])"
    agreed = f'rate(tfship_shadow_rows_total{{{model},agreement="agree"}}[{RATE}])'
    calls = f"sum by (model, version) (rate(tfship_shadow_requests_total{{{model}}}[{RATE}]))"
    failed = f'sum by (model, version) (rate(tfship_shadow_requests_total{{{model},outcome!="ok"}}[{RATE}]))'
    return _timeseries("Shadow agreement with stable", "Per shadow version: the share of mirrored rows whose "
                       "predicted class equals stable's, and the share of mirrored calls that failed.", "percentunit",
                       [(f"sum by (model, version) ({agreed})\n/\nsum by (model, version) ({rows})",
                         "v{{version}} agreement"),
                        (_ratio(failed, calls), "v{{version}} failed calls")])


DASHBOARDS = {"api": api_dashboard, "model-server": model_server_dashboard, "slo": slo_dashboard,
              "canary": canary_dashboard}


def render(builder):
    """The dashboard model as stable, sorted JSON."""
    return json.dumps(builder.build(), cls=JSONEncoder, indent=2, sort_keys=True) + "\n"


def dashboards():
    """file name -> JSON text for every dashboard."""
    return {f"{name}.json": render(build()) for name, build in DASHBOARDS.items()}
