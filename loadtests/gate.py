"""The post-deploy gate: judge the run against the SLO file when Locust quits, and set the exit code.

Active when --slo-profile names a profile of monitoring/slo.yaml; the thresholds come from that
file only (through monitoring.slo). Outputs in --report-dir: slo-verdict.json and slo-report.html.
"""
import logging
from pathlib import Path

from locust import events
from locust.runners import WorkerRunner

from loadtests import canary, report
from loadtests.measurements import EVERY_REQUEST, PREDICTIONS
from loadtests.verdict import Measured, evaluate
from monitoring import slo

log = logging.getLogger("tfship.gate")


@events.quitting.add_listener
def judge(environment, **_kwargs):
    """Judge the requests after the warm-up (loadtests.measurements, final unlike the CSV), report, set
    environment.process_exit_code."""
    parsed = environment.parsed_options
    if parsed is None or not parsed.slo_profile or isinstance(environment.runner, WorkerRunner):
        return
    profile = slo.load(parsed.slo_profile)
    tfship = environment.tfship
    predictions, total = tfship.totals(PREDICTIONS), tfship.totals(EVERY_REQUEST)
    measured = Measured(
        predictions=predictions.num_requests, prediction_failures=predictions.num_failures,
        p95_s=predictions.get_response_time_percentile(0.95) / 1000,
        p99_s=predictions.get_response_time_percentile(0.99) / 1000,
        requests=total.num_requests, failures=total.num_failures,
        duration_s=tfship.duration_s, generator=tfship.generator,
        over_p95_objective=_slower_than(predictions, profile.gate.p95_seconds),
        over_p99_objective=_slower_than(predictions, profile.gate.p99_seconds))
    tolerances = canary.Tolerances(parsed.canary_max_error_delta, parsed.canary_max_latency_ratio,
                                   parsed.canary_min_samples)
    versions = [canary.VersionStats.from_request_stats(v, s) for v, s in tfship.by_version.items()]
    comparison = canary.compare(versions, tfship.rollout, tolerances)
    verdict = evaluate(profile.gate, profile.name, measured, parsed.max_generator_cpu, comparison)
    environment.process_exit_code = verdict.exit_code
    if parsed.report_dir:
        paths = report.write(Path(parsed.report_dir), verdict, measured, tfship, environment.stats)
        log.info("SLO report: %s", paths["html"])
    log.log(logging.INFO if verdict.outcome == "PASS" else logging.ERROR, "%s", verdict.line)


def _slower_than(entry, seconds):
    """How many of a StatsEntry's requests took longer than `seconds` (its times are rounded ms)."""
    return sum(count for ms, count in entry.response_times.items() if ms > seconds * 1000)
