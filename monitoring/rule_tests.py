"""promtool unit tests for every generated alert: quiet just before its `for:` ends, firing just after.

The input series are written in raw metric terms (what the gateway, TF Serving and Prometheus export),
never derived from the rules' expressions, so a wrong expression fails its test. Each alert also gets a
case that must stay quiet: a ratio under the threshold, too few samples, or a healthy value.
"""
import math
import re

from monitoring import component_rules as cr
from monitoring import slo_rules
from monitoring.metrics import API_JOB, MODEL_SERVER_JOB
from monitoring.slo import format_duration, parse_duration

MODEL, VERSION = "penguins", "1"
API_LABELS = {"job": API_JOB, "instance": "api:8000"}
PREDICT = {"route": "/api/v1/models/<name>:predict", "method": "POST", "model": MODEL, "version": VERSION,
           "synthetic": "false"}


def _series(name, labels, start=0, step=0, count=1):
    """A promtool input series: `start`, then `step` added per evaluation interval (float-free when whole)."""
    text = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return {"series": f"{name}{{{text}}}", "values": f"{_num(start)}+{_num(step)}x{count}"}


def _num(value):
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _render(template, labels):
    return re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels.get(m.group(1), ""), template)


def _expected(rule, labels):
    """What promtool must see: the rule's labels over the series' labels, annotations rendered."""
    return {"exp_labels": {**labels, **rule["labels"]},
            "exp_annotations": {k: _render(v, labels) for k, v in rule["annotations"].items()}}


def _boundary(rule, onset, step, labels):
    """One test: nothing at onset + for - step, the alert at onset + for."""
    hold = parse_duration(rule["for"]) if rule.get("for") else 0
    checks = []
    if hold:
        checks.append({"eval_time": format_duration(onset + hold - step) if onset + hold - step > 0 else "0s",
                       "alertname": rule["alert"], "exp_alerts": []})
    checks.append({"eval_time": format_duration(onset + hold) if onset + hold else "0s",
                   "alertname": rule["alert"], "exp_alerts": [_expected(rule, labels)]})
    return checks


def _quiet(rule, onset, step):
    hold = parse_duration(rule["for"]) if rule.get("for") else 0
    return [{"eval_time": format_duration(onset + hold + step), "alertname": rule["alert"], "exp_alerts": []}]


def _file(rule_file, step, tests, order):
    return {"rule_files": [f"../{rule_file}"], "evaluation_interval": format_duration(step),
            "group_eval_order": order, "tests": [{"interval": format_duration(step), **test} for test in tests]}


# --- SLO burn-rate alerts ----------------------------------------------------------------------------

def _slo_series(objective, bad_ratio, per_step, count, **labels):
    """Prediction traffic of `per_step` requests per interval, `bad_ratio` of them bad for the objective."""
    bad, good = per_step * bad_ratio, per_step * (1 - bad_ratio)
    labels = {**PREDICT, **labels}
    if objective.kind == "availability":
        return [_series("tfship_http_requests_total", {**labels, "code": "200"}, step=good, count=count),
                _series("tfship_http_requests_total", {**labels, "code": "503"}, step=bad, count=count)]
    threshold = f"{objective.latency_threshold_seconds:g}"
    return [_series("tfship_http_request_duration_seconds_bucket", {**labels, "le": threshold}, step=good, count=count),
            _series("tfship_http_request_duration_seconds_bucket", {**labels, "le": "+Inf"}, step=per_step, count=count),
            _series("tfship_http_request_duration_seconds_count", labels, step=per_step, count=count)]


