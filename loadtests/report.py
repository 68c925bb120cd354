"""Write the gate's outputs: slo-verdict.json (for machines) and slo-report.html (for people)."""
import dataclasses
import datetime as dt
import json

from jinja2 import Environment, PackageLoader, select_autoescape

from loadtests import chart

VERDICT_FILE, REPORT_FILE = "slo-verdict.json", "slo-report.html"


def write(directory, verdict, measured, measurements, stats):
    """Write both files into directory (created); return their paths by kind."""
    directory.mkdir(parents=True, exist_ok=True)
    rows = chart.per_second(measurements.latency_by_run_second())
    document = {
        "outcome": verdict.outcome, "exit_code": verdict.exit_code, "profile": verdict.profile,
        "trustworthy": verdict.trustworthy, "line": verdict.line, "reasons": list(verdict.reasons),
        "checks": [dataclasses.asdict(c) for c in verdict.checks],
        "measured": {**dataclasses.asdict(measured), "error_ratio": measured.error_ratio,
                     "throughput_rps": measured.throughput_rps},
        "canary": _canary(verdict.canary),
        "versions": {v: {"requests": s.total.num_requests, "failures": s.total.num_failures}
                     for v, s in measurements.by_version.items()},
        "latency_per_second": [dict(zip(("second", "p50_ms", "p95_ms", "p99_ms", "count"), r)) for r in rows],
    }
    paths = {"json": directory / VERDICT_FILE, "html": directory / REPORT_FILE}
    paths["json"].write_text(json.dumps(document, indent=2, default=str) + "\n")
    templates = Environment(loader=PackageLoader("loadtests"), autoescape=select_autoescape(),
                            trim_blocks=True, lstrip_blocks=True)
    template = templates.get_template("slo_report.html")
    paths["html"].write_text(template.render(
        verdict=verdict, measured=measured, canary=verdict.canary,
        generated=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
        chart=chart.latency_svg(rows, _objectives_ms(verdict)),
        entries=sorted(stats.entries.values(), key=lambda e: (e.name, e.method))))
    return paths


def _objectives_ms(verdict):
    return {"p95": verdict.gate.p95_seconds * 1000, "p99": verdict.gate.p99_seconds * 1000}


def _canary(result):
    if result is None:
        return None
    return {"outcome": result.outcome, "reasons": list(result.reasons),
            "stable": result.stable and dataclasses.asdict(result.stable),
            "canary": result.canary and dataclasses.asdict(result.canary)}
