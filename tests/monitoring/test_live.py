"""Live proof: a real Prometheus scrapes the real API and model server under real traffic.

Every recording rule and dashboard query returns data, no alert but the Watchdog fires while
healthy, every metric name used exists in what the processes export (and the reverse), and each
injected fault fires its named alert within the compressed `test` profile's windows.

Budget: ~80 s (training ~25 s, model load ~10 s, healthy phase ~15 s, two faults ~30 s). Marked slow.
"""
import json
import os
import signal
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import pytest
import requests
import yaml

from monitoring import lint, metrics, prometheus_config
from tests.monitoring.conftest import GENERATED, free_port, tool, wait_ready

pytestmark = pytest.mark.slow
TFSHIP = [sys.executable, "-m", "tfship.cli"]
MODEL = "penguins"
ROW = {"island": "Dream", "sex": "female", "bill_length_mm": 46.5, "bill_depth_mm": 17.9,
       "flipper_length_mm": 192.0, "body_mass_g": 3500.0}
OUT_OF_RANGE_ROW = {**ROW, "body_mass_g": 100000.0}


def _start(command, log, env=None):
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _stop_group(process):
    """Stop a process this test started, with the children it spawned (gunicorn workers)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


def _wait(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class Traffic(threading.Thread):
    """Prediction requests as fast as one thread goes (~10-30 rps here), and a readiness probe every second."""

    def __init__(self, api, key):
        super().__init__(daemon=True)
        self.api, self.headers, self.row = api, {"Authorization": f"Bearer {key}"}, ROW
        self.codes, self.halt = {}, threading.Event()

    def run(self):
        session, probed = requests.Session(), 0.0
        while not self.halt.is_set():
            try:
                code = session.post(f"{self.api}/api/v1/models/{MODEL}:predict", json={"instances": [self.row]},
                                    headers=self.headers, timeout=5).status_code
            except requests.RequestException:
                code = "error"
            self.codes[code] = self.codes.get(code, 0) + 1
            if time.monotonic() - probed >= 1:
                probed = time.monotonic()
                try:
                    session.get(f"{self.api}/readyz", timeout=5)  # what Kubernetes' probe does
                except requests.RequestException:
                    pass
            self.halt.wait(0.02)


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    root = tmp_path_factory.mktemp("live")
    logs, started = root / "logs", []
    logs.mkdir()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "KERAS_HOME": str(root / "keras"),
           "TFSHIP_API_DATABASE_URL": f"sqlite:///{root / 'api.db'}", "TFSHIP_API_DATA_DIR": str(root / "api"),
           "TFSHIP_API_KEY_SECRET": "live-test-key-secret-0123456789abcdef",
           "PROMETHEUS_MULTIPROC_DIR": str(root / "multiproc")}
    (root / "multiproc").mkdir()
    ms_port, api_port, prom_port = free_port(), free_port(), free_port()
    env["TFSHIP_API_MODEL_SERVER_URL"] = f"http://127.0.0.1:{ms_port}"
    ns = SimpleNamespace(root=root, api=f"http://127.0.0.1:{api_port}", prometheus=f"http://127.0.0.1:{prom_port}")
    handles = []

    def log(name):
        handle = (logs / f"{name}.log").open("w")
        handles.append(handle)
        return handle

    try:
        training = _start(TFSHIP + ["train", "--models-dir", str(root / "models"), "--model-name", MODEL,
                                    "--epochs", "5"], log("train"), env)
        started.append(training)
        # While TensorFlow trains: the database, two keys, Prometheus.
        subprocess.run(TFSHIP + ["db", "upgrade"], env=env, check=True, timeout=60, capture_output=True)
        keys = {role: subprocess.run(TFSHIP + ["keys", "create", "--role", role, "--name", "live-test"], env=env,
                                     check=True, timeout=60, capture_output=True, text=True).stdout.strip()
                for role in ("admin", "predictor")}
        config = prometheus_config.config(f"127.0.0.1:{api_port}", f"127.0.0.1:{ms_port}", "test", "1s")
        (root / "prometheus.yml").write_text(yaml.safe_dump(config))
        prometheus = _start([tool("prometheus"), f"--config.file={root / 'prometheus.yml'}",
                             f"--storage.tsdb.path={root / 'tsdb'}", f"--web.listen-address=127.0.0.1:{prom_port}"],
                            log("prometheus"))
        started.append(prometheus)
        wait_ready(f"{ns.prometheus}/-/ready", prometheus)
        assert training.wait(timeout=240) == 0, (logs / "train.log").read_text()[-2000:]

        base = root / "models" / MODEL
        (root / "models.config").write_text(
            f'model_config_list {{ config {{ name: "{MODEL}" base_path: "{base}" model_platform: "tensorflow" '
            'model_version_policy { all {} } version_labels { key: "stable" value: 1 } } }\n')
        (root / "monitoring.config").write_text(
            f'prometheus_config {{ enable: true, path: "{prometheus_config.MODEL_SERVER_METRICS_PATH}" }}\n')
        (root / "batching.config").write_text("max_batch_size { value: 32 }\nbatch_timeout_micros { value: 0 }\n"
                                              "num_batch_threads { value: 2 }\nmax_enqueued_batches { value: 2 }\n")
        ns.model_server = _start(TFSHIP + ["model-server", f"--rest_api_port={ms_port}", f"--port={free_port()}",
                                           f"--model_config_file={root / 'models.config'}",
                                           f"--monitoring_config_file={root / 'monitoring.config'}",
                                           "--enable_batching", f"--batching_parameters_file={root / 'batching.config'}"],
                                 log("model-server"), env)
        started.append(ns.model_server)
        api = _start(TFSHIP + ["api", "--port", str(api_port), "--workers", "2"], log("api"), env)
        started.append(api)
        wait_ready(f"http://127.0.0.1:{ms_port}/v1/models/{MODEL}", ns.model_server, timeout=120)
        wait_ready(f"{ns.api}/healthz", api, timeout=60)

        admin = {"Authorization": f"Bearer {keys['admin']}"}
        metadata = json.loads((base / "1" / "assets.extra" / "tfship_metadata.json").read_text())
        version = {k: metadata[k] for k in ("version", "metrics", "input_schema", "feature_statistics",
                                            "training_data_sha256")}
        for method, path, body in (("post", "", {"name": MODEL}),
                                   ("post", f"/{MODEL}/versions", {**version, "artifact_uri": f"file://{base}/1"}),
                                   ("put", f"/{MODEL}/rollout", {"stable": 1})):
            answer = requests.request(method, f"{ns.api}/api/v1/models{path}", json=body, headers=admin, timeout=10)
            assert answer.status_code < 300, answer.text

        ns.traffic = Traffic(ns.api, keys["predictor"])
        ns.traffic.start()
        yield ns
    finally:
        if getattr(ns, "traffic", None):
            ns.traffic.halt.set()
            ns.traffic.join(timeout=10)
        for process in reversed(started):
            _stop_group(process)
        for handle in handles:
            handle.close()


def _query(live, expr):
    answer = requests.get(f"{live.prometheus}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert answer["status"] == "success", f"{expr}: {answer.get('error')}"
    return answer["data"]["result"]


def _alerts(live, state=None):
    alerts = requests.get(f"{live.prometheus}/api/v1/alerts", timeout=10).json()["data"]["alerts"]
    return [a for a in alerts if state is None or a["state"] == state]


def _recordings(live):
    groups = requests.get(f"{live.prometheus}/api/v1/rules", params={"type": "record"}, timeout=10).json()
    return [(rule["name"], rule.get("labels", {})) for group in groups["data"]["groups"] for rule in group["rules"]]


def _selector(name, labels):
    return name + ("{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}" if labels else "")


def _dashboard_queries():
    return [(path.name, title, expr) for path in sorted((GENERATED / "grafana").glob("*.json"))
            for title, expr in lint.dashboard_queries(path.read_text())]


def test_every_recording_rule_returns_data(live):
    def empty():
        return [_selector(*r) for r in _recordings(live) if not _query(live, _selector(*r))]
    _wait(lambda: not empty(), 60, "every recording rule to return data")
    assert live.traffic.codes.get(200, 0) > 50, live.traffic.codes


def test_every_dashboard_query_returns_data(live):
    def empty():
        return [f"{board}: {title}" for board, title, expr in _dashboard_queries()
                if not _query(live, lint.grafana_expr(expr, {"$model_name": MODEL, "$model": MODEL}))]
    try:
        _wait(lambda: not empty(), 30, "every dashboard query to return data")
    except AssertionError:
        pytest.fail(f"dashboard queries without data: {empty()}")


def test_while_healthy_only_the_watchdog_fires(live):
    time.sleep(3)  # two more evaluations
    assert [a["labels"]["alertname"] for a in _alerts(live)] == ["Watchdog"], _alerts(live)


def test_out_of_range_inputs_fire_their_alert(live):
    live.traffic.row = OUT_OF_RANGE_ROW
    try:
        fired = _wait(lambda: [a for a in _alerts(live, "firing") if a["labels"]["alertname"] ==
                               "TfshipInputsOutOfRange"], 60, "TfshipInputsOutOfRange")
    finally:
        live.traffic.row = ROW
    assert fired[0]["labels"]["feature"] == "body_mass_g" and fired[0]["labels"]["model"] == MODEL


def test_stopping_the_model_server_fires_its_alerts(live):
    _stop_group(live.model_server)
    wanted = {"TfshipModelServerDown", "TfshipModelServerScrapeFailing", "TfshipUpstreamErrorRatioHigh",
              "TfshipApiAvailabilityFastBurn"}
    try:
        _wait(lambda: wanted <= {a["labels"]["alertname"] for a in _alerts(live, "firing")}, 60, sorted(wanted))
    except AssertionError:
        pytest.fail(f"firing: {sorted(a['labels']['alertname'] for a in _alerts(live, 'firing'))}; "
                    f"answers seen: {live.traffic.codes}")


def _names(live, job=None):
    params = {"match[]": f'{{job="{job}"}}'} if job else {}
    return set(requests.get(f"{live.prometheus}/api/v1/label/__name__/values", params=params, timeout=10)
               .json()["data"])


def test_every_metric_used_is_exported_and_every_exported_one_is_known(live):
    exported = _names(live, metrics.API_JOB) | _names(live, metrics.MODEL_SERVER_JOB)
    recorded = {name for name, _ in _recordings(live)} | {"ALERTS"}
    used = set()
    for path in prometheus_config.rule_files("test"):  # what this Prometheus loaded
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                used |= {name for name, _ in lint.selectors(rule["expr"])}
    for _, _, expr in _dashboard_queries():
        used |= {name for name, _ in lint.selectors(lint.grafana_expr(expr))}
    assert used - exported - recorded == set(), "used in rules or dashboards, exported by no process"
    unknown = {n for n in exported - metrics.series_names()
               if not n.startswith(("scrape_", ":tensorflow:core:"))}  # Prometheus's per-target series; TF's own
    assert unknown == set(), "exported but missing from monitoring/metrics.py"
