"""`python -m model.bench`: rows/s of a SavedModel signature in process. Budget: ~6 s (TF import, one save)."""
import json
import math

import pytest

from model import bench
from tests.model.server.fixture_models import export_tiny


def test_columns_cycle_the_rows_to_the_batch_size():
    rows = [{"x": 1.0, "s": "a"}, {"x": math.nan, "s": "b"}]
    cols = bench.columns(rows, 3)
    assert cols["s"] == ["a", "b", "a"]
    assert cols["x"][0] == 1.0 and math.isnan(cols["x"][1])


def test_measure_calls_at_least_the_minimum_and_times_each_call():
    calls = []
    durations = bench.measure(lambda **inputs: calls.append(inputs), {"x": 1}, seconds=0.0, min_calls=4)
    assert len(durations) == 4 and len(calls) == 5  # plus the first, untimed call
    assert all(d >= 0 for d in durations)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return export_tiny(str(tmp_path_factory.mktemp("bench") / "1"))


def test_the_command_prints_rows_per_second_per_batch_size(tiny, tmp_path, capsys):
    # In process: the smoke test in tests/loadtests/bench runs it as `python -m model.bench`.
    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps([{"x": 1.0}, {"x": 2.0}]))
    assert bench.main(["--model-dir", tiny, "--rows-file", str(rows), "--batch-sizes", "1,16",
                       "--seconds", "0.3"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(result["rows_per_s"]) == {"1", "16"} and result["calls"]["1"] >= 5
    assert result["rows_per_s"]["16"] > result["rows_per_s"]["1"] > 0
    # The model server's own call path, measured beside the baseline on the same rows.
    assert set(result["flat_call"]["rows_per_s"]) == {"1", "16"}
    assert all(rate > 0 for rate in result["flat_call"]["rows_per_s"].values())
    assert result["median_call_ms"]["1"] > 0
    assert set(result["tensorflow_threads"]) == {"intra_op", "inter_op"}


def test_serve_measures_each_request_on_one_loaded_model(tiny):
    import io

    baseline = bench.Baseline(tiny, [{"x": 1.0}, {"x": 2.0}])
    requests = io.StringIO('{"batch_size": 8, "seconds": 0.05}\n\n{"batch_size": 0, "seconds": 1}\n'
                           'not json\n{"batch_size": 1, "seconds": 0}\n')
    out = io.StringIO()
    bench.serve(baseline, requests, out)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines[0] == {"ready": True, "tensorflow_threads": baseline.tensorflow_threads}
    first, zero, garbled, last = lines[1:]
    assert first["batch_size"] == 8 and first["calls"] >= 5 and first["rows_per_s"] > 0
    assert first["flat_call"]["rows_per_s"] > 0 and first["median_call_ms"] > 0
    assert "batch_size must be positive" in zero["error"] and "bad request 'not json'" in garbled["error"]
    assert last["batch_size"] == 1 and last["calls"] == 5  # the minimum, whatever the time asked


@pytest.mark.parametrize("content, batch_sizes, message", [
    ("[]", "1", "non-empty JSON list"),
    ('{"x": 1}', "1", "non-empty JSON list"),
    ('[{"x": 1}]', "0", "positive"),
    ('[{"x": 1}]', "1,a", "positive"),
])
def test_bad_arguments_are_refused(tmp_path, capsys, content, batch_sizes, message):
    rows = tmp_path / "rows.json"
    rows.write_text(content)
    with pytest.raises(SystemExit) as exit_:
        bench.main(["--model-dir", str(tmp_path), "--rows-file", str(rows), "--batch-sizes", batch_sizes])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_negative_tensorflow_threads_are_refused(tmp_path, capsys):
    rows = tmp_path / "rows.json"
    rows.write_text('[{"x": 1}]')
    with pytest.raises(SystemExit) as exit_:
        bench.main(["--model-dir", str(tmp_path), "--rows-file", str(rows),
                    "--tensorflow-session-parallelism", "-1"])
    assert exit_.value.code == 2
    assert "0 or more" in capsys.readouterr().err
