"""Live proof: a real Prometheus scrapes the real API and model server under real traffic.

Every recording rule and dashboard query returns data, no alert but the Watchdog fires while
healthy, every metric name used exists in what the processes export (and the reverse), and each
injected fault fires its named alert within the compressed `test` profile's windows: out-of-range
inputs, errors injected by the gateway (a second API instance started with
TFSHIP_API_FAULT_ERROR_RATE, which traffic is switched to), a canary whose calls all fail and fall
back to stable, and the model server stopped. Shadow mode mirrors stable's traffic to version 2
throughout, so the shadow panels have data too.

Budget: ~100 s on a quiet machine (the suite's `trained_models` ~20 s when no other test built it yet,
model load ~10 s, healthy phase ~15 s, four faults ~50 s, of which ~20 s for injected errors and the
failing canary). Marked slow.
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
from tests.monitoring.filebeat import decode, ndjson_settings

pytestmark = pytest.mark.slow
TFSHIP = [sys.executable, "-m", "tfship.cli"]
MODEL = "penguins"
ROW = {"island": "Dream", "sex": "female", "bill_length_mm": 46.5, "bill_depth_mm": 17.9,
       "flipper_length_mm": 192.0, "body_mass_g": 3500.0}
OUT_OF_RANGE_ROW = {**ROW, "body_mass_g": 100000.0}
INJECTED_ERROR_RATE = 0.5  # the faulty API instance answers half the predictions 503 injected_fault
SHADOW, SHADOW_SHARE = 2, 0.5  # version 2 on the model server, mirrored half of stable's predictions
FAILING_CANARY = 3  # in the registry only: the model server has neither its version nor a "canary" label


def _start(command, log, env=None):
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _signal_group(process, signum):
    try:
        os.killpg(process.pid, signum)
    except ProcessLookupError:  # nothing of the group is left
        pass


def _stop_group(*processes):
    """Stop processes this test started, with the children they spawned (gunicorn workers), all at once.

    Every group is signalled even when its leader has already exited (a gunicorn master that
    died can leave a worker behind), and every group gets a final SIGKILL, so nothing outlives
    the test.
    """
    for process in processes:
        _signal_group(process, signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            pass
    for process in processes:
        _signal_group(process, signal.SIGKILL)
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
    """Prediction requests as fast as one thread goes (~10-30 rps here), and a readiness probe every second.

    Answers are counted in total (``codes``) and per API instance they came from (``codes_from``): a
    request sent just before a test switches ``api`` is answered after the switch, so a test that
    judges one instance reads that instance's counts, never the total.
    """

    def __init__(self, api, key):
        super().__init__(daemon=True)
        self.api, self.headers, self.row = api, {"Authorization": f"Bearer {key}"}, ROW
        self.codes, self.codes_from, self.halt = {}, {}, threading.Event()

    def run(self):
        probed, sent = 0.0, 0
        with requests.Session() as session:  # closed at the end: no keep-alive left to delay the APIs' shutdown
            while not self.halt.is_set():
                sent += 1
                api = self.api
                try:
                    code = session.post(f"{api}/api/v1/models/{MODEL}:predict", json={"instances": [self.row]},
                                        headers={**self.headers, "X-Request-ID": f"live-{sent}"},
                                        timeout=5).status_code
                except requests.RequestException:
                    code = "error"
                self.codes[code] = self.codes.get(code, 0) + 1
                counts = self.codes_from.setdefault(api, {})
                counts[code] = counts.get(code, 0) + 1
                if time.monotonic() - probed >= 1:
                    probed = time.monotonic()
                    try:
                        session.get(f"{api}/readyz", timeout=5)  # what Kubernetes' probe does
                    except requests.RequestException:
                        pass
                self.halt.wait(0.02)


@pytest.fixture(scope="module")
def live(tmp_path_factory, trained_models):
    root = tmp_path_factory.mktemp("live")
    logs, started = root / "logs", []
    logs.mkdir()
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "KERAS_HOME": str(root / "keras"),
           "TFSHIP_API_DATABASE_URL": f"sqlite:///{root / 'api.db'}", "TFSHIP_API_DATA_DIR": str(root / "api"),
           "TFSHIP_API_KEY_SECRET": "live-test-key-secret-0123456789abcdef",
           "PROMETHEUS_MULTIPROC_DIR": str(root / "multiproc")}
    (root / "multiproc").mkdir()
    ms_port, api_port, faulty_port, prom_port = free_port(), free_port(), free_port(), free_port()
    env["TFSHIP_API_MODEL_SERVER_URL"] = f"http://127.0.0.1:{ms_port}"
    # A second instance of the API, on the same database and model server, that injects errors; it
    # serves nothing until test_injected_errors_fire_the_availability_burn_alert sends traffic to it.
    faulty_env = {**env, "TFSHIP_API_FAULT_ERROR_RATE": str(INJECTED_ERROR_RATE),
                  "PROMETHEUS_MULTIPROC_DIR": str(root / "multiproc-faulty")}
    (root / "multiproc-faulty").mkdir()
    ns = SimpleNamespace(root=root, logs=logs, api=f"http://127.0.0.1:{api_port}",
                         faulty_api=f"http://127.0.0.1:{faulty_port}", prometheus=f"http://127.0.0.1:{prom_port}")
    handles = []

    def log(name):
        handle = (logs / f"{name}.log").open("w")
        handles.append(handle)
        return handle

    base = trained_models[0] / MODEL  # versions 1 and 2, shared with the rest of the suite; only read here
    try:
        (root / "models.config").write_text(
            f'model_config_list {{ config {{ name: "{MODEL}" base_path: "{base}" model_platform: "tensorflow" '
            'model_version_policy { all {} } version_labels { key: "stable" value: 1 } } }\n')
        (root / "monitoring.config").write_text(
            f'prometheus_config {{ enable: true, path: "{prometheus_config.MODEL_SERVER_METRICS_PATH}" }}\n')
        (root / "batching.config").write_text("max_batch_size { value: 32 }\nbatch_timeout_micros { value: 0 }\n"
                                              "num_batch_threads { value: 2 }\nmax_enqueued_batches { value: 2 }\n")
        # The model server first: importing TensorFlow and loading both versions takes longest.
        ns.model_server = _start(TFSHIP + ["model-server", f"--rest_api_port={ms_port}", f"--port={free_port()}",
                                           f"--model_config_file={root / 'models.config'}",
                                           f"--monitoring_config_file={root / 'monitoring.config'}",
                                           "--enable_batching", f"--batching_parameters_file={root / 'batching.config'}"],
                                 log("model-server"), env)
        started.append(ns.model_server)
        subprocess.run(TFSHIP + ["db", "upgrade"], env=env, check=True, timeout=60, capture_output=True)
        keys = {role: subprocess.run(TFSHIP + ["keys", "create", "--role", role, "--name", "live-test"], env=env,
                                     check=True, timeout=60, capture_output=True, text=True).stdout.strip()
                for role in ("admin", "predictor")}
        config = prometheus_config.config(f"127.0.0.1:{api_port}", f"127.0.0.1:{ms_port}", "test", "1s")
        config["scrape_configs"][0]["static_configs"][0]["targets"].append(f"127.0.0.1:{faulty_port}")
        (root / "prometheus.yml").write_text(yaml.safe_dump(config))
        prometheus = _start([tool("prometheus"), f"--config.file={root / 'prometheus.yml'}",
                             f"--storage.tsdb.path={root / 'tsdb'}", f"--web.listen-address=127.0.0.1:{prom_port}"],
                            log("prometheus"))
        started.append(prometheus)
        api = _start(TFSHIP + ["api", "--port", str(api_port), "--workers", "2"], log("api"), env)
        started.append(api)
        faulty = _start(TFSHIP + ["api", "--port", str(faulty_port), "--workers", "1"], log("api-faulty"), faulty_env)
        started.append(faulty)
        wait_ready(f"{ns.prometheus}/-/ready", prometheus)
        wait_ready(f"{ns.api}/healthz", api, timeout=60)
        wait_ready(f"{ns.faulty_api}/healthz", faulty, timeout=60)
        wait_ready(f"http://127.0.0.1:{ms_port}/v1/models/{MODEL}", ns.model_server, timeout=120)

        ns.admin = {"Authorization": f"Bearer {keys['admin']}"}
        _admin(ns, "post", "", {"name": MODEL})
        for number in (1, 2, FAILING_CANARY):
            metadata = json.loads((base / str(min(number, 2)) / "assets.extra" / "tfship_metadata.json").read_text())
            _admin(ns, "post", f"/{MODEL}/versions", {
                **{k: metadata[k] for k in ("metrics", "input_schema", "feature_statistics", "training_data_sha256")},
                "version": number, "artifact_uri": f"file://{base}/{number}"})
        _admin(ns, "put", f"/{MODEL}/rollout", {"stable": 1})
        # Shadow mode throughout: version 2 (loaded, not serving) gets a mirrored share of stable's predictions.
        _admin(ns, "put", f"/{MODEL}/rollout/shadow", {"version": SHADOW, "share": SHADOW_SHARE})

        ns.traffic = Traffic(ns.api, keys["predictor"])
        ns.traffic.start()
        yield ns
    finally:
        if getattr(ns, "traffic", None):
            ns.traffic.halt.set()
            ns.traffic.join(timeout=10)
        _stop_group(*reversed(started))
        for handle in handles:
            handle.close()


def _admin(live, method, path, body):
    answer = requests.request(method, f"{live.api}/api/v1/models{path}", json=body, headers=live.admin, timeout=10)
    assert answer.status_code < 300, answer.text


def _firing(live, name):
    return [a for a in _alerts(live, "firing") if a["labels"]["alertname"] == name]


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


def test_injected_errors_fire_the_availability_burn_alert(live):
    """Traffic moves to the API instance that answers INJECTED_ERROR_RATE of predictions 503 before forwarding
    them: the availability SLO's fast burn pages within its compressed windows (1m and 5s, for 2s). The model
    server saw no failure, so the upstream error ratio alert stays quiet."""
    live.traffic.api = live.faulty_api
    try:
        fired = _wait(lambda: _firing(live, "TfshipApiAvailabilityFastBurn"), 45, "TfshipApiAvailabilityFastBurn")
    finally:
        live.traffic.api = live.api
    faulty = live.traffic.codes_from.get(live.faulty_api, {})
    assert faulty.get(503) and faulty.get(200), f"the faulty instance answered {faulty}"
    assert fired[0]["labels"]["slo"] == "api-availability" and fired[0]["labels"]["severity"] == "page"
    assert not _firing(live, "TfshipUpstreamErrorRatioHigh")


def test_a_failing_canary_fires_the_fallback_alert(live):
    """All traffic goes to a canary the model server cannot serve (FAILING_CANARY): every call fails, is retried
    on stable, and callers get 200. Only the fallback alert can see it. Judged on the healthy instance's answers
    alone: one the faulty instance of the test before answered late must not count (seen once in CI)."""
    before = dict(live.traffic.codes_from.get(live.api, {}))
    _admin(live, "put", f"/{MODEL}/rollout", {"stable": 1, "canary": FAILING_CANARY, "canary_weight": 1.0})
    try:
        fired = _wait(lambda: _firing(live, "TfshipCanaryFallbacksHigh"), 45, "TfshipCanaryFallbacksHigh")
    finally:
        _admin(live, "put", f"/{MODEL}/rollout", {"stable": 1, "canary": None, "canary_weight": 0.0})
    assert fired[0]["labels"]["model"] == MODEL and fired[0]["labels"]["version"] == str(FAILING_CANARY)
    during = {code: n - before.get(code, 0) for code, n in live.traffic.codes_from[live.api].items()
              if n > before.get(code, 0)}
    assert set(during) == {200}, f"callers must not notice a failing canary: {during}"


def test_shadow_mode_is_measured(live):
    """The shadow panels' series: version 2 answered the mirrored predictions and its rows were compared."""
    compared = _wait(lambda: _query(live, f'sum by (version) (tfship_shadow_rows_total{{model="{MODEL}"}}) > 0'), 30,
                     "mirrored rows compared")
    assert {r["metric"]["version"] for r in compared} == {str(SHADOW)}
    assert _query(live, f'tfship_shadow_requests_total{{model="{MODEL}",version="{SHADOW}",outcome="ok"}} > 0')
    roles = _query(live, f'count by (role) (tfship_shadow_latency_seconds_count{{version="{SHADOW}"}} > 0)')
    assert {r["metric"]["role"] for r in roles} == {"primary", "shadow"}


