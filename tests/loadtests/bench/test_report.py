"""Figures, JSON, the console table and BENCHMARKS.md from measured runs. Budget: <1 s."""
import json

import pytest

from loadtests.bench import gateway, model_server, report, runner


def run(connections, requests, rps, p50, p99, cpu_ms, rows=1):
    """A run as measure.run returns it."""
    return {"connections": connections, "requests": requests, "errors": 0, "rps": rps, "p50_ms": p50,
            "p99_ms": p99, "rows": rows, "rows_per_s": rps * rows, "seconds": requests / rps,
            "cpu_s": {k: v * requests / 1000 for k, v in cpu_ms.items()}, "cpu_ms_per_request": cpu_ms}


GATEWAY = {
    "direct_c1": run(1, 1000, 1000, 0.9, 1.5, {"wrk": 0.05, "api": 0.0, "model_server": 0.9}),
    "api_c1": run(1, 500, 500, 1.8, 3.0, {"wrk": 0.05, "api": 1.0, "model_server": 0.9}),
    "direct_c8": run(8, 2000, 2000, 4.0, 9.0, {"wrk": 0.05, "api": 0.0, "model_server": 0.95}),
    "api_c8": run(8, 1000, 1000, 8.0, 15.0, {"wrk": 0.05, "api": 1.0, "model_server": 0.95}),
}
BATCHING = {
    "off_c32": run(32, 1000, 500, 60, 90, {"wrk": 0.05, "model_server": 1.4}),
    "on_c32": run(32, 2000, 800, 35, 60, {"wrk": 0.05, "model_server": 1.0}),
    "off_c1": run(1, 1000, 500, 1.2, 3, {"wrk": 0.05, "model_server": 1.1}),
    "on_c1": run(1, 1000, 500, 1.26, 3, {"wrk": 0.05, "model_server": 1.1}),
}


def test_gateway_figures():
    figures = gateway.figures(GATEWAY, cores=2)
    assert figures["gateway_extra_p50_ms"] == pytest.approx(0.9)
    assert figures["gateway_extra_p99_ms"] == pytest.approx(1.5)
    # 1 ms of API CPU per request over both API runs.
    assert figures["gateway_cpu_ms_per_request"] == pytest.approx(1.0)
    assert figures["gateway_throughput_ratio_c8"] == pytest.approx(0.5)
    # Costs at c=8: via 0.05 + 1.0 + 0.95 = 2.0 ms, direct 1.0 ms -> at most 1000 vs 2000 req/s on 2 cores.
    assert figures["gateway_throughput_ceiling_c8"] == pytest.approx(0.5)
    assert (figures["gateway_ceiling_rps_via"], figures["gateway_ceiling_rps_direct"]) == (1000, 2000)
    # The direct run served 2000 req/s at 0.05 + 0.95 ms: 2 cores busy. Against it the API path's
    # 1000 req/s is a ratio of at most 0.5; 0.65 x 2000 = 1300 req/s on 2 cores leaves
    # 2000 / 1300 - 0.05 - 0.95 = 0.538 ms of API CPU per request.
    assert figures["gateway_direct_cores_busy_c8"] == pytest.approx(2.0)
    assert figures["gateway_throughput_ceiling_measured_direct_c8"] == pytest.approx(0.5)
    assert figures["gateway_api_cpu_budget_ms_c8"] == pytest.approx(2000 / 1300 - 1.0, abs=1e-3)
    assert figures["gateway_api_cpu_budget_at_direct_ceiling_ms_c8"] == pytest.approx(0.538, abs=1e-3)


def test_gateway_ceiling_against_a_direct_run_that_left_cores_idle():
    """A direct run held to 1.2 of 2 cores (one process's GIL): the API path may use the rest."""
    runs = dict(GATEWAY, direct_c8=run(8, 1200, 1200, 6.0, 9.0, {"wrk": 0.05, "api": 0.0, "model_server": 0.95}))
    figures = gateway.figures(runs, cores=2)
    assert figures["gateway_direct_cores_busy_c8"] == pytest.approx(1.2)
    assert figures["gateway_throughput_ceiling_c8"] == pytest.approx(0.5)  # both paths at their CPU ceilings
    assert figures["gateway_throughput_ceiling_measured_direct_c8"] == pytest.approx(1000 / 1200, abs=1e-3)
    # 0.65 x 1200 = 780 req/s on 2 cores: 2000 / 780 - 1.0 = 1.564 ms for the API.
    assert figures["gateway_api_cpu_budget_ms_c8"] == pytest.approx(2000 / 780 - 1.0, abs=1e-3)


def test_batching_figures():
    figures = model_server.batching_figures(BATCHING)
    assert figures["batching_throughput_ratio_c32"] == pytest.approx(1.6)
    assert figures["batching_p50_ratio_c1"] == pytest.approx(1.05)
    assert figures["batching_model_server_cpu_ms_per_row_c32"] == {"off": 1.4, "on": 1.0}


