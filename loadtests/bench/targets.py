"""The issue's targets, one source of truth, and their verdicts against measured figures."""
import dataclasses


@dataclasses.dataclass(frozen=True)
class Target:
    key: str           # the figure's key in results["figures"]
    figure: str        # what is measured, for the report
    limit: float
    kind: str          # "max" (at most) or "min" (at least)
    unit: str

    def verdict(self, value):
        if value is None:
            return "not measured"
        met = value <= self.limit if self.kind == "max" else value >= self.limit
        return "met" if met else "not met"

    @property
    def text(self):
        return f"{'≤' if self.kind == 'max' else '≥'} {self.limit:g}{self.unit}"


TARGETS = (
    Target("gateway_extra_p50_ms", "Gateway latency: extra p50 at c=1", 1.0, "max", " ms"),
    Target("gateway_extra_p99_ms", "Gateway latency: extra p99 at c=1", 2.0, "max", " ms"),
    Target("gateway_cpu_ms_per_request", "Gateway CPU per request (API master + workers)", 1.0,
           "max", " ms"),
    Target("gateway_throughput_ratio_c8", "Gateway throughput vs direct at c=8", 0.65, "min", "×"),
    Target("model_server_efficiency_b128", "Model server rows/s over HTTP vs in-process, batch 128",
           0.5, "min", "×"),
    Target("batching_throughput_ratio_c32", "Batching on vs off, batch-1 requests at c=32", 1.3,
           "min", "×"),
    Target("batching_p50_ratio_c1", "Batching on vs off, p50 at c=1 (no regression)", 1.1, "max",
           "×"),
    Target("api_worker_rss_mib", "API worker RSS (largest worker)", 80, "max", " MiB"),
    Target("api_time_to_ready_s", "API time to ready", 2.0, "max", " s"),
    Target("stack_time_to_healthy_s", "Local stack time to healthy", 20.0, "max", " s"),
    Target("registry_sqlite_p99_ms", "Registry list p99, SQLite, 100k models", 10.0, "max", " ms"),
    Target("registry_postgres_p99_ms", "Registry list p99, PostgreSQL, 100k models", 10.0, "max",
           " ms"),
)


def verdicts(figures):
    """[(target, value, verdict)] for every target, in the issue's order."""
    return [(t, figures.get(t.key), t.verdict(figures.get(t.key))) for t in TARGETS]


def by_key(key):
    """The target of figure `key`."""
    return next(t for t in TARGETS if t.key == key)