def test_every_dashboard_query_returns_data(live):
    def empty():
        return [f"{board}: {title}" for board, title, expr in _dashboard_queries()
                if not _query(live, lint.grafana_expr(expr, {"$model_name": MODEL, "$model": MODEL}))]
    try:
        _wait(lambda: not empty(), 30, "every dashboard query to return data")
    except AssertionError:
        pytest.fail(f"dashboard queries without data: {empty()}")


def test_the_apis_real_log_lines_decode_into_ecs_fields(live):
    """What both API processes wrote on stderr in this run, through Filebeat's decoding (monitoring/elk/): the
    level, message, caller's request id, model and version of every prediction, served or injected."""
    path, settings = f"/api/v1/models/{MODEL}:predict", ndjson_settings()
    lines = {name: [line for line in (live.logs / f"{name}.log").read_text().splitlines()
                    if line.startswith("{") and path in line] for name in ("api", "api-faulty")}
    events = [decode(line, settings) for found in lines.values() for line in found[-200:]]  # the latest suffice
    predictions = [e for e in events if e["log"].get("logger") == "tfship.access" and e["url"]["path"] == path]
    by_code = {code: [e for e in predictions if e["http"]["response"]["status_code"] == code] for code in (200, 503)}
    assert by_code[200] and by_code[503], f"{len(events)} events, {len(predictions)} predictions"
    for event in by_code[200] + by_code[503]:
        assert event["log"]["level"] == "info" and event["message"].startswith(f"POST /api/v1/models/{MODEL}:predict ")
        assert event["http"]["request"]["id"].startswith("live-"), event["http"]["request"]
    assert {(e["tfship"]["model"], e["tfship"]["version"]) for e in by_code[200]} == {(MODEL, "1")}
    assert all(e["message"].endswith(" 503") for e in by_code[503])
    assert not any("error" in e for e in by_code[200])
    injected = [e for e in (decode(line, settings) for line in lines["api-faulty"][-200:])
                if e["log"].get("logger") == "tfship.access" and e["http"]["response"]["status_code"] == 503]
    assert injected and {e["error"]["code"] for e in injected} == {"injected_fault"}, "the access line says why"


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
