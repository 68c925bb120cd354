"""Alerts on the parts themselves, on the metrics they really export (TF Serving's set and the gateway's).

`scale` compresses every window and `for:` for the live tests (1/60 for the test profile), like the SLO
rules. Thresholds are module constants so the runbook and the tests can quote them.
"""
from monitoring.alerts import alert
from monitoring.metrics import API_JOB, MODEL_SERVER_JOB
from monitoring.slo import format_duration

UPSTREAM_ERROR_RATIO = 0.05  # share of forwarded requests that failed on the model server's side
API_MAX_IN_FLIGHT = 16  # per API instance: twice the default gunicorn workers x threads
OUT_OF_RANGE_RATIO = 0.05  # share of rows with a feature outside its training range
CLASS_SHARE_DIVERGENCE = 0.2  # a version's class share against the model's share over all versions
MIN_ROWS_PER_VERSION = 100  # before the class distributions of a version are compared
UPSTREAM_FAILURES = "ok|client_error"  # outcomes that are NOT a model-server failure
CANARY_FALLBACK_RATIO = 0.05  # share of a canary version's calls that failed and were retried on stable


def _d(seconds, scale):
    return format_duration(round(seconds * scale))


def recording_rules(scale):
    window = _d(1800, scale)
    class_rate = f"rate(tfship_predicted_class_total[{window}])"
    return [
        {"record": f"model_version_class_name:tfship_predicted_class:ratio_rate{window}",
         "expr": f"sum by (model, version, class_name) ({class_rate})\n"
                 f"/ on(model, version) group_left\nsum by (model, version) ({class_rate})"},
        {"record": f"model_class_name:tfship_predicted_class:ratio_rate{window}",
         "expr": f"sum by (model, class_name) ({class_rate})\n"
                 f"/ on(model) group_left\nsum by (model) ({class_rate})"},
    ]


