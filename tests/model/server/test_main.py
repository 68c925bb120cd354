"""The server process: live version and config changes, --model_name mode, start errors.

Time budget: ~8 s (the live tests wait a few 1 s poll intervals on the session's server; the
--model_name process serves an empty base path, so it never imports TensorFlow).
"""
import concurrent.futures
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np

from .conftest import (LIVE_MODEL, POLL_SECONDS, WARM_MODEL, live_config, start_server,
                       stop_server)
from .fixture_models import build_module, export
from tests.conftest import free_port

X = {"signature_name": "scale", "instances": [[1.0, 2.0, 3.0]]}


def factor(server, path):
    """Return the factor of the version `path` resolves to (y = x * factor)."""
    response = server.post(f"/v1/models/{LIVE_MODEL}{path}:predict", json=X)
    assert response.status_code == 200, response.text
    return response.json()["predictions"][0][0]


def versions(server):
    body = server.get(f"/v1/models/{LIVE_MODEL}").json()
    return {s["version"]: s["state"] for s in body["model_version_status"]}


def test_version_exported_while_running_is_served_without_restart(server, model_bases):
    base = model_bases[LIVE_MODEL]
    staging = os.path.join(base, ".tmp-export-3")
    export(build_module(30.0), staging)  # an export in progress must stay invisible
    assert "3" not in versions(server)
    os.rename(staging, os.path.join(base, "3"))
    server.wait_until(lambda: versions(server).get("3") == "AVAILABLE",
                      timeout=10 * POLL_SECONDS + 10, what="version 3 to load")
    assert factor(server, "") == 30.0
    assert factor(server, "/versions/3") == 30.0
    assert not any(v.startswith(".") for v in versions(server))


def test_config_edit_moves_a_label_and_requests_see_one_snapshot(server, model_bases,
                                                                 warm_base):
    assert factor(server, "/labels/stable") == 1.0

    def hammer():
        return [factor(server, "/labels/stable") for _ in range(30)]

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        running = [pool.submit(hammer) for _ in range(4)]
        with open(server.config_path, "w") as handle:
            handle.write(live_config(model_bases, warm_base, {"stable": 2}))
        server.wait_until(lambda: factor(server, "/labels/stable") == 2.0,
                          timeout=10 * POLL_SECONDS + 10, what="stable to move to 2")
        seen = {value for future in running for value in future.result(timeout=60)}
    # Every request answered from one version or the other, never an error in between.
    assert seen <= {1.0, 2.0}


def test_config_labelling_an_unloaded_version_is_refused(server, model_bases, warm_base):
    before = factor(server, "/labels/stable")
    with open(server.config_path, "w") as handle:
        handle.write(live_config(model_bases, warm_base, {"stable": 9}))
    message = "Request to assign label to version 9 of model live"
    server.wait_until(lambda: message in server.log(), timeout=10 * POLL_SECONDS + 10,
                      what="the refusal in the log")
    assert factor(server, "/labels/stable") == before
    with open(server.config_path, "w") as handle:
        handle.write(live_config(model_bases, warm_base, {"stable": 2}))


def test_latest_policy_serves_the_newest_version(server, loaded):
    status = server.get(f"/v1/models/{WARM_MODEL}").json()["model_version_status"]
    assert [(s["version"], s["state"]) for s in status] == [("1", "AVAILABLE")]
    x = [[1.0, 2.0, 3.0]]
    response = server.post(f"/v1/models/{WARM_MODEL}:predict",
                                   json={"signature_name": "scale", "inputs": x})
    expected = loaded[("multi", 1)].signatures["scale"](x=np.array(x, np.float32))["y"].numpy()
    assert np.allclose(response.json()["outputs"], expected)


def test_the_parallelism_flags_size_tensorflows_thread_pools(server):
    # TensorFlow takes them only before its first op; a late call would raise and stop the start.
    with open(server.log_path) as log:
        assert "TensorFlow threads: intra-op 1, inter-op 2" in log.read()


