"""gunicorn settings for the API (``tfship api`` passes this file; bind comes from its flags).

- Threaded workers (gthread): the gateway waits on the model server, so a worker serves
  several requests at once. service/gunicorn_worker.py reads each request without a thread
  and hands only complete requests to threads, so slow clients hold none.
- Preload: the master builds the app once (the API has no TensorFlow, so nothing breaks
  across fork) and workers start at once. create_app opens no connection; the gateway's
  model-server client is built on first use, in the worker; ``post_fork`` drops any
  database connection the master might have pooled (SQLAlchemy's advice for forking).
- prometheus-client multiprocess mode: every process writes its samples to files in
  PROMETHEUS_MULTIPROC_DIR, which must be set before prometheus_client is imported (it is
  set here, in the master, before any worker starts) and emptied at start; a dead
  worker's live gauges are dropped in ``child_exit``.
- HTTPS with TLS_CERT_FILE and TLS_KEY_FILE (service/tls.py).
- gunicorn 27 opens a control socket under ~/.gunicorn by default: disabled.
"""
import gc
import os
import shutil
import sys
import tempfile

# First, before anything imports prometheus_client (service.settings reads the metrics
# module's settings): the multiprocess mode is fixed when prometheus_client is imported.
_OWN_METRICS_DIR = "PROMETHEUS_MULTIPROC_DIR" not in os.environ
if _OWN_METRICS_DIR:
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="tfship-metrics-")

# flask-smorest imports PyYAML only for its `flask openapi` commands' yaml output, which the
# API server never runs; the import was ~5% of the API's time to ready. A None entry in
# sys.modules makes `import yaml` raise ImportError (Python's documented way to block an
# import), and flask-smorest then does without it. Nothing in service/ uses PyYAML.
sys.modules.setdefault("yaml", None)

from service.settings import from_environment  # noqa: E402
from service.tls import gunicorn_options  # noqa: E402

workers = int(from_environment("WORKERS"))
worker_class = "service.gunicorn_worker.WholeRequestWorker"  # gthread, slow-client safe
threads = int(from_environment("THREADS"))
timeout = 30
graceful_timeout = 20
keepalive = 5
preload_app = True
control_socket_disable = True
accesslog = None  # the app writes ECS access logs itself
errorlog = "-"
# gunicorn's DEBUG lines carry raw request lines (paths and queries, unredacted): INFO at most.
loglevel = max(str(from_environment("LOG_LEVEL")).lower(), "info",
               key=["debug", "info", "warning", "error", "critical"].index)
forwarded_allow_ips = str(from_environment("FORWARDED_ALLOW_IPS"))
# HTTPS when TFSHIP_API_TLS_CERT_FILE/KEY_FILE are set (service/tls.py); else plain HTTP.
globals().update(gunicorn_options(from_environment("TLS_CERT_FILE"), from_environment("TLS_KEY_FILE")))


def on_starting(server):
    """Start from an empty metrics folder: files of an earlier run would be summed in."""
    from service import metrics
    metrics.clear_multiprocess_dir()


def on_exit(server):
    """Remove the metrics folder this config created (one given by the environment is kept)."""
    if _OWN_METRICS_DIR:
        shutil.rmtree(os.environ["PROMETHEUS_MULTIPROC_DIR"], ignore_errors=True)


def pre_fork(server, worker):
    """Freeze the preloaded app's objects (gc.freeze) before each fork.

    A worker's full collections then walk only the objects it made itself. Without it, the
    first seconds of a worker's life held five full collections of 50-80 ms each (p99 of a
    registry list 31 ms against 2.6 ms once warm); frozen, 3-20 ms. Collections also stop
    writing to the inherited objects' headers, so their pages stay shared with the master.
    """
    gc.freeze()


def post_fork(server, worker):
    """Give the worker its own database connections: never reuse the master's pooled ones."""
    from service import db
    db.engine(server.app.wsgi()).dispose(close=False)


def child_exit(server, worker):
    """Drop the live gauges of a worker that exited."""
    from service import metrics
    metrics.child_exit(server, worker)
