"""wrk's summary line: parsing, errors, and one real run against a local HTTP server. Budget: ~2 s."""
import pytest

from loadtests.bench import wrk
from tests.loadtests.bench.conftest import Echo

LINE = ('TFSHIP_BENCH {"requests": 2000, "duration_us": 2000000, "bytes": 1, "connect_errors": 0, '
        '"read_errors": 1, "write_errors": 0, "status_errors": 2, "timeouts": 3, "p50_us": 1500, '
        '"p90_us": 2500, "p99_us": 9000, "mean_us": 1700.5, "max_us": 20000}')


def test_parse_reads_the_summary_line_among_wrks_own_output():
    result = wrk.parse("Running 2s test @ http://x\n  1 threads and 1 connections\n" + LINE + "\nRequests/sec: 1000\n")
    assert result.requests == 2000 and result.seconds == 2.0 and result.rps == 1000.0
    assert result.errors == 6
    assert (result.p50_ms, result.p90_ms, result.p99_ms, result.max_ms) == (1.5, 2.5, 9.0, 20.0)
    assert result.as_dict()["rps"] == 1000.0


def test_parse_without_a_summary_is_an_error():
    with pytest.raises(wrk.WrkError, match="no summary"):
        wrk.parse("unable to connect to 127.0.0.1:1 Connection refused\n")


def test_a_real_run_sends_the_body_and_header_and_counts_bad_statuses(echo_url):
    Echo.seen.clear()
    good = wrk.run(echo_url, seconds=1, method="POST", body='{"instances": [1]}', authorization="Bearer right")
    assert good.requests > 10 and good.errors == 0 and good.p50_ms > 0 and good.cpu_s >= 0
    assert Echo.seen[0] == ("Bearer right", "application/json", b'{"instances": [1]}')
    bad = wrk.run(echo_url, seconds=1, method="POST", body="{}", authorization="Bearer wrong")
    assert bad.requests > 10 and bad.errors == bad.requests