def test_empty_base_path_serves_404_then_sigterm_stops_cleanly(tmp_path):
    (tmp_path / "empty").mkdir()
    running = start_server([f"--model_name=solo", f"--model_base_path={tmp_path / 'empty'}",
                            "--file_system_poll_wait_seconds=0"],
                           str(tmp_path / "solo.log"), "solo", ready_status=404)
    try:
        assert running.get("/v1/models/solo").json() == {
            "error": "Could not find any versions of model solo"}
        # Without --monitoring_config_file the metrics path is a 404, as in TF Serving.
        assert running.get("/monitoring/prometheus/metrics").status_code == 404
        response = running.post("/v1/models/solo:predict", json={"instances": [1.0]})
        assert response.status_code == 404
        assert response.json() == {"error": "Servable not found for request: Latest(solo)"}
    finally:
        stop_server(running)
    assert running.process.returncode == 0
    assert "Shutting down" in running.log()


def run_module(*argv):
    return subprocess.run([sys.executable, "-m", "model.server", *argv], capture_output=True,
                          text=True, timeout=60)


def test_bad_command_line_exits_non_zero_with_the_reason():
    result = run_module("--rest_api_port=1", "--model_base_path=/m", "--bogus=1")
    assert result.returncode == 1
    assert "Unknown command line flag 'bogus'" in result.stderr


def test_unreadable_config_file_stops_the_start(tmp_path):
    result = run_module("--rest_api_port=1", f"--model_config_file={tmp_path / 'none'}")
    assert result.returncode == 1
    assert "Failed to start server" in result.stderr


def _solo(tmp_path, name="solo"):
    (tmp_path / "empty").mkdir(exist_ok=True)
    return start_server([f"--model_name={name}", f"--model_base_path={tmp_path / 'empty'}",
                         "--file_system_poll_wait_seconds=0"], str(tmp_path / f"{name}.log"), name,
                        ready_status=404)


def _worker_pid(running):
    """The pid of the supervisor's one worker process (granian's), read from its log line."""
    match = re.search(r"Spawning worker-1 with PID: (\d+)", running.log())
    assert match, running.log()
    return int(match.group(1))


def _gone(pid, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def test_a_second_server_on_a_taken_port_refuses_to_start(tmp_path):
    """Two servers must never share a port (granian's worker binds with SO_REUSEPORT)."""
    running = _solo(tmp_path)
    try:
        port = running.url.rsplit(":", 1)[1]
        result = run_module(f"--rest_api_port={port}", "--model_name=other",
                            f"--model_base_path={tmp_path / 'empty'}")
        assert result.returncode == 1
        assert f"the REST port {port} is taken" in result.stderr
        assert running.get("/v1/models/solo").status_code == 404  # still the first one answering
    finally:
        stop_server(running)


def test_a_killed_supervisor_takes_its_worker_with_it(tmp_path):
    """SIGKILL leaves no orphan worker serving the port (the reliability tests kill the server this way)."""
    running = _solo(tmp_path)
    worker = _worker_pid(running)
    try:
        assert os.getpgid(worker) == worker  # its own group: a group SIGTERM reaches the supervisor only
        running.process.kill()
        running.process.wait(timeout=10)
        assert _gone(worker), "the worker outlived its supervisor"
    finally:
        stop_server(running)


def test_sigterm_to_the_process_group_stops_cleanly(tmp_path):
    """What tfship down and Ctrl-C do: the supervisor stops its worker; exit 0, no crash reported."""
    (tmp_path / "empty").mkdir()
    port, log = free_port(), tmp_path / "group.log"
    with log.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "model.server", f"--rest_api_port={port}",
                                    "--model_name=solo", f"--model_base_path={tmp_path / 'empty'}"],
                                   stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while "Started worker-1" not in log.read_text() and time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()
            time.sleep(0.1)
        worker = int(re.search(r"Spawning worker-1 with PID: (\d+)", log.read_text()).group(1))
        os.killpg(process.pid, signal.SIGTERM)
        assert process.wait(timeout=30) == 0, log.read_text()
        assert _gone(worker)
        assert "Unexpected exit" not in log.read_text() and "Shutting down" in log.read_text()
        assert "seems quite high" not in log.read_text()  # TF Serving's thread count is intended
    finally:
        if process.poll() is None:
            process.kill()


def test_a_crashed_worker_ends_the_server_with_an_error(tmp_path):
    """The worker killed alone (the OOM killer picks the process holding TensorFlow): the
    supervisor does not linger without it. It exits 1, so whoever supervises the server (the
    local stack's status, Kubernetes) sees it down, as with TF Serving's one process."""
    running = _solo(tmp_path)
    try:
        os.kill(_worker_pid(running), signal.SIGKILL)
        assert running.process.wait(timeout=30) == 1
        assert "Unexpected exit from worker-1" in running.log()
    finally:
        stop_server(running)
