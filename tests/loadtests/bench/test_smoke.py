"""One tiny benchmark run against a real model server, from wrk to results.json and Markdown.

A one-signature SavedModel (y = 2x) is served by `tfship model-server`; the efficiency section
measures it over HTTP with wrk and in process with `python -m model.bench --serve` (one process,
the model loaded once), in two rounds of pairs.
Budget: ~20 s on a quiet machine (three TensorFlow imports: the export, the server, model.bench).
"""
import json

import pytest

from loadtests.bench import model_server, report, runner, servers
from tests.model.server.fixture_models import export_tiny


@pytest.fixture(scope="module")
def tiny_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench-smoke")
    version_dir = root / "tiny" / "1"
    export_tiny(str(version_dir))
    port = servers.free_port()
    server = servers.model_server([f"--rest_api_port={port}", f"--port={servers.free_port()}",
                                   "--model_name=tiny", f"--model_base_path={root / 'tiny'}"],
                                  None, root / "model-server.log")
    url = f"http://127.0.0.1:{port}"
    try:
        server.wait_ready(lambda: servers.versions_available(url, "tiny"), timeout=90)
        yield server, url, version_dir, root
    finally:
        server.stop()


def test_the_pipeline_writes_a_well_formed_result(tiny_server):
    server, url, version_dir, root = tiny_server
    results = runner.new_results(seconds=1, registry_models=0)
    rows = [{"x": 0.5}, {"x": 1.5}, {"x": -2.0}]
    baseline, runs, ratios = model_server.measure_efficiency(
        f"{url}/v1/models/tiny/versions/1:predict", server.pid, version_dir, rows, 1, root, batch_sizes=(1, 4),
        rounds=2, tf_threads=1)
    # The baseline runs with the server's TensorFlow threads (here as --tensorflow_session_parallelism=1).
    assert baseline["tensorflow_threads"] == {"intra_op": 1, "inter_op": 1}
    assert baseline["rounds"] == 2 and all(run["rounds"] == 2 for run in runs.values())
    results["runs"]["efficiency"], results["in_process"], results["efficiency_ratios"] = runs, baseline, ratios
    results = runner.finish(results)

    for size in (1, 4):
        run = runs[f"batch_{size}"]
        assert run["errors"] == 0 and run["requests"] > 10, run
        assert run["rows_per_s"] == pytest.approx(run["rps"] * size, rel=0.01)
        assert 0 < run["p50_ms"] <= run["p99_ms"]
        assert run["cpu_s"]["model_server"] > 0  # the server's own accounting over the run
        assert run["stdlib_json_ms"] > 0
        assert baseline["rows_per_s"][str(size)] > 0 and ratios[str(size)] > 0
    assert baseline["rows_per_s"]["4"] > baseline["rows_per_s"]["1"]  # batching pays in process

    report.write_json(results, root / "out" / "results.json")
    saved = json.loads((root / "out" / "results.json").read_text())
    assert saved["runs"]["efficiency"]["batch_4"]["rows"] == 4
    assert {row["verdict"] for row in saved["verdicts"]} == {"not measured"}  # b128 was not run
    markdown = report.markdown(saved)
    assert "## Model server efficiency" in markdown and "## Gateway" not in markdown
    for probe in (saved["machine"]["cpu_probe_at_start"], saved["cpu_probe_at_end"]):
        # Its values are the machine's, not bounded here: a busy host slows one side or the other.
        assert probe["one_core_ms"] > 0 and probe["parallel_speedup"] > 0
    assert f"{saved['cpu_probe_at_end']['one_core_ms']} ms on one core" in markdown
    assert f"| 4 | {report._value(runs['batch_4']['rows_per_s'])} |" in markdown


def test_an_in_process_baseline_that_cannot_load_says_where_to_look(tmp_path):
    rows_file = tmp_path / "rows.json"
    rows_file.write_text('[{"x": 1.0}]')
    with pytest.raises(RuntimeError, match="model.bench --serve failed: it exited; see .*model-bench.log"):
        model_server.InProcess(tmp_path / "no-such-version", rows_file, tmp_path / "model-bench.log")
    assert "no-such-version" in (tmp_path / "model-bench.log").read_text()


def test_an_in_process_baseline_that_does_not_answer_is_stopped(tmp_path, monkeypatch):
    """A baseline process that hangs (here: one that never prints) is killed after the timeout."""
    import subprocess
    import sys

    real_popen = subprocess.Popen

    def silent(command, **options):
        return real_popen([sys.executable, "-c", "import time; time.sleep(60)"], **options)

    monkeypatch.setattr(model_server.subprocess, "Popen", silent)
    rows_file = tmp_path / "rows.json"
    rows_file.write_text('[{"x": 1.0}]')
    with pytest.raises(RuntimeError, match="did not answer in 0.5 s"):
        model_server.InProcess(tmp_path / "v", rows_file, tmp_path / "model-bench.log", timeout_s=0.5)
