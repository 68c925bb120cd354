"""The metrics page holds exactly TF Serving's metric set (an allowlist), and its text format.

Time budget: ~2 s on the session's server (monitoring, batching and warmup on).
"""
import re

import pytest

from model.server import monitoring

from .conftest import METRICS_PATH, WARM_MODEL

# Written out from TF Serving's source (servables/tensorflow/util.cc,
# batching/batching_session.cc), not derived from the module under test.
ALLOWLIST = {
    ":tensorflow:serving:request_count": ("counter", {"model_name", "status"}),
    ":tensorflow:serving:request_latency": ("histogram", {"model_name", "API", "entrypoint"}),
    ":tensorflow:serving:runtime_latency": ("histogram", {"model_name", "API", "runtime"}),
    ":tensorflow:serving:request_example_counts": ("histogram", {"model"}),
    ":tensorflow:serving:request_example_count_total": ("counter", {"model"}),
    ":tensorflow:serving:batching_session:queuing_latency": ("histogram", {"thread_pool_name"}),
    ":tensorflow:serving:batching_session:wrapped_run_count": ("counter", set()),
}
LATENCY_LE = [f"{10 * 1.8 ** k:.6g}" for k in range(33)] + ["+Inf"]  # scale 10, x1.8, 33
EXAMPLE_LE = [str(2 ** k) for k in range(15)] + ["+Inf"]
QUEUING_LE = [f"{100 * 1.2 ** k:.6g}" for k in range(52)] + ["+Inf"]  # scale 100, x1.2, 52
BUCKETS = {":tensorflow:serving:request_latency": LATENCY_LE,
           ":tensorflow:serving:runtime_latency": LATENCY_LE,
           ":tensorflow:serving:request_example_counts": EXAMPLE_LE,
           ":tensorflow:serving:batching_session:queuing_latency": QUEUING_LE}
SAMPLE = re.compile(r"^(?P<name>[:\w]+)\{(?P<labels>[^}]*)\} (?P<value>\S+)$")


def parse(page):
    """Return ({metric: type}, [(sample name, {label: value}, value)])."""
    types, samples = {}, []
    for line in page.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            types[name] = kind
            continue
        assert not line.startswith("#"), f"unexpected comment line: {line}"
        match = SAMPLE.match(line)
        assert match, f"not a TF Serving sample line: {line!r}"
        labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match["labels"]))
        samples.append((match["name"], labels, float(match["value"])))
    return types, samples


def metric_of(sample_name, types):
    for suffix in ("_bucket", "_sum", "_count", ""):
        base = sample_name[: len(sample_name) - len(suffix)] if suffix else sample_name
        if sample_name.endswith(suffix) and base in types:
            return base
    raise AssertionError(f"sample {sample_name} belongs to no declared metric")


@pytest.fixture(scope="module")
def page(server):
    """The metrics page after good and bad predictions."""
    for _ in range(3):
        assert server.post(f"/v1/models/{WARM_MODEL}:predict", json={
            "signature_name": "scale", "instances": [[1.0, 2.0, 3.0]]}).status_code == 200
    assert server.post(f"/v1/models/{WARM_MODEL}:predict",
                               json={"instances": [1.0]}).status_code == 400
    assert server.get(f"/v1/models/{WARM_MODEL}").status_code == 200
    response = server.get(METRICS_PATH)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    return response.text


def test_exported_set_is_exactly_the_allowlist(page):
    types, samples = parse(page)
    assert types == {name: kind for name, (kind, _) in ALLOWLIST.items()}
    for name, labels, _ in samples:
        metric = metric_of(name, types)
        expected = set(ALLOWLIST[metric][1])
        if name.endswith("_bucket"):
            expected.add("le")
        assert set(labels) == expected, f"{name} has labels {sorted(labels)}"


def test_page_parses_as_prometheus_text_format(page):
    from prometheus_client.parser import text_string_to_metric_families

    families = {family.name: family for family in text_string_to_metric_families(page)}
    assert families[":tensorflow:serving:request_latency"].type == "histogram"
    assert any(sample.value >= 3 for sample in
               families[":tensorflow:serving:request_count"].samples)


def test_histograms_have_tf_serving_buckets(page):
    types, samples = parse(page)
    seen = set()
    for metric, boundaries in BUCKETS.items():
        series = {}
        for name, labels, _ in samples:
            if name == f"{metric}_bucket":
                key = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
                series.setdefault(key, []).append(labels["le"])
        for les in series.values():
            assert les == boundaries, metric
            seen.add(metric)
    assert {":tensorflow:serving:request_latency", ":tensorflow:serving:runtime_latency",
            ":tensorflow:serving:batching_session:queuing_latency"} <= seen


def test_values_count_the_calls(page):
    _, samples = parse(page)
    values = {(name, tuple(sorted(labels.items()))): value for name, labels, value in samples}
    ok = values[(":tensorflow:serving:request_count",
                 (("model_name", WARM_MODEL), ("status", "OK")))]
    assert ok >= 3
    assert values[(":tensorflow:serving:request_count",
                   (("model_name", WARM_MODEL), ("status", "INVALID_ARGUMENT")))] >= 1
    assert values[(":tensorflow:serving:request_latency_count",
                   (("API", "predict"), ("entrypoint", "REST"), ("model_name", WARM_MODEL)))] == ok
    runtime = values[(":tensorflow:serving:runtime_latency_count",
                      (("API", "Predict"), ("model_name", WARM_MODEL), ("runtime", "TF1")))]
    assert runtime >= 3
    assert values[(":tensorflow:serving:batching_session:queuing_latency_count",
                   (("thread_pool_name", "batch_threads"),))] >= 3
    assert values[(":tensorflow:serving:batching_session:wrapped_run_count", ())] >= 3


def test_histogram_counts_values_strictly_below_each_limit():
    histogram = monitoring.Histogram("/x/h", (10.0, 20.0), "l")
    for value in (5, 10, 19, 25):
        histogram.observe(value, "a")
    assert histogram.lines(":x:h") == [
        ':x:h_bucket{l="a",le="10"} 1', ':x:h_bucket{l="a",le="20"} 3',
        ':x:h_bucket{l="a",le="+Inf"} 4', ':x:h_sum{l="a"} 59', ':x:h_count{l="a"} 4']


def test_label_values_are_escaped():
    counter = monitoring.Counter("/x/c", "model_name")
    counter.inc('a"b\\c')
    assert counter.lines(":x:c") == [':x:c{model_name="a\\"b\\\\c"} 1']


def test_monitoring_config_parsing(tmp_path):
    path = tmp_path / "monitoring.config"
    path.write_text('prometheus_config { enable: true }')
    assert monitoring.read_config(str(path)) == monitoring.DEFAULT_PATH
    path.write_text('prometheus_config { enable: false path: "/m" }')
    assert monitoring.read_config(str(path)) is None
    path.write_text('prometheus_config { enable: true path: "/m" }')
    assert monitoring.read_config(str(path)) == "/m"