@pytest.fixture
def results():
    found = runner.new_results(seconds=5, registry_models=100_000)
    found["runs"] = {"gateway": GATEWAY, "batching": BATCHING,
                     "gateway_settings": {"1 worker x 4 threads": dict(
                         run(8, 800, 800, 9.0, 16.0, {"wrk": 0.05, "api": 1.2, "model_server": 0.95}),
                         settings={"WORKERS": 1}, ratio_to_direct=0.4)},
                     "registry": {"sqlite": dict(run(1, 900, 180, 5.0, 8.0, {"wrk": 0.1, "api": 4.0}),
                                                 total=3334, models=100_000,
                                                 database_only={"calls": 50, "p50_ms": 2.5, "p99_ms": 3.5},
                                                 cursor={"p50_ms": 0.5, "p99_ms": 0.7,
                                                         "cpu_ms_per_request": {"api": 0.9}},
                                                 query={"owner": "team-03", "page": 50}),
                                  "postgres": {"skipped": "PostgreSQL 15 is not installed"}}}
    found["figures"].update(gateway.figures(GATEWAY, cores=2))
    found["figures"].update(model_server.batching_figures(BATCHING))
    found["figures"].update(registry_sqlite_p99_ms=8.0, api_worker_rss_mib=66.0)
    found["footprint"] = {"api_workers": [{"pid": 1, "rss_mib": 66.0, "pss_mib": 37.5}],
                          "api_time_to_ready": {"seconds": [1.5, 1.7], "best_s": 1.5},
                          "stack_time_to_healthy_s": 12.0}
    found["load_generator"] = {"users": 16, "rps": 500.0, "cpu_utilisation": 0.5, "saturation_rps": 1000.0}
    return runner.finish(found)


def test_verdicts_follow_the_figures(results):
    verdicts = {row["key"]: row["verdict"] for row in results["verdicts"]}
    assert verdicts["gateway_extra_p50_ms"] == "met"
    assert verdicts["gateway_throughput_ratio_c8"] == "not met"
    assert verdicts["batching_throughput_ratio_c32"] == "met"
    assert verdicts["registry_sqlite_p99_ms"] == "met"
    assert verdicts["registry_postgres_p99_ms"] == "not measured"
    assert "started" not in results and results["duration_s"] >= 0


def test_json_round_trips(results, tmp_path):
    report.write_json(results, tmp_path / "deep" / "results.json")
    assert json.loads((tmp_path / "deep" / "results.json").read_text()) == json.loads(json.dumps(results))


def test_the_table_has_a_line_per_target(results):
    lines = report.table(results).splitlines()
    assert len(lines) == 1 + len(results["verdicts"])
    assert any(line.startswith("Gateway latency: extra p50") and line.endswith("met") for line in lines)


def test_markdown_shows_machine_verdicts_sections_and_the_ceiling_arithmetic(results):
    text = report.markdown(results)
    machine = results["machine"]
    assert f"{machine['cores']} cores, {machine['cpu_model']}" in text and machine["date"] in text
    assert f"TensorFlow {machine['tensorflow']}" in text
    assert "| Gateway throughput vs direct at c=8 | 0.5 | ≥ 0.65× | not met |" in text
    for section in ("## Gateway", "## Server-side batching", "## Footprint", "## Registry at scale",
                    "## Load generator"):
        assert section in text
    assert "## Model server efficiency" not in text  # not run
    assert "| 2 workers x 4 threads (the stack's) | 1,000 | 0.5 | 8 | 1 |" in text
    assert "| 1 worker x 4 threads | 800 | 0.4 | 9 | 1.2 |" in text
    assert "| 1 | 66 | 37.5 |" in text
    assert "0.05 (wrk) + 1 (API) + 0.95 (model server) = 2 ms" in text
    assert "at most 1,000 req/s through the API and 2,000 req/s directly" in text
    assert "| postgres | PostgreSQL 15 is not installed |" in text
    assert "## What each change bought" in text and "### The model server" in text
    assert "| sqlite | 3,334 | 900 | 5 | 8 | 4 | — | 0.5 | 0.7 | 0.9 | 2.5 | 3.5 |" in text


def test_repeated_runs_combine_into_medians_with_every_run_shown(results):
    import copy

    runs = []
    for ratio, p50, probe in ((0.6, 0.9, 1.9), (0.7, 1.4, 1.3), (0.66, 1.1, 2.0)):
        one = copy.deepcopy(results)
        one["figures"]["gateway_throughput_ratio_c8"], one["figures"]["gateway_extra_p50_ms"] = ratio, p50
        one["figures"]["registry_sqlite_p99_ms"] = None if ratio == 0.7 else 8.0  # a run that did not measure it
        one["machine"]["cpu_probe_at_start"] = {"one_core_ms": 60.0, "parallel_speedup": probe}
        one["verdicts"] = runner.verdict_rows(one["figures"])
        runs.append(one)
    combined = runner.combine(runs)
    verdicts = {row["key"]: (row["value"], row["verdict"]) for row in combined["verdicts"]}
    assert verdicts["gateway_throughput_ratio_c8"] == (0.66, "met")  # median of 0.6, 0.7, 0.66
    assert verdicts["gateway_extra_p50_ms"] == (1.1, "not met")
    assert verdicts["registry_sqlite_p99_ms"] == (8.0, "met")  # the runs that measured it
    assert combined["duration_s"] == round(sum(r["duration_s"] for r in runs), 1)
    assert [r["figures"]["gateway_throughput_ratio_c8"] for r in combined["repeats"]] == [0.6, 0.7, 0.66]
    assert runs[0]["figures"]["gateway_throughput_ratio_c8"] == 0.6  # the runs are left as they were
    text = report.markdown(combined)
    assert "median of 3 whole runs" in text
    assert "| Gateway throughput vs direct at c=8 | 0.6 | 0.7 | 0.66 | 0.66 |" in text
    assert "run 2: 1.3x" in text
    assert "| Gateway throughput vs direct at c=8 | 0.66 | ≥ 0.65× | met |" in text
