"""The machine a run measured: cores, CPU model, memory, Python and TensorFlow versions."""
import datetime
import importlib.metadata
import os
import platform


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


def describe():
    """A dict describing this machine and the run's date (UTC)."""
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "memory_gib": _memory_gib(),
        "kernel": platform.release(),
        "load_average_at_start": load_average(),
        "python": platform.python_version(),
        "tensorflow": _version("tensorflow-cpu", "tensorflow"),
        "gunicorn": _version("gunicorn"),
        "locust": _version("locust"),
    }
