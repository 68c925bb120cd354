"""Starting, recording and stopping the local stack's background processes. Budget: ~3 s."""
import sys
import time

import pytest

from infra.local import processes
from infra.local.settings import LocalSettings

IGNORES_SIGTERM = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
SLOW_TO_STOP = ("import signal, sys, time\n"
                "signal.signal(signal.SIGTERM, lambda *_: (time.sleep(1), sys.exit(0)))\n"
                "time.sleep(60)")

# processes.start leaves its child running on purpose (it outlives `tfship up`), so Popen's
# finalizer warns that the child still runs when the object goes away.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Exception ignored in.*Popen.__del__:pytest.PytestUnraisableExceptionWarning")


def started(settings, name, code):
    process = processes.start(settings, name, [sys.executable, "-c", code], url="")
    time.sleep(0.3)  # let it install its signal handler
    return process


def test_stop_stops_every_process_at_once_and_forgets_them(tmp_path):
    settings = LocalSettings.from_env({"TFSHIP_STATE_DIR": str(tmp_path)})
    first, second = (started(settings, name, SLOW_TO_STOP) for name in ("first", "second"))
    assert [p.name for p in processes.recorded(settings)] == ["first", "second"]
    begun = time.monotonic()
    stopped = processes.stop(settings)
    # Both take 1 s to shut down; they do so side by side, not one after the other.
    assert time.monotonic() - begun < 1.9
    assert [p.name for p in stopped] == ["second", "first"]  # dependents first
    assert not processes.alive(first.pid) and not processes.alive(second.pid)
    assert processes.recorded(settings) == []


def test_stop_kills_what_ignores_sigterm_and_leaves_the_others(tmp_path):
    settings = LocalSettings.from_env({"TFSHIP_STATE_DIR": str(tmp_path)})
    keep = started(settings, "keep", "import time; time.sleep(60)")
    stubborn = started(settings, "stubborn", IGNORES_SIGTERM)
    assert [p.name for p in processes.stop(settings, "stubborn", timeout=0.5)] == ["stubborn"]
    assert not processes.alive(stubborn.pid)
    assert processes.alive(keep.pid) and [p.name for p in processes.recorded(settings)] == ["keep"]
    processes.stop(settings)
    assert not processes.alive(keep.pid)
