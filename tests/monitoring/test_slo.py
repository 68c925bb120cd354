"""The SLO file loads into typed objects for every profile, and bad files fail clearly. Budget: < 1 s."""
import pytest

from monitoring import slo

PROFILES = ("local", "dev", "staging", "prod", "test")


def test_every_profile_is_defined():
    assert slo.profiles() == PROFILES


@pytest.mark.parametrize("name", PROFILES)
def test_profile_loads_typed_objectives_and_gate(name):
    profile = slo.load(name)
    assert profile.name == name
    assert profile.availability.kind == "availability" and profile.latency.kind == "latency"
    for objective in profile.objectives:
        assert 0.9 <= objective.target < 1
        assert objective.min_samples > 0
        assert objective.total_selector.startswith("tfship_http_request")
    assert profile.latency.latency_threshold_seconds == 0.25
    assert 'le="0.25"' in profile.latency.good_selector
    assert 'code=~"5.."' in profile.availability.bad_selector
    gate = profile.gate
    assert 0 < gate.p95_seconds <= gate.p99_seconds
    assert 0 < gate.max_error_ratio < 1 and gate.min_throughput_rps > 0 and gate.min_samples > 0


def test_prod_is_the_strictest_and_test_is_compressed():
    prod, test = slo.load("prod"), slo.load("test")
    assert prod.availability.target == 0.999 and prod.window_seconds == 30 * 86400
    assert prod.availability.error_budget == pytest.approx(0.001)
    assert test.window_seconds == 12 * 3600
    assert all(slo.load(p).availability.target <= prod.availability.target for p in PROFILES)


def test_unknown_profile_names_the_known_ones():
    with pytest.raises(slo.SLOFileError, match="known: local, dev"):
        slo.load("qa")


@pytest.mark.parametrize("text,seconds", [("30d", 2592000), ("1h30m", 5400), ("10s", 10), ("2w", 1209600)])
def test_parse_duration(text, seconds):
    assert slo.parse_duration(text) == seconds


@pytest.mark.parametrize("seconds,text", [(3600, "1h"), (8640, "2h24m"), (90, "1m30s"), (86400, "1d")])
def test_format_duration(seconds, text):
    assert slo.format_duration(seconds) == text


@pytest.mark.parametrize("bad", ["30 days", "", "1.5h"])
def test_bad_duration_is_refused(bad):
    with pytest.raises(slo.SLOFileError):
        slo.parse_duration(bad)


def _edited(tmp_path, old, new):
    text = slo.SLO_FILE.read_text()
    assert old in text
    path = tmp_path / "slo.yaml"
    path.write_text(text.replace(old, new))
    return path


@pytest.mark.parametrize("old,new,message", [
    ('threshold-seconds: "0.25"', 'threshold-seconds: "0.3"', "bucket boundary"),
    ('threshold-seconds: "0.25"', 'threshold-seconds: "1"', "bucket boundary"),
    ('le="0.25"', 'le="0.5"', 'le="0.25"'),
    ("tfship.io/gate-p95-seconds", "tfship.io/gate-p95", "gate-p95-seconds"),
    ("target: 0.999", "target: 1.5", "between 0 and 1"),
    ("indicatorRef: api-prediction-errors", "indicatorRef: nothing", "names no SLI"),
    ("duration: 12h", "duration: half a day", "not a duration"),
])
def test_invalid_file_fails_with_a_clear_message(tmp_path, old, new, message):
    path = _edited(tmp_path, old, new)
    with pytest.raises(slo.SLOFileError, match=message):
        for name in slo.profiles(path):
            slo.load(name, path)


def test_loader_stays_light():
    """loadtests/ and infra/ import the loader: it must not pull in the generators' libraries."""
    import subprocess
    import sys
    code = "import sys, monitoring.slo; print(sorted(m for m in sys.modules if m.startswith(('grafana', 'promql'))))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, check=True)
    assert out.stdout.strip() == "[]"
