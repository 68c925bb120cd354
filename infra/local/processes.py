"""Start, track and stop the local stack's background processes.

Each process runs in its own session (so it outlives the `tfship up` that started it and can be
stopped with its children), logs to `<state>/logs/<name>.log`, and is recorded in
`<state>/processes.json` so that `tfship down` and `tfship status` find it.
"""
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass


@dataclass
class Process:
    name: str
    pid: int
    command: list
    log: str
    url: str


class StartError(RuntimeError):
    """A process exited or never became healthy; the message points at its log."""


def _registry_file(settings):
    return settings.state_dir / "processes.json"


def recorded(settings):
    """The processes this state directory started, as recorded."""
    path = _registry_file(settings)
    if not path.exists():
        return []
    return [Process(**entry) for entry in json.loads(path.read_text())]


def _record(settings, processes):
    _registry_file(settings).write_text(json.dumps([asdict(p) for p in processes], indent=2))


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child of this process still answers kill(0); reap it if it is ours.
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def start(settings, name, command, url, env=None):
    """Start `command` in the background and record it; the caller waits for health."""
    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    log_path = settings.logs_dir / f"{name}.log"
    with open(log_path, "ab") as log:
        child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, start_new_session=True,
                                 env=dict(os.environ, **(env or {})))
    process = Process(name=name, pid=child.pid, command=list(command), log=str(log_path), url=url)
    _record(settings, [p for p in recorded(settings) if p.name != name] + [process])
    return process


def wait_until(process, check, timeout, interval=0.2):
    """Poll `check()` until it returns a truthy value; fail fast if the process dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(process.pid):
            raise StartError(f"{process.name} exited during start-up; see {process.log}")
        try:
            result = check()
        except (urllib.error.URLError, ConnectionError, TimeoutError, ValueError):
            result = None
        if result:
            return result
        time.sleep(interval)
    raise StartError(f"{process.name} was not healthy after {timeout:.0f} s; see {process.log}")


def get_json(url, timeout=2.0):
    """GET a URL and decode its JSON body (None for a non-2xx answer)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError:
        return None


def stop(settings, name=None, timeout=10.0):
    """Stop recorded processes (all, or one by name): SIGTERM their groups, then SIGKILL.

    Dependents are signalled first; all of them then shut down at the same time, so stopping
    the stack takes as long as its slowest process, not the sum.
    """
    selected = [p for p in reversed(recorded(settings)) if name is None or p.name == name]
    for process in selected:
        _signal_group(process.pid, signal.SIGTERM)
    if not _wait_gone(selected, timeout):
        for process in selected:
            _signal_group(process.pid, signal.SIGKILL)
        _wait_gone(selected, timeout)
    _record(settings, [p for p in recorded(settings) if p not in selected])
    return selected


def _signal_group(pid, sig):
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _wait_gone(selected, timeout):
    deadline = time.monotonic() + timeout
    while any(alive(p.pid) for p in selected):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True
