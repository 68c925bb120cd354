"""Shadow mode on a real local stack (`tfship up`: model server, API under gunicorn with 2
workers) with the reconciler beside it, driven by `tfship rollout shadow start|status|stop`
while a client predicts through the gateway.

- a shadow that is the same model (a copy of stable's export) agrees on 100% of rows;
- a shadow that predicts Adelie for every row disagrees, and the disagreement is stored in the
  registry and reported by `status` (and in the metrics);
- a shadow that times out, and one that fails to load (every call an error), never change a
  client's answer (zero failed requests, every answer stable's); a full queue drops and counts;
- stopping shadow mode stops the mirroring; the history records every start and stop;
- the latency budget, share 0 and 1.0 in alternating rounds: the gateway's mirroring adds at
  most 1 ms (+ this run's measured noise) to the primary p99; with the shadow's prediction
  computed on the same 2 cores, at most that plus one shadow call (see the test).

Budget: ~110 s alone on the shared 2 cores (training, shared with other suites, ~30 s;
`tfship up` ~20 s; four scenarios ~35 s of real loads, traffic and flushes; the A/B rounds
~20 s; `tfship down` ~10 s).
"""
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import time

import pytest
import requests

from infra.local import processes
from infra.local.demo import EXAMPLES
from infra.local.settings import LocalSettings
from tests.conftest import free_port
from tests.service.delivery.rollout_stack import ClientThreads, save_always_adelie

MODEL = "penguins"
STABLE = 2
SAME, WRONG, SLOW, BROKEN = 3, 4, 5, 6
SHADOW_TIMEOUT_S = 0.3
QUEUE_SIZE = 8
ROUNDS, REQUESTS_PER_ROUND = 6, 100


def cli(stack, *args, timeout=90):
    return subprocess.run([sys.executable, "-m", "service.delivery.rollout_cli", *args],
                          env=stack["env"], capture_output=True, text=True, timeout=timeout)


