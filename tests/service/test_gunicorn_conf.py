"""service/gunicorn.conf.py's hooks, loaded as gunicorn loads the file. Budget: < 2 s."""
import subprocess
import sys

FREEZES_BEFORE_FORK = """
import gc, runpy
hooks = runpy.run_path("service/gunicorn.conf.py")
gc.unfreeze()
hooks["pre_fork"](None, None)
print(gc.get_freeze_count())
"""


def test_pre_fork_freezes_the_preloaded_app_out_of_the_workers_collections():
    """Each worker's full collections must skip the master's objects (50-80 ms pauses otherwise)."""
    done = subprocess.run([sys.executable, "-c", FREEZES_BEFORE_FORK], capture_output=True, text=True,
                          timeout=60, check=True)
    assert int(done.stdout.split()[-1]) > 10_000, done.stdout
