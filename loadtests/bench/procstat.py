"""Process accounting from /proc: CPU time and memory of a process and its descendants."""
import os
from pathlib import Path

PROC = Path("/proc")
TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid, proc=PROC):
    """The fields of /proc/<pid>/stat after the command name (which may hold spaces)."""
    text = (proc / str(pid) / "stat").read_text()
    return text[text.rindex(")") + 2:].split()


def cpu_seconds(pid, proc=PROC):
    """User + system time of `pid`, plus that of its children it has already reaped."""
    fields = _stat_fields(pid, proc)
    # After the name: state ppid ... utime(11) stime(12) cutime(13) cstime(14), 0-based.
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / TICKS


def parent_of(pid, proc=PROC):
    return int(_stat_fields(pid, proc)[1])


def descendants(pid, proc=PROC):
    """The live descendants of `pid` (children, their children, ...)."""
    parents = {}
    for entry in proc.iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = parent_of(entry.name, proc)
            except (FileNotFoundError, ProcessLookupError, ValueError, IndexError):
                continue
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        children = sorted(child for child, ppid in parents.items() if ppid == parent)
        found += children
        frontier += children
    return found


def tree_cpu_seconds(pid, proc=PROC):
    """CPU seconds of `pid` and every live descendant (reaped ones count in their parent)."""
    total = 0.0
    for one in [pid, *descendants(pid, proc)]:
        try:
            total += cpu_seconds(one, proc)
        except FileNotFoundError:
            continue
    return total


def memory_kib(pid, proc=PROC):
    """Resident (VmRSS) and proportional (Pss, shared pages split among sharers) memory in KiB."""
    rss = pss = None
    for line in (proc / str(pid) / "status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    try:
        for line in (proc / str(pid) / "smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                pss = int(line.split()[1])
    except (FileNotFoundError, PermissionError):
        pass
    return {"rss_kib": rss, "pss_kib": pss}