def slo_tests(profile):
    """Per burn-rate alert: fires across its `for:`; quiet under the threshold, on too few samples, and (pages)
    on load-test traffic. The fast burns also count errors answered before a version was chosen (no model
    label: an injected fault, a registry outage) and ignore routes other than predictions."""
    step = parse_duration(slo_rules.windows(profile)[0]) // 5
    tests, order = [], []
    for objective in profile.objectives:
        order += [f"slo-{objective.name}-sli-recordings", f"slo-{objective.name}-alerts"]
        for burn in slo_rules.BURN_ALERTS:
            rule = slo_rules.burn_alert(profile, objective, burn)
            threshold = burn.factor * objective.error_budget
            high = min(threshold * 1.5, (threshold + 1) / 2)
            hold = parse_duration(rule["for"])
            count = (hold // step) + 3
            labels = {"slo": objective.name, "profile": profile.name}
            # The first evaluation with two samples in every window is one interval in.
            busy = objective.min_samples * 2
            tests.append({"name": f"{rule['alert']} fires after {rule['for']} at {high:.4g} bad",
                          "input_series": _slo_series(objective, high, busy, count),
                          "alert_rule_test": _boundary(rule, step, step, labels)})
            tests.append({"name": f"{rule['alert']} stays quiet at {threshold / 2:.4g} bad",
                          "input_series": _slo_series(objective, threshold / 2, busy, count),
                          "alert_rule_test": _quiet(rule, step, step)})
            few = objective.min_samples / (2 * count)
            tests.append({"name": f"{rule['alert']} stays quiet under {objective.min_samples} samples",
                          "input_series": _slo_series(objective, high, few, count),
                          "alert_rule_test": _quiet(rule, step, step)})
            if burn.severity == "page":
                tests.append({"name": f"{rule['alert']} ignores load-test traffic (synthetic=\"true\")",
                              "input_series": _slo_series(objective, high, busy, count, synthetic="true"),
                              "alert_rule_test": _quiet(rule, step, step)})
            if burn is slo_rules.BURN_ALERTS[0]:
                tests.append({"name": f"{rule['alert']} counts answers without a model label (model=\"\")",
                              "input_series": _slo_series(objective, high, busy, count, model="", version=""),
                              "alert_rule_test": _boundary(rule, step, step, labels)})
                tests.append({"name": f"{rule['alert']} ignores routes other than predictions",
                              "input_series": _slo_series(objective, high, busy, count, route="/api/v1/models",
                                                          method="GET", model="", version=""),
                              "alert_rule_test": _quiet(rule, step, step)})
    return _file(f"slo-{profile.name}.rules.yml", step, tests, order)


# --- component alerts --------------------------------------------------------------------------------

def _gauge(name, labels, value, count):
    return _series(name, labels, start=value, step=0, count=count)


def _component_cases(count):
    """alert name -> (firing series, expected labels, intervals until the expression holds, quiet series)."""
    dep = lambda d, v: _gauge("tfship_dependency_up", {**API_LABELS, "dependency": d}, v, count)  # noqa: E731
    up = lambda job, inst, v: _gauge("up", {"job": job, "instance": inst}, v, count)  # noqa: E731
    upstream = lambda outcome, n: _series("tfship_upstream_requests_total",  # noqa: E731
                                          {**API_LABELS, "model": MODEL, "version": VERSION, "outcome": outcome},
                                          step=n, count=count)
    in_flight = lambda route, n: _gauge("tfship_http_requests_in_flight",  # noqa: E731
                                        {**API_LABELS, "route": route}, n, count)
    row = {**API_LABELS, "model": MODEL, "version": VERSION}
    out_of_range = lambda feature, n: _series("tfship_input_out_of_range_total",  # noqa: E731
                                              {**row, "feature": feature}, step=n, count=count)
    rows = _series("tfship_prediction_rows_total", row, step=100, count=count)
    canary = {**API_LABELS, "model": MODEL, "version": "2"}
    canary_calls = lambda outcome, n: _series("tfship_upstream_requests_total",  # noqa: E731
                                              {**canary, "outcome": outcome}, step=n, count=count)
    fallbacks = lambda n: _series("tfship_canary_fallbacks_total",  # noqa: E731
                                  {**canary, "reason": "client_error"}, step=n, count=count)

    def classes(version, **per_step):
        return [_series("tfship_predicted_class_total", {**API_LABELS, "model": MODEL, "version": version,
                                                          "class_name": name}, step=n, count=count)
                for name, n in per_step.items()]

    stable = classes("1", Adelie=60, Chinstrap=20, Gentoo=20)
    # Canary: 24 rows per interval, so it reaches MIN_ROWS_PER_VERSION (100) on the 5th interval.
    canary_rows = 24
    reach = math.ceil(cr.MIN_ROWS_PER_VERSION / canary_rows)
    return {
        "TfshipApiDown": ([up(API_JOB, "api:8000", 0)], {"job": API_JOB, "instance": "api:8000"}, 0,
                          [up(API_JOB, "api:8000", 1)]),
        "TfshipModelServerDown": ([dep("model_server", 0)], {**API_LABELS, "dependency": "model_server"}, 0,
                                  [dep("model_server", 1)]),
        "TfshipModelServerScrapeFailing": ([up(MODEL_SERVER_JOB, "ms:8501", 0)],
                                           {"job": MODEL_SERVER_JOB, "instance": "ms:8501"}, 0,
                                           [up(MODEL_SERVER_JOB, "ms:8501", 1)]),
        "TfshipNoModelVersionAvailable": (
            [_gauge("tfship_model_versions_available", {**API_LABELS, "model": MODEL}, 0, count)],
            {**API_LABELS, "model": MODEL}, 0,
            [_gauge("tfship_model_versions_available", {**API_LABELS, "model": MODEL}, 2, count)]),
        "TfshipDatabaseDown": ([dep("database", 0)], {**API_LABELS, "dependency": "database"}, 0,
                               [dep("database", 1)]),
        # 10 of 100 forwarded requests time out; quiet: 2 timeouts, and client errors do not count.
        "TfshipUpstreamErrorRatioHigh": ([upstream("ok", 90), upstream("timeout", 10)], {"model": MODEL}, 1,
                                         [upstream("ok", 90), upstream("timeout", 2), upstream("client_error", 50)]),
        # 17 in flight is over 16; quiet: exactly 16.
        "TfshipApiSaturated": ([in_flight("/v1/models/<name>:predict", 10), in_flight("/healthz", 7)],
                               {"instance": "api:8000"}, 0,
                               [in_flight("/v1/models/<name>:predict", 10), in_flight("/healthz", 6)]),
        # body_mass_g out of range on 10% of rows fires; bill_length_mm on 1% must not.
        "TfshipInputsOutOfRange": ([rows, out_of_range("body_mass_g", 10), out_of_range("bill_length_mm", 1)],
                                   {"model": MODEL, "version": VERSION, "feature": "body_mass_g"}, 1,
                                   [rows, out_of_range("bill_length_mm", 1)]),
        # The canary predicts Gentoo half the time (all versions: 32 of 124, 0.26): 0.24 apart.
        "TfshipVersionClassDistributionDiverges": (
            stable + classes("2", Adelie=canary_rows // 2, Gentoo=canary_rows // 2),
            {"model": MODEL, "version": "2", "class_name": "Gentoo"}, reach,
            stable + classes("2", Adelie=15, Chinstrap=5, Gentoo=5)),
        # 10 of 100 calls to canary v2 fall back to stable; quiet: 4 of 100 (under 5%).
        "TfshipCanaryFallbacksHigh": (
            [canary_calls("ok", 90), canary_calls("client_error", 10), fallbacks(10)],
            {"model": MODEL, "version": "2"}, 1,
            [canary_calls("ok", 96), canary_calls("client_error", 4), fallbacks(4)]),
        "Watchdog": ([up(API_JOB, "api:8000", 1)], {}, 0, None),
    }


def component_tests(scale, suffix=""):
    """Per component alert: quiet before, firing after its `for:`; and a healthy case that stays quiet."""
    step = max(1, round(30 * scale))
    rules = {r["alert"]: r for r in cr.alerting_rules(scale)}
    longest = max(parse_duration(r.get("for", "0s") or "0s") for r in rules.values()) // step
    cases = _component_cases(longest + 10)
    missing = set(rules) - set(cases)
    if missing:
        raise ValueError(f"component alerts without a test case: {sorted(missing)}")
    tests = []
    for name, (series, labels, onset, healthy) in cases.items():
        rule = rules[name]
        tests.append({"name": f"{name} fires after {rule.get('for', '0s')}", "input_series": series,
                      "alert_rule_test": _boundary(rule, onset * step, step, labels)})
        if healthy:
            tests.append({"name": f"{name} stays quiet when healthy", "input_series": healthy,
                          "alert_rule_test": _quiet(rule, onset * step, step)})
    absent_rules = {"TfshipApiDown": API_JOB, "TfshipModelServerScrapeFailing": MODEL_SERVER_JOB}
    for name, job in absent_rules.items():
        tests.append({"name": f"{name} fires when Prometheus has no {job} target at all",
                      "input_series": [_gauge("up", {"job": "other", "instance": "x:1"}, 1, longest + 10)],
                      "alert_rule_test": _boundary(rules[name], 0, step, {"job": job})})
    groups = [g["name"] for g in cr.rule_groups(scale)["groups"]]
    return _file(f"components{suffix}.rules.yml", step, tests, groups)
