"""CPU and memory accounting from /proc, checked on real processes. Budget: ~2 s."""
import os
import subprocess
import sys
import time

import pytest

from loadtests.bench import procstat

# A parent that starts a CPU-burning child, then burns CPU itself; both until killed.
BURN = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
print(child.pid, flush=True)
while True: pass
"""


@pytest.fixture
def burning_tree():
    parent = subprocess.Popen([sys.executable, "-c", BURN], stdout=subprocess.PIPE, text=True)
    child = int(parent.stdout.readline())
    yield parent.pid, child
    for pid in (child, parent.pid):
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
    parent.wait(timeout=5)
    parent.stdout.close()


def test_the_tree_of_a_process_holds_its_child_and_its_cpu_grows(burning_tree):
    parent, child = burning_tree
    assert procstat.descendants(parent) == [child]
    assert procstat.parent_of(child) == parent
    before = procstat.tree_cpu_seconds(parent)
    time.sleep(0.6)
    spent = procstat.tree_cpu_seconds(parent) - before
    own = procstat.cpu_seconds(parent)
    # Two busy processes: the tree spends CPU (how much depends on outside load), never more than
    # the wall time times the cores.
    assert 0.02 < spent <= 0.7 * (os.cpu_count() or 1) + 0.05
    assert procstat.tree_cpu_seconds(parent) > own


def test_a_reaped_childs_cpu_still_counts_for_its_parent():
    script = ("import subprocess, sys, time; "
              "subprocess.run([sys.executable, '-c', 'import time\\nt=time.process_time()\\n"
              "while time.process_time()-t < 0.3: pass']); print('done', flush=True); time.sleep(30)")
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout.readline().strip() == "done"
        assert procstat.descendants(parent.pid) == []
        assert procstat.tree_cpu_seconds(parent.pid) >= 0.3
    finally:
        parent.kill()
        parent.wait(timeout=5)
        parent.stdout.close()


def test_a_process_name_with_spaces_and_parentheses_parses(tmp_path):
    (tmp_path / "42").mkdir()
    fields = ["S", "7"] + ["0"] * 9 + ["150", "50", "30", "20"] + ["0"] * 30
    (tmp_path / "42" / "stat").write_text("42 (a (weird) name) " + " ".join(fields) + "\n")
    assert procstat.parent_of(42, tmp_path) == 7
    assert procstat.cpu_seconds(42, tmp_path) == pytest.approx(250 / procstat.TICKS)


def test_memory_of_this_process():
    memory = procstat.memory_kib(os.getpid())
    assert memory["rss_kib"] > 1000
    assert memory["pss_kib"] is None or 0 < memory["pss_kib"] <= memory["rss_kib"] + 100
