"""The machine a run measured: cores, CPU model, memory, Python and TensorFlow versions, and how
fast its cores were while the run went (a fixed CPU workload timed at the start and the end)."""
import concurrent.futures
import datetime
import importlib.metadata
import os
import platform
import time

PROBE_LOOPS = 2_000_000  # ~60 ms of one core here


def _cpu_model(cpuinfo="/proc/cpuinfo"):
    try:
        with open(cpuinfo) as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib(meminfo="/proc/meminfo"):
    with open(meminfo) as handle:
        for line in handle:
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 ** 2, 1)
    return None


def _version(*distributions):
    for name in distributions:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "not installed"


def load_average(loadavg="/proc/loadavg"):
    """The 1-minute load average: above the core count, other work competed with the benchmark."""
    with open(loadavg) as handle:
        return float(handle.read().split()[0])


def _busy(loops=PROBE_LOOPS):
    """Seconds a fixed pure-Python workload takes on one core."""
    started, total = time.perf_counter(), 0
    for i in range(loops):
        total += i * i
    return time.perf_counter() - started


def cpu_probe(repeats=3):
    """How fast the cores are now: ms of a fixed workload on one core, and the speedup when one
    runs on every core at once (about the core count on dedicated cores; less where the virtual
    cores share physical ones or the host is busy). A virtual machine's speed can change within
    a run while its load average stays low; the probe at both ends shows it."""
    one = min(_busy() for _ in range(repeats))
    cores = os.cpu_count() or 1
    with concurrent.futures.ProcessPoolExecutor(cores) as pool:
        together = min(max(pool.map(_busy, [PROBE_LOOPS] * cores)) for _ in range(repeats))
    return {"one_core_ms": round(1000 * one, 1), "parallel_speedup": round(cores * one / together, 2)}


def describe():
    """A dict describing this machine and the run's date (UTC)."""
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": _memory_gib(),
        "kernel": platform.release(),
        "load_average_at_start": load_average(),
        "cpu_probe_at_start": cpu_probe(),
        "python": platform.python_version(),
        "tensorflow": _version("tensorflow-cpu", "tensorflow"),
        "gunicorn": _version("gunicorn"),
        "locust": _version("locust"),
    }