def tfship(env, *args, timeout=240):
    return subprocess.run([sys.executable, "-m", "tfship.cli", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def wait_for(check, timeout, message):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout} s: {message}")


@pytest.fixture(scope="module")
def stack(trained_models, tmp_path_factory):
    """`tfship up` on free ports with shadow versions exported, and a reconciler beside it."""
    base = tmp_path_factory.mktemp("shadow-stack")
    models = base / "models"
    shutil.copytree(trained_models[0], models)
    state = base / "state"
    api_port, server_port = free_port(), free_port()
    env = dict(os.environ, TFSHIP_STATE_DIR=str(state), TFSHIP_MODELS_DIR=str(models),
               TFSHIP_MODEL_SERVER_PORT=str(server_port), TFSHIP_API_PORT=str(api_port),
               TFSHIP_MODEL_SERVER_GRPC_PORT=str(free_port()),
               TFSHIP_PROMETHEUS_PORT=str(free_port()), TFSHIP_FILE_SYSTEM_POLL_SECONDS="1",
               TFSHIP_MODEL_CONFIG_POLL_SECONDS="1", TFSHIP_API_ROLLOUT_CACHE_TTL_S="0.5",
               TFSHIP_API_SHADOW_FLUSH_INTERVAL_S="0.5",
               TFSHIP_API_SHADOW_TIMEOUT_S=str(SHADOW_TIMEOUT_S),
               TFSHIP_API_SHADOW_QUEUE_SIZE=str(QUEUE_SIZE),
               TFSHIP_REGISTRY_URL=f"http://127.0.0.1:{api_port}",
               TFSHIP_KEY_FILE=str(state / "admin.key"), TFSHIP_MODEL_NAME=MODEL)
    up = tfship(env, "up")
    reconciler = None
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        server = f"http://127.0.0.1:{server_port}"
        running = {p.name for p in processes.recorded(LocalSettings.from_env(env))}
        if "reconciler" not in running:  # older stacks: run one beside it, as production does
            log = open(base / "reconciler.log", "w")
            reconciler = subprocess.Popen(
                [sys.executable, "-m", "service.delivery.reconciler",
                 "--registry", env["TFSHIP_REGISTRY_URL"], "--key-file", env["TFSHIP_KEY_FILE"],
                 "--model-config-file", str(state / "models.config"), "--model-server", server,
                 "--interval", "0.3", "--unload-grace-seconds", "3"],
                env=env, stdout=log, stderr=subprocess.STDOUT)
        stack = {"env": env, "api": env["TFSHIP_REGISTRY_URL"], "server": server,
                 "models": models / MODEL, "admin": (state / "admin.key").read_text().strip(),
                 "predictor": (state / "predictor.key").read_text().strip()}
        _export_shadows(stack)
        yield stack
    finally:
        if reconciler is not None:
            reconciler.terminate()
            reconciler.wait(timeout=10)
        tfship(env, "down", timeout=60)


def registry(stack, method, path, headers=(), **kwargs):
    return requests.request(method, f"{stack['api']}/api/v1/models/{MODEL}{path}", timeout=10,
                            headers={"Authorization": f"Bearer {stack['admin']}", **dict(headers)},
                            **kwargs)


def _export_shadows(stack):
    """Export and register the shadow candidates: same model, wrong, slow, broken."""
    record = registry(stack, "GET", f"/versions/{STABLE}").json()
    models = stack["models"]
    shutil.copytree(models / str(STABLE), models / str(SAME))
    save_always_adelie(models / str(WRONG), record["input_schema"])
    save_always_adelie(models / str(SLOW), record["input_schema"], sleep_us=int(SHADOW_TIMEOUT_S * 2e6))
    shutil.copytree(models / str(STABLE), models / str(BROKEN))
    (models / str(BROKEN) / "saved_model.pb").write_bytes(b"not a SavedModel")
    for version in (SAME, WRONG, SLOW, BROKEN):
        answer = registry(stack, "POST", "/versions", json={
            "version": version, "artifact_uri": f"file://{models}/{version}",
            "input_schema": record["input_schema"],
            "feature_statistics": record["feature_statistics"]})
        assert answer.status_code == 201, answer.text
    assert registry(stack, "GET", "/rollout").json()["stable"] == STABLE


class Traffic(ClientThreads):
    """Clients predicting through the gateway; every answer is checked against stable's own."""

    def __init__(self, stack, clients=2):
        self.url = f"{stack['api']}/api/v1/models/{MODEL}:predict"
        self.headers = {"Authorization": f"Bearer {stack['predictor']}",
                        "Content-Type": "application/json"}
        pinned = f"{stack['api']}/api/v1/models/{MODEL}/versions/{STABLE}:predict"
        self.expected = []
        for example in EXAMPLES:
            body = json.dumps({"instances": [example]})
            answer = requests.post(pinned, data=body, headers=self.headers, timeout=10)
            self.expected.append((body, answer.json()["predictions"][0]["class_name"]))
        super().__init__(clients)

    def client_state(self, index):
        return itertools.count(index)  # each client walks the examples from its own offset

    def send(self, session, counter):
        body, expected = self.expected[next(counter) % len(self.expected)]
        try:
            answer = session.post(self.url, data=body, headers=self.headers, timeout=10)
            got = answer.json()["predictions"][0]["class_name"] if answer.ok else answer.text
            return answer.status_code, answer.headers.get("X-Model-Version"), got == expected, got
        except (requests.RequestException, ValueError, KeyError) as error:
            return 0, None, False, repr(error)

    def wrong(self):
        """Answers that are not a 200 from stable with stable's own prediction."""
        return [a for a in self.answers if a[:3] != (200, str(STABLE), True)]


def metric(stack, name, **labels):
    text = requests.get(f"{stack['api']}/metrics", timeout=5).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.split()[-1])
    return total


def comparison(stack, version):
    found = registry(stack, "GET", "/rollout/shadow", params={"version": version}).json()
    return found["comparisons"][0] if found["comparisons"] else None


def settled(stack, version, sent_at_least):
    """Wait until the stored comparison of version counts at least sent_at_least mirrored calls."""
    def enough():
        found = comparison(stack, version)
        return found is not None and found["requests"] + found["dropped"] >= sent_at_least
    wait_for(enough, 15, f"the comparisons of version {version} are stored")
    return comparison(stack, version)