def alerting_rules(scale):
    d = lambda seconds: _d(seconds, scale)  # noqa: E731
    share = d(1800)
    return [
        alert("TfshipApiDown", f'up{{job="{API_JOB}"}} == 0 or absent(up{{job="{API_JOB}"}})', d(60),
              "page", "api", "The tfship API is down or cannot be scraped",
              f"Prometheus has not scraped the {API_JOB} job ({{{{ $labels.instance }}}}) for {d(60)}.",
              "tfshipapidown"),
        alert("TfshipModelServerDown", 'tfship_dependency_up{dependency="model_server"} == 0', d(60),
              "page", "model-server", "The gateway cannot reach the model server",
              f"{{{{ $labels.instance }}}} has seen the model server's status endpoint fail for {d(60)}; "
              "predictions are failing.", "tfshipmodelserverdown"),
        alert("TfshipModelServerScrapeFailing",
              f'up{{job="{MODEL_SERVER_JOB}"}} == 0 or absent(up{{job="{MODEL_SERVER_JOB}"}})', d(120),
              "ticket", "model-server", "The model server's metrics cannot be scraped",
              f"Prometheus has not scraped the {MODEL_SERVER_JOB} job ({{{{ $labels.instance }}}}) for {d(120)}: "
              "its dashboards are blind.", "tfshipmodelserverscrapefailing"),
        alert("TfshipNoModelVersionAvailable", "tfship_model_versions_available == 0", d(60),
              "page", "model-server", "Model {{ $labels.model }} has no version available",
              f"The model server reports no AVAILABLE version of {{{{ $labels.model }}}} for {d(60)}.",
              "tfshipnomodelversionavailable"),
        alert("TfshipDatabaseDown", 'tfship_dependency_up{dependency="database"} == 0', d(60),
              "page", "database", "The gateway cannot reach the registry database",
              f"{{{{ $labels.instance }}}} has failed its database check for {d(60)}.", "tfshipdatabasedown"),
        alert("TfshipUpstreamErrorRatioHigh",
              f'sum by (model) (rate(tfship_upstream_requests_total{{outcome!~"{UPSTREAM_FAILURES}"}}[{d(300)}]))\n'
              f"/\nsum by (model) (rate(tfship_upstream_requests_total[{d(300)}]))\n> {UPSTREAM_ERROR_RATIO:g}",
              d(300), "ticket", "model-server",
              "Forwarded predictions of {{ $labels.model }} fail on the model server",
              f"More than {UPSTREAM_ERROR_RATIO:.0%} of the requests forwarded for {{{{ $labels.model }}}} "
              f"failed (server error, timeout, unavailable, circuit open or rejected) over {d(300)}.",
              "tfshipupstreamerrorratiohigh"),
        alert("TfshipApiSaturated", f"sum by (instance) (tfship_http_requests_in_flight) > {API_MAX_IN_FLIGHT}",
              d(300), "ticket", "api", "The API instance {{ $labels.instance }} is saturated",
              f"More than {API_MAX_IN_FLIGHT} requests have been in flight on {{{{ $labels.instance }}}} "
              f"for {d(300)}: requests queue and latency grows.", "tfshipapisaturated"),
        alert("TfshipInputsOutOfRange",
              f"sum by (model, version, feature) (rate(tfship_input_out_of_range_total[{d(600)}]))\n"
              f"/ on(model, version) group_left\n"
              f"sum by (model, version) (rate(tfship_prediction_rows_total[{d(600)}]))\n> {OUT_OF_RANGE_RATIO:g}",
              d(600), "ticket", "model",
              "Inputs of {{ $labels.model }} v{{ $labels.version }} are out of range on {{ $labels.feature }}",
              f"More than {OUT_OF_RANGE_RATIO:.0%} of the rows sent to {{{{ $labels.model }}}} version "
              f"{{{{ $labels.version }}}} over {d(600)} have {{{{ $labels.feature }}}} outside its training "
              "range: the traffic has drifted from the training data.", "tfshipinputsoutofrange"),
        alert("TfshipVersionClassDistributionDiverges",
              f"abs(\n  model_version_class_name:tfship_predicted_class:ratio_rate{share}\n"
              f"  - on(model, class_name) group_left\n  model_class_name:tfship_predicted_class:ratio_rate{share}\n"
              f") > {CLASS_SHARE_DIVERGENCE:g}\nand on(model, version)\n"
              f"sum by (model, version) (increase(tfship_predicted_class_total[{share}])) >= {MIN_ROWS_PER_VERSION}",
              d(900), "ticket", "model",
              "Version {{ $labels.version }} of {{ $labels.model }} predicts a different class mix",
              f"Over {share}, the share of {{{{ $labels.class_name }}}} among version {{{{ $labels.version }}}}'s "
              f"predictions differs by more than {CLASS_SHARE_DIVERGENCE:g} from all versions' share: "
              "canary and stable disagree.", "tfshipversionclassdistributiondiverges"),
        # Fallbacks hide a failing canary from callers and so from the SLOs: only this alert sees it.
        alert("TfshipCanaryFallbacksHigh",
              f"sum by (model, version) (rate(tfship_canary_fallbacks_total[{d(300)}]))\n"
              f"/ on(model, version)\n"
              f"sum by (model, version) (rate(tfship_upstream_requests_total[{d(300)}]))\n> {CANARY_FALLBACK_RATIO:g}",
              d(300), "ticket", "model",
              "Canary v{{ $labels.version }} of {{ $labels.model }} fails and falls back to stable",
              f"More than {CANARY_FALLBACK_RATIO:.0%} of the calls to canary version {{{{ $labels.version }}}} of "
              f"{{{{ $labels.model }}}} failed over {d(300)} and were retried on stable: callers do not see it, "
              "the canary is broken.", "tfshipcanaryfallbackshigh"),
        alert("Watchdog", "vector(1)", None, "none", "monitoring",
              "The alerting pipeline is alive",
              "Always firing. If the dead man's switch stops receiving it, Prometheus or Alertmanager is down.",
              "watchdog"),
    ]


def rule_groups(scale=1.0):
    """The component rules file: recordings first, then the alerts."""
    return {"groups": [
        {"name": "tfship-components-recordings", "rules": recording_rules(scale)},
        {"name": "tfship-components-alerts", "rules": alerting_rules(scale)},
    ]}
