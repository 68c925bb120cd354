"""A wrk run with process accounting: idle CPU is not charged to requests. Budget: ~4 s."""
import subprocess
import sys

import pytest

from loadtests.bench import measure


@pytest.fixture
def busy_pid():
    """A process burning one core whatever the load: pure background CPU."""
    process = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    yield process.pid
    process.kill()
    process.wait(timeout=5)


def test_background_cpu_is_subtracted_and_per_request_costs_follow(echo_url, busy_pid):
    # The busy loop's share of the cores varies with outside load, so the test checks the
    # accounting, not the machine: a measured idle rate, the raw charge, and the subtraction.
    assert measure.idle_rates({"busy": busy_pid}, 0.3)["busy"] > 0.03
    raw = measure.run(echo_url, seconds=1, pids={"busy": busy_pid}, method="POST", body="{}",
                      authorization="Bearer right", rows=3)
    assert raw["requests"] > 10 and raw["errors"] == 0
    assert raw["rows_per_s"] == pytest.approx(3 * raw["rps"], rel=0.01)
    assert raw["cpu_s"]["busy"] > 0.03
    assert raw["cpu_ms_per_request"]["busy"] == pytest.approx(1000 * raw["cpu_s"]["busy"] / raw["requests"],
                                                              rel=0.02)
    assert raw["cpu_ms_per_request"]["wrk"] > 0
    # An idle rate above anything the loop can burn leaves nothing charged to the requests.
    net = measure.run(echo_url, seconds=1, pids={"busy": busy_pid}, idle={"busy": 10.0}, method="POST",
                      body="{}", authorization="Bearer right")
    assert net["cpu_s"]["busy"] == 0.0 and net["idle_cpu_per_s"] == {"busy": 10.0}


def _round(requests, seconds, p50, p99, cpu):
    return {"requests": requests, "seconds": seconds, "errors": 1, "rows": 2, "p50_ms": p50, "p90_ms": p50,
            "p99_ms": p99, "mean_ms": p50, "max_ms": p99 * 2, "cpu_s": {"api": cpu, "wrk": 0.1},
            "cpu_ms_per_request": {}, "connections": 1}


def test_merge_adds_counts_and_cpu_and_takes_the_median_of_percentiles():
    merged = measure.merge([_round(100, 1.0, 1.0, 2.0, 0.2), _round(300, 2.0, 1.2, 50.0, 0.4),
                            _round(200, 1.0, 1.1, 3.0, 0.3)])
    assert (merged["requests"], merged["seconds"], merged["errors"], merged["rounds"]) == (600, 4.0, 3, 3)
    assert merged["rps"] == 150.0 and merged["rows_per_s"] == 300.0
    assert merged["p50_ms"] == 1.1 and merged["p99_ms"] == 3.0  # the 50 ms burst does not decide it
    assert merged["max_ms"] == 100.0
    assert merged["cpu_s"] == {"api": 0.9, "wrk": 0.3}
    assert merged["cpu_ms_per_request"] == {"api": 1.5, "wrk": 0.5}


def test_alternate_takes_turns_and_merges_each_side(echo_url, busy_pid):
    """Each side's rounds merged under "<side>_c<concurrency>", each with its own options (the echo
    server here answers one connection at a time, so c=1 only)."""
    runs = measure.alternate({"a": {"url": echo_url, "pids": {}}, "b": {"url": echo_url, "pids": {"busy": busy_pid}}},
                             concurrencies=(1,), rounds=2, seconds=2, method="POST", body="{}",
                             authorization="Bearer right")
    assert list(runs) == ["a_c1", "b_c1"]
    assert all(run["rounds"] == 2 and run["requests"] > 0 and run["errors"] == 0 for run in runs.values())
    assert "busy" in runs["b_c1"]["cpu_s"] and "busy" not in runs["a_c1"]["cpu_s"]