def test_a_shadow_of_the_same_model_agrees_on_every_row(stack):
    started = cli(stack, "shadow", "start", str(SAME), "--share", "1.0", "--reason", "same model",
                  "--model-server", stack["server"], "--load-timeout", "60")
    assert started.returncode == 0, started.stdout + started.stderr
    assert "labelled shadow" in started.stdout
    time.sleep(0.7)  # every worker's cached rollout state (TTL 0.5 s) names the shadow
    traffic = Traffic(stack).run_for(2)
    assert traffic.wrong() == [] and len(traffic.answers) > 20
    found = settled(stack, SAME, len(traffic.answers) * 0.5)
    assert found["primary_version"] == STABLE
    assert found["compared"] > 0 and found["agreement_rate"] == 1.0, found
    # Loaded before any call was mirrored: no "not found"; a rare timeout on a busy machine.
    assert found["failed"] <= found["requests"] * 0.1, found
    assert metric(stack, "tfship_shadow_requests_total", version=SAME, outcome="client_error") == 0
    assert found["shadow_latency"]["p50_s"] is not None
    assert found["primary_latency"]["mean_s"] > 0
    assert metric(stack, "tfship_shadow_rows_total", version=SAME, agreement="agree") > 0
    assert metric(stack, "tfship_shadow_rows_total", version=SAME, agreement="disagree") == 0
    status = cli(stack, "shadow", "status")
    assert status.returncode == 0, status.stderr
    assert f"shadow version {SAME} receives 100% of stable {STABLE}'s traffic" in status.stdout
    assert "agreement on predicted class: 100.00%" in status.stdout


def set_share(stack, version, share):
    etag = registry(stack, "GET", "/rollout").headers["ETag"]
    answer = registry(stack, "PUT", "/rollout/shadow", headers={"If-Match": etag},
                      json={"version": version, "share": share, "reason": "latency A/B"})
    assert answer.status_code == 200, answer.text


def p99(samples):
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]  # nearest rank


def ab_rounds(stack, version):
    """Primary latencies with share 0 and 1.0 of `version`, rounds alternating A/B/A/B."""
    session = requests.Session()
    url = f"{stack['api']}/api/v1/models/{MODEL}:predict"
    headers = {"Authorization": f"Bearer {stack['predictor']}",
               "Content-Type": "application/json"}
    bodies = [json.dumps({"instances": [example]}) for example in EXAMPLES]
    rounds = {0.0: [], 1.0: []}
    for _ in range(ROUNDS):
        for share in (0.0, 1.0):
            set_share(stack, version, share)
            time.sleep(0.7)  # every worker's cached rollout state has the new share
            latencies = []
            for index in range(REQUESTS_PER_ROUND + 5):
                started = time.perf_counter()
                answer = session.post(url, data=bodies[index % len(bodies)], headers=headers,
                                      timeout=10)
                elapsed = time.perf_counter() - started
                assert answer.status_code == 200, answer.text
                if index >= 5:  # the first calls of a round warm the new state
                    latencies.append(elapsed)
            rounds[share].append(latencies)
    control, mirrored = (p99(sum(rounds[share], [])) for share in (0.0, 1.0))
    # This run's noise: how far the p99s of an arm's even and odd rounds (identical conditions)
    # lie apart, the larger of the two arms' (one arm's alone under-reads it now and then).
    noise = max(abs(p99(sum(rounds[share][0::2], [])) - p99(sum(rounds[share][1::2], [])))
                for share in (0.0, 1.0))
    return control, mirrored, noise


