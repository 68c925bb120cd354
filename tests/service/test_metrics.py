"""The API's metrics: the names monitoring/ relies on, per-request recording, and correct totals
across real gunicorn workers (multiprocess mode). Budget: ~6 s (one gunicorn with 2 workers)."""
import os
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from flask import Flask
from prometheus_client import REGISTRY
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families

from tests.service.gateway_conftest import free_port
from monitoring import metrics as catalogue
from service import metrics


def declared():
    """Return {exported name: (type, labels)} of every metric service.metrics declares."""
    found = {}
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            name = value._name + ("_total" if value._type == "counter" else "")
            found[name] = (value._type, tuple(value._labelnames))
    return found


def test_names_and_labels_are_the_ones_monitoring_uses():
    assert declared() == catalogue.API
    assert metrics.BUCKETS == catalogue.API_BUCKETS
    assert metrics.UPSTREAM_DURATION._upper_bounds[:-1] == list(catalogue.API_BUCKETS)


def sample(name, **labels):
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def app():
    application = Flask(__name__)
    metrics.init_app(application)

    @application.get("/things/<name>")
    def thing(name):
        metrics.label_request(name, 3)
        return {"name": name}

    return application


def test_requests_are_counted_and_timed_per_route_template(app):
    labels = dict(route="/things/<name>", method="GET", model="owl", version="3")
    before = sample("tfship_http_requests_total", code="200", synthetic="true", **labels)
    before_count = sample("tfship_http_request_duration_seconds_count", synthetic="true", **labels)
    client = app.test_client()
    assert client.get("/things/owl", headers={"X-Tfship-Synthetic": "1"}).status_code == 200
    assert sample("tfship_http_requests_total", code="200", synthetic="true", **labels) == before + 1
    assert sample("tfship_http_request_duration_seconds_count", synthetic="true",
                  **labels) == before_count + 1
    assert sample("tfship_http_requests_in_flight", route="/things/<name>") == 0
    before_404 = sample("tfship_http_requests_total", route="unmatched", method="GET", code="404",
                        model="", version="", synthetic="false")
    assert client.get("/nowhere").status_code == 404
    assert sample("tfship_http_requests_total", route="unmatched", method="GET", code="404",
                  model="", version="", synthetic="false") == before_404 + 1


def test_children_are_cached_per_label_tuple_and_only_for_strings():
    assert metrics._child(metrics.PREDICTION_ROWS, "owl", "7") is \
        metrics.PREDICTION_ROWS.labels("owl", "7")
    assert metrics._child(metrics.PREDICTION_ROWS, "owl", "7") is \
        metrics._child(metrics.PREDICTION_ROWS, "owl", "7")
    # 1, 1.0 and True are equal dict keys but different label values: never cached
    assert metrics._child(metrics.PREDICTION_ROWS, "owl", 1) is metrics.PREDICTION_ROWS.labels("owl", "1")
    assert metrics._child(metrics.PREDICTION_ROWS, "owl", 1.0) is \
        metrics.PREDICTION_ROWS.labels("owl", "1.0")
    assert (metrics.PREDICTION_ROWS, ("owl", 1)) not in metrics._children


def test_metrics_route_serves_the_exposition(app):
    metrics.observe_upstream("owl", 3, "timeout", 0.2)
    metrics.set_versions_available("owl", 2)
    metrics.set_dependency_up("model_server", False)
    answer = app.test_client().get("/metrics")
    assert answer.status_code == 200 and answer.mimetype == "text/plain"
    text = answer.get_data(as_text=True)
    assert 'tfship_upstream_requests_total{model="owl",outcome="timeout",version="3"}' in text
    assert 'tfship_model_versions_available{model="owl"} 2.0' in text
    assert 'tfship_dependency_up{dependency="model_server"} 0.0' in text


GUNICORN_APP = '''
import os, time
from flask import Flask
from service import metrics

app = Flask(__name__)
metrics.init_app(app)

@app.get("/work")
def work():
    time.sleep(0.4)
    return str(os.getpid())
'''
GUNICORN_CONFIG = '''
from service.metrics import child_exit, clear_multiprocess_dir
control_socket_disable = True

def on_starting(server):
    clear_multiprocess_dir()
'''


def scrape(url):
    families = text_string_to_metric_families(requests.get(url + "/metrics", timeout=5).text)
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families for s in f.samples}


@pytest.fixture
def gunicorn(tmp_path):
    (tmp_path / "work_app.py").write_text(textwrap.dedent(GUNICORN_APP))
    (tmp_path / "conf.py").write_text(textwrap.dedent(GUNICORN_CONFIG))
    port = free_port()
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prometheus"))
    log = open(tmp_path / "gunicorn.log", "w")
    process = subprocess.Popen(
        [os.path.join(os.path.dirname(sys.executable), "gunicorn"), "-c", str(tmp_path / "conf.py"),
         "-w", "2", "-k", "sync", "-b", f"127.0.0.1:{port}", "--chdir", str(tmp_path),
         "work_app:app"], stdout=log, stderr=subprocess.STDOUT, env=env)
    log.close()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            requests.get(url + "/metrics", timeout=2)
            break
        except requests.ConnectionError:
            assert process.poll() is None, (tmp_path / "gunicorn.log").read_text()
            time.sleep(0.1)
    yield url
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def test_totals_are_correct_across_workers_and_worker_restarts(gunicorn):
    work = ("tfship_http_requests_total", (("code", "200"), ("method", "GET"), ("model", ""),
                                           ("route", "/work"), ("synthetic", "false"),
                                           ("version", "")))
    with ThreadPoolExecutor(4) as pool:
        pids = set(pool.map(lambda _: requests.get(gunicorn + "/work", timeout=10).text, range(4)))
    assert len(pids) == 2, "both workers served (each sync worker takes one request at a time)"
    assert scrape(gunicorn)[work] == 4
    os.kill(int(sorted(pids)[0]), signal.SIGKILL)
    time.sleep(1.0)  # gunicorn reaps it (child_exit) and starts a replacement
    after = scrape(gunicorn)
    assert after[work] == 4, "a dead worker's counts stay in the total"
    assert after[("tfship_http_requests_in_flight", (("route", "/work"),))] == 0
