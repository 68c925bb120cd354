"""Exactly TF Serving's Prometheus metrics: names, labels, buckets and exposition text.

Names, label names and bucket boundaries come from TF Serving's source
(servables/tensorflow/util.cc, batching/batching_session.cc); the text follows its
util/prometheus_exporter.cc: `# TYPE` lines only, metrics ordered by their TF path, bucket
limits printed with six significant digits, and TF's histogram rule that a bucket counts the
values strictly below its limit. prometheus_client cannot print counters without `_total`,
so the few series are kept here under a lock.
"""
import bisect
import threading

from model.server import protos

DEFAULT_PATH = "/monitoring/prometheus/metrics"

# Scale 10, growth 1.8, 33 buckets (~20 minutes), microseconds.
LATENCY_BUCKETS = tuple(10 * 1.8 ** k for k in range(33))
# 1, 2, 4, ... 16384 examples.
EXAMPLE_BUCKETS = tuple(float(2 ** k) for k in range(15))
# Scale 100, growth 1.2, 52 buckets (~1 second), microseconds.
QUEUING_BUCKETS = tuple(100 * 1.2 ** k for k in range(52))

ENTRYPOINT_REST = "REST"
RUNTIME_TF1 = "TF1"


def _number(value):
    """Return `value` as absl::StrCat prints a double (six significant digits)."""
    return f"{value:.6g}"


def _labels(names, values):
    escaped = (v.replace("\\", "\\\\").replace('"', '\\"') for v in values)
    return ",".join(f'{name}="{value}"' for name, value in zip(names, escaped))


class Counter:
    """A monotonic count per label-value tuple."""

    kind = "counter"

    def __init__(self, path, *label_names):
        self.path, self.label_names = path, label_names
        self._cells = {}

    def inc(self, *values, amount=1):
        self._cells[values] = self._cells.get(values, 0) + amount

    def lines(self, name):
        return [f"{name}{{{_labels(self.label_names, values)}}} {int(count)}"
                for values, count in self._cells.items()]


class Histogram:
    """Bucketed observations per label-value tuple, TF's way (value < limit)."""

    kind = "histogram"

    def __init__(self, path, limits, *label_names):
        self.path, self.limits, self.label_names = path, limits, label_names
        self._cells = {}

    def observe(self, value, *values):
        counts, total = self._cells.get(values, ([0] * (len(self.limits) + 1), 0.0))
        counts[bisect.bisect_right(self.limits, value)] += 1
        self._cells[values] = (counts, total + value)

    def lines(self, name):
        out = []
        for values, (counts, total) in self._cells.items():
            labels = _labels(self.label_names, values)
            prefix = f"{name}_bucket{{{labels + ',' if labels else ''}"
            cumulative = 0
            for index, count in enumerate(counts):
                cumulative += count
                limit = _number(self.limits[index]) if index < len(self.limits) else "+Inf"
                out.append(f'{prefix}le="{limit}"}} {cumulative}')
            out.append(f"{name}_sum{{{labels}}} {_number(total)}")
            out.append(f"{name}_count{{{labels}}} {cumulative}")
        return out


class ServingMetrics:
    """TF Serving's metric set, recorded by the REST layer, the runtime and the batcher."""

    def __init__(self):
        self._lock = threading.Lock()
        self.request_count = Counter("/tensorflow/serving/request_count", "model_name", "status")
        self.request_latency = Histogram("/tensorflow/serving/request_latency", LATENCY_BUCKETS,
                                         "model_name", "API", "entrypoint")
        self.runtime_latency = Histogram("/tensorflow/serving/runtime_latency", LATENCY_BUCKETS,
                                         "model_name", "API", "runtime")
        self.example_counts = Histogram("/tensorflow/serving/request_example_counts",
                                        EXAMPLE_BUCKETS, "model")
        self.example_count_total = Counter("/tensorflow/serving/request_example_count_total",
                                           "model")
        self.queuing_latency = Histogram("/tensorflow/serving/batching_session/queuing_latency",
                                         QUEUING_BUCKETS, "thread_pool_name")
        self.wrapped_run_count = Counter("/tensorflow/serving/batching_session/wrapped_run_count")
        self._metrics = sorted(
            [self.request_count, self.request_latency, self.runtime_latency,
             self.example_counts, self.example_count_total, self.queuing_latency,
             self.wrapped_run_count], key=lambda metric: metric.path)

    def record(self, model_name, api, error_code, latency_us, example_count=0):
        """Count one REST prediction call; its latency is kept for successful calls only."""
        with self._lock:
            self.request_count.inc(model_name, error_code)
            if error_code == "OK":
                self.request_latency.observe(int(latency_us), model_name, api,
                                             ENTRYPOINT_REST)

    def record_examples(self, model_name, count):
        """Count the tf.Examples of a classify/regress call (predict records none)."""
        with self._lock:
            self.example_counts.observe(count, model_name)
            self.example_count_total.inc(model_name, amount=count)

    def record_runtime(self, model_name, api, latency_us):
        with self._lock:
            self.runtime_latency.observe(int(latency_us), model_name, api, RUNTIME_TF1)

    def record_queuing(self, thread_pool_name, latency_us):
        with self._lock:
            self.queuing_latency.observe(int(latency_us), thread_pool_name)

    def record_wrapped_run(self):
        with self._lock:
            self.wrapped_run_count.inc()

    def exposition(self):
        """Return the metrics page as TF Serving's Prometheus exporter writes it."""
        lines = []
        with self._lock:
            for metric in self._metrics:
                name = metric.path.replace("/", ":")
                lines.append(f"# TYPE {name} {metric.kind}")
                lines.extend(metric.lines(name))
        return ("\n".join(lines) + "\n").encode("utf-8")


def read_config(path):
    """Return the Prometheus path a --monitoring_config_file enables, or None."""
    config = protos.read_monitoring_config(path)
    prometheus = config.prometheus_config
    if not prometheus.enable:
        return None
    return prometheus.path or DEFAULT_PATH