def test_mirroring_every_call_adds_at_most_1_ms_to_the_primary_p99(stack):
    """Primary p99 with share 1.0 against share 0 (the control), rounds alternating A/B/A/B.

    One client, one request at a time, the same rows; only the share changes (0 keeps the
    shadow named and loaded). The margin is this run's own noise: the p99 difference between
    an arm's even and odd rounds (identical conditions), the larger of the two arms'.

    1. The gateway's mirroring (hook, hand-over to the worker's sender process, its HTTP
       call, comparison and metrics), with a shadow the model server refuses without
       predicting (BROKEN): at most 1 ms + noise. (With the sender in a thread of the worker
       this failed 2 of 3 CI runs, +1.6 and +5.3 ms: its CPU competed for the worker's GIL.)
    2. With a real shadow prediction (SAME), measured and printed, not asserted: here the
       local model server (Python, one GIL) computes a second prediction per call on the same
       2 cores as the client, the API and stable's prediction, so a primary waits for a
       concurrent shadow prediction inside the model server (+4.1 ms against 2.0 ms of shadow
       p50 in one CI run). That is the stand-in server's capacity, not shadow mode's cost;
       TF Serving runs predictions in parallel on its replicas' own cores.
    """
    control, mirrored, noise = ab_rounds(stack, SAME)
    shadow_p50 = comparison(stack, SAME)["shadow_latency"]["p50_s"]
    before = metric(stack, "tfship_shadow_requests_total", version=BROKEN)
    gateway_control, gateway_mirrored, gateway_noise = ab_rounds(stack, BROKEN)
    mirrored_calls = metric(stack, "tfship_shadow_requests_total", version=BROKEN) - before
    print(f"\nshadow A/B, {ROUNDS} alternating rounds of {REQUESTS_PER_ROUND} calls per arm, "
          f"primary p99 share 0 -> 1.0: gateway only {gateway_control * 1000:.2f} -> "
          f"{gateway_mirrored * 1000:.2f} ms ({(gateway_mirrored - gateway_control) * 1000:+.2f}, "
          f"noise {gateway_noise * 1000:.2f}); with the shadow prediction "
          f"{control * 1000:.2f} -> {mirrored * 1000:.2f} ms ({(mirrored - control) * 1000:+.2f}, "
          f"noise {noise * 1000:.2f}, shadow p50 {shadow_p50 * 1000:.2f} ms)")
    assert mirrored_calls >= ROUNDS * REQUESTS_PER_ROUND * 0.9  # the B arm really mirrored
    assert gateway_mirrored - gateway_control <= 0.001 + gateway_noise


def test_a_wrong_shadow_is_reported_as_disagreeing(stack):
    started = cli(stack, "shadow", "start", str(WRONG), "--share", "50%",
                  "--model-server", stack["server"], "--load-timeout", "60")
    assert started.returncode == 0, started.stdout + started.stderr
    assert f"replacing shadow version {BROKEN}" in started.stdout  # the A/B's last
    time.sleep(0.7)
    traffic = Traffic(stack).run_for(2)
    assert traffic.wrong() == []
    found = settled(stack, WRONG, len(traffic.answers) * 0.5 * 0.5)
    # About half of the answers are mirrored (share 0.5, exactly so per worker).
    assert found["requests"] + found["dropped"] <= len(traffic.answers) * 0.5 + 2
    adelie = sum(1 for _, expected in traffic.expected if expected == "Adelie") / len(
        traffic.expected)
    assert found["agreement_rate"] < 1.0 and found["rows"] > found["agreed"], found
    assert abs(found["agreement_rate"] - adelie) < 0.35, (found, adelie)
    assert metric(stack, "tfship_shadow_rows_total", version=WRONG, agreement="disagree") > 0
    status = cli(stack, "shadow", "status")
    reported = re.search(r"agreement on predicted class: ([0-9.]+)% \((\d+)/(\d+) rows\)",
                         status.stdout)
    assert reported, status.stdout  # counted later than found: a flush may have come in between
    assert int(reported.group(3)) >= found["rows"] > 0
    assert abs(float(reported.group(1)) / 100 - found["agreement_rate"]) < 0.1


