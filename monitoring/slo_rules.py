"""SLI recording rules and Sloth's multi-window, multi-burn-rate alerts for one SLO profile."""
from dataclasses import dataclass

from monitoring.alerts import alert
from monitoring.slo import format_duration

SLOTH_PERIOD_SECONDS = 30 * 86400


@dataclass(frozen=True)
class BurnAlert:
    """One of Sloth's burn-rate alerts for a 30-day period; every window is scaled to the profile's period."""

    suffix: str
    severity: str
    factor: float
    long_seconds: int
    short_seconds: int
    for_seconds: int


# Sloth's defaults (and the SRE workbook's): 2% of the budget in 1h, 5% in 6h, 10% in 3d.
BURN_ALERTS = (
    BurnAlert("FastBurn", "page", 14.4, 3600, 300, 120),
    BurnAlert("SlowBurn", "page", 6, 6 * 3600, 1800, 900),
    BurnAlert("BudgetBurn", "ticket", 1, 3 * 86400, 6 * 3600, 3600),
)


def scale(profile):
    """How much shorter than Sloth's 30 days this profile's period is (1 for real profiles)."""
    return profile.window_seconds / SLOTH_PERIOD_SECONDS


def scaled(profile, seconds):
    """A Sloth duration scaled to the profile, as a Prometheus duration."""
    return format_duration(round(seconds * scale(profile), 6))


def windows(profile):
    """Every rate window the alerts use, shortest first, then the compliance period."""
    seconds = sorted({w for b in BURN_ALERTS for w in (b.long_seconds, b.short_seconds)})
    return [scaled(profile, s) for s in seconds] + [format_duration(profile.window_seconds)]


def alert_name(objective, burn):
    """E.g. api-availability + FastBurn -> TfshipApiAvailabilityFastBurn."""
    return "Tfship" + "".join(part.title() for part in objective.name.split("-")) + burn.suffix


def error_ratio_expr(objective, window):
    """The share of bad requests over a window (0 when no bad series exists yet)."""
    total = f"sum(rate({objective.total_selector}[{window}]))"
    if objective.kind == "availability":
        return f"(sum(rate({objective.bad_selector}[{window}])) or on() vector(0))\n/\n{total}"
    return f"1 - (\n  sum(rate({objective.good_selector}[{window}]))\n  /\n  {total}\n)"


def recording_rules(profile, objective):
    labels = {"slo": objective.name, "profile": profile.name}
    match = f'{{slo="{objective.name}"}}'
    rules = []
    for window in windows(profile):
        rules.append({"record": f"slo:sli_error:ratio_rate{window}",
                      "expr": error_ratio_expr(objective, window), "labels": labels})
        rules.append({"record": f"slo:sli_requests:rate{window}",
                      "expr": f"sum(rate({objective.total_selector}[{window}]))", "labels": labels})
    short, period = windows(profile)[0], windows(profile)[-1]
    rules += [
        {"record": "slo:objective:ratio", "expr": f"vector({objective.target:g})", "labels": labels},
        {"record": "slo:error_budget:ratio", "expr": f"vector({objective.error_budget:g})", "labels": labels},
        {"record": "slo:time_period:days", "expr": f"vector({profile.window_seconds / 86400:g})", "labels": labels},
        {"record": "slo:current_burn_rate:ratio",
         "expr": f"slo:sli_error:ratio_rate{short}{match}\n/ on(slo, profile)\nslo:error_budget:ratio{match}",
         "labels": labels},
        {"record": "slo:period_burn_rate:ratio",
         "expr": f"slo:sli_error:ratio_rate{period}{match}\n/ on(slo, profile)\nslo:error_budget:ratio{match}",
         "labels": labels},
        {"record": "slo:period_error_budget_remaining:ratio",
         "expr": f"1 - slo:period_burn_rate:ratio{match}", "labels": labels},
    ]
    return rules


def burn_alert(profile, objective, burn):
    long, short = scaled(profile, burn.long_seconds), scaled(profile, burn.short_seconds)
    match = f'{{slo="{objective.name}"}}'
    threshold = f"({burn.factor:g} * {objective.error_budget:g})"
    long_seconds = round(burn.long_seconds * scale(profile))
    expr = (f"(\n  slo:sli_error:ratio_rate{long}{match} > {threshold}\n"
            f"and\n  slo:sli_error:ratio_rate{short}{match} > {threshold}\n)\n"
            f"and on(slo, profile)\n"
            f"slo:sli_requests:rate{long}{match} * {long_seconds} >= {objective.min_samples}")
    what = "server errors" if objective.kind == "availability" else \
        f"requests slower than {objective.latency_threshold_seconds:g} s"
    pace = "the whole error budget" if burn.factor == 1 else f"{burn.factor:g} times faster than the budget allows"
    return alert(
        alert_name(objective, burn), expr, scaled(profile, burn.for_seconds), burn.severity, "slo",
        summary=f"{objective.name} is burning its error budget ({burn.suffix}, profile {profile.name})",
        description=(f"Prediction {what} over the last {long} and {short} spend the {objective.name} budget "
                     f"({objective.target:.4g} over {format_duration(profile.window_seconds)}) {pace}."),
        runbook=objective.name, labels={"slo": objective.name, "profile": profile.name})


def rule_groups(profile):
    """The rules file for a profile: one recording group and one alert group per objective."""
    groups = []
    for objective in profile.objectives:
        groups.append({"name": f"slo-{objective.name}-sli-recordings", "rules": recording_rules(profile, objective)})
        groups.append({"name": f"slo-{objective.name}-alerts",
                       "rules": [burn_alert(profile, objective, b) for b in BURN_ALERTS]})
    return {"groups": groups}
