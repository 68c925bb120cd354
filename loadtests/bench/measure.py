"""One wrk run with the CPU each process under test spent serving it."""
import statistics
import time

from loadtests.bench import arithmetic, procstat, wrk


def idle_rates(pids, seconds=1.0):
    """CPU seconds per second each process tree spends with no load (pollers, timers, metrics)."""
    before = {name: procstat.tree_cpu_seconds(pid) for name, pid in pids.items()}
    time.sleep(seconds)
    return {name: (procstat.tree_cpu_seconds(pid) - before[name]) / seconds for name, pid in pids.items()}


def run(url, *, seconds, pids, connections=1, rows=1, idle=None, **wrk_options):
    """Load `url` and account CPU; `pids` maps a name to a process whose tree is charged.

    `idle` (from idle_rates) is subtracted for the run's wall time, so a process's background
    work is not charged to the requests. Returns a dict: wrk's figures, rows/s, and per process
    the CPU seconds and ms per request.
    """
    idle = idle or {}
    before = {name: procstat.tree_cpu_seconds(pid) for name, pid in pids.items()}
    started = time.monotonic()
    result = wrk.run(url, seconds=seconds, connections=connections, **wrk_options)
    wall = time.monotonic() - started
    after = {name: procstat.tree_cpu_seconds(pid) for name, pid in pids.items()}
    cpu = {name: max(0.0, after[name] - before[name] - idle.get(name, 0.0) * wall) for name in pids}
    cpu["wrk"] = result.cpu_s
    return dict(result.as_dict(), connections=connections, rows=rows,
                rows_per_s=round(result.rps * rows, 1),
                cpu_s={k: round(v, 3) for k, v in cpu.items()},
                idle_cpu_per_s={k: round(v, 4) for k, v in idle.items()},
                cpu_ms_per_request={k: _round(arithmetic.per_request_ms(v, result.requests))
                                    for k, v in cpu.items()})


def _round(value, digits=4):
    return None if value is None else round(value, digits)


def merge(rounds):
    """One run from several short rounds of the same load: counts and CPU add up; latency
    percentiles are the median of the rounds', so a burst of outside work in one round does not
    decide the figure."""
    first = rounds[0]
    requests = sum(r["requests"] for r in rounds)
    seconds = sum(r["seconds"] for r in rounds)
    cpu = {name: sum(r["cpu_s"][name] for r in rounds) for name in first["cpu_s"]}
    merged = dict(first, requests=requests, seconds=round(seconds, 3), errors=sum(r["errors"] for r in rounds),
                  rps=round(requests / seconds, 1) if seconds else 0.0,
                  rows_per_s=round(requests * first["rows"] / seconds, 1) if seconds else 0.0,
                  cpu_s={k: round(v, 3) for k, v in cpu.items()},
                  cpu_ms_per_request={k: _round(arithmetic.per_request_ms(v, requests)) for k, v in cpu.items()},
                  max_ms=max(r["max_ms"] for r in rounds), rounds=len(rounds))
    for key in ("p50_ms", "p90_ms", "p99_ms", "mean_ms"):
        merged[key] = statistics.median(r[key] for r in rounds)
    return merged


def alternate(sides, *, concurrencies, rounds, seconds, **common):
    """Measure each side ({name: run() options, e.g. its url}) at each concurrency in `rounds`
    short rounds, the sides taking turns, so outside work hits them alike; return
    {"<name>_c<concurrency>": the rounds merged by merge()}."""
    found = {}
    for connections in concurrencies:
        for _ in range(rounds):
            for name, options in sides.items():
                found.setdefault(f"{name}_c{connections}", []).append(run(
                    seconds=max(1.0, seconds / rounds), connections=connections, **common, **options))
    return {name: merge(runs) for name, runs in found.items()}