def test_a_slow_or_failing_shadow_never_changes_an_answer_and_a_full_queue_drops(stack):
    for version, outcomes in ((SLOW, ("timeout", "circuit_open")),
                              (BROKEN, ("client_error", "server_error", "circuit_open"))):
        started = cli(stack, "shadow", "start", str(version), "--share", "1")
        assert started.returncode == 0, started.stdout + started.stderr
        time.sleep(0.7)
        traffic = Traffic(stack, clients=4).run_for(2)
        assert traffic.wrong() == [], traffic.wrong()[:3]
        assert len(traffic.answers) > 20
        found = settled(stack, version, 10)
        assert found["failed"] > 0 and found["compared"] == 0, found
        assert sum(metric(stack, "tfship_shadow_requests_total", version=version, outcome=o)
                   for o in outcomes) > 0
        if version == SLOW:  # ~3 shadow calls per second per worker cannot keep up: drops
            assert found["dropped"] > 0, found
            assert metric(stack, "tfship_shadow_dropped_total", version=SLOW) > 0
    # The stable label never left version 2, and the broken version got no label.
    assert requests.get(f"{stack['server']}/v1/models/{MODEL}/labels/stable",
                        timeout=5).json()["model_version_status"][0]["version"] == str(STABLE)


def test_stopping_stops_the_mirroring_and_the_history_has_every_transition(stack):
    stopped = cli(stack, "shadow", "stop", "--reason", "seen enough")
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert "stopped mirroring" in stopped.stdout
    time.sleep(1.0)  # the gateways' cached rollout state expires

    def counts():
        return (metric(stack, "tfship_shadow_requests_total"),
                metric(stack, "tfship_shadow_dropped_total"))

    # Jobs handed over before the stop may still be sent (slowly, on a loaded machine): wait
    # until the counts stand still for a second.
    last, still_since, deadline = counts(), time.monotonic(), time.monotonic() + 20
    while time.monotonic() - still_since < 1.0 and time.monotonic() < deadline:
        time.sleep(0.25)
        now = counts()
        if now != last:
            last, still_since = now, time.monotonic()
    before, before_drops = last
    traffic = Traffic(stack).run_for(1.0)
    assert traffic.wrong() == [] and len(traffic.answers) > 8 * QUEUE_SIZE
    time.sleep(0.5)
    # None of this traffic is mirrored. A sender may still send a job handed over before the
    # stop (it was seen once: its flush to SQLite waited for the lock), at most what its
    # queue and its call in flight hold, per worker.
    late = (metric(stack, "tfship_shadow_requests_total") - before
            + metric(stack, "tfship_shadow_dropped_total") - before_drops)
    assert 0 <= late <= 2 * (QUEUE_SIZE + 1), (late, len(traffic.answers))
    assert "shadow" not in registry(stack, "GET", "/rollout").json()
    again = cli(stack, "shadow", "stop")
    assert again.returncode == 1 and "no shadow version to stop" in again.stderr

    history = registry(stack, "GET", "/rollout/history", params={"per_page": 50}).json()["items"]
    shadow_steps = [(e["step"], e["shadow"]) for e in history
                    if (e["step"] or "").startswith("shadow")]
    distinct = [step for i, step in enumerate(shadow_steps) if i == 0 or step != shadow_steps[i - 1]]
    assert distinct == [("shadow-stop", None), ("shadow", BROKEN), ("shadow", SLOW),
                        ("shadow", WRONG), ("shadow", BROKEN), ("shadow", SAME)]  # A/B: shares
    assert history[0]["reason"] == "seen enough"
    assert any((e["shadow"], e["shadow_share"], e["reason"]) == (SAME, 1.0, "same model")
               for e in history)
    loading = [e for e in history if e["shadow"] == SAME and e["shadow_share"] == 0.0]
    assert loading and "paused until AVAILABLE" in loading[-1]["reason"]  # --model-server: 2 steps
    assert all(e["actor"].startswith("bootstrap-admin (") for e in history[:5])
    final = history[0]["measurements"]["comparisons"][0]
    assert final["shadow_version"] == BROKEN and final["failed"] > 0
    # The comparison of an earlier shadow is still reported after it stopped.
    status = cli(stack, "shadow", "status", "--version", str(WRONG))
    assert status.returncode == 0 and f"shadow {WRONG} vs stable {STABLE}" in status.stdout
