"""Start the TF-Serving-compatible local model server: `tfship model-server --flag=value ...`."""
import ctypes
import ctypes.util
import functools
import logging
import os
import signal
import socket
import sys
import tempfile

from model.server import flags as flags_module

log = logging.getLogger("model.server")
PR_SET_PDEATHSIG = 1  # prctl(2)
WORKER_KILL_TIMEOUT_S = 20  # a worker still busy this long after SIGTERM is killed


def _quiet_tensorflow():
    """Keep TF's C++ info lines out of the log and Keras out of the home directory."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_HOME", os.path.join(tempfile.gettempdir(), "tfship-keras"))


def _set_tensorflow_threads(flags):
    """Size TensorFlow's thread pools from the parallelism flags, before any TF op runs."""
    threads = flags.tensorflow_threads
    if threads is not None and threads != (0, 0):
        set_tensorflow_threads(*threads)


def set_tensorflow_threads(intra, inter):
    """Size TensorFlow's intra- and inter-op pools (0: TensorFlow sizes that one from the
    cores); only before the process runs its first TensorFlow op."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(intra)
    tf.config.threading.set_inter_op_parallelism_threads(inter)
    log.info("TensorFlow threads: intra-op %s, inter-op %s", intra or "auto", inter or "auto")


def _loader(flags, tags, metrics, batching_options):
    """Return the function that loads, warms up and wires one version."""
    from model.server import batching, warmup
    from model.server.servable import Servable

    def load(name, version, path):
        servable = Servable(name, version, path, tags)
        try:
            if metrics is not None:
                servable.runtime_observer = metrics.record_runtime
            if flags.enable_model_warmup:
                warmup.replay(servable, max(flags.num_request_iterations_for_warmup, 1))
            if batching_options is not None:
                servable.batcher = batching.Batcher(
                    servable, batching_options, metrics,
                    timeout_seconds=flags.rest_api_timeout_in_ms / 1000)
                servable.closers.append(servable.batcher.close)
        except BaseException:
            servable.unload()
            raise
        return servable

    return load


def build(flags):
    """Return (manager, wsgi app, pollers) for `flags`, with the initial models loaded."""
    from model.server import batching, config, manager as manager_module, monitoring, rest

    _set_tensorflow_threads(flags)
    tags = tuple(tag.strip() for tag in flags.saved_model_tags.split(",") if tag.strip())
    metrics, metrics_path = None, None
    if flags.monitoring_config_file:
        metrics_path = monitoring.read_config(flags.monitoring_config_file)
        metrics = monitoring.ServingMetrics() if metrics_path else None
    batching_options = None
    if flags.enable_batching:
        batching_options = batching.BatchingOptions.read(flags.batching_parameters_file)
    manager = manager_module.Manager(
        load_servable=_loader(flags, tags, metrics, batching_options),
        allow_labels_for_unavailable=flags.allow_version_labels_for_unavailable_models,
        allow_labels=flags.allow_version_labels)
    pollers = []
    if flags.model_config_file:
        reloader = manager_module.ConfigReloader(manager, flags.model_config_file)
        reloader.load_initial()
        pollers.append(manager_module.Poller(
            "model-config-poll", flags.model_config_file_poll_wait_seconds, reloader.reload))
    else:
        manager.apply_config(config.from_flags(flags.model_name, flags.model_base_path),
                             initial=True)
    pollers.append(manager_module.Poller(
        "file-system-poll", flags.file_system_poll_wait_seconds, manager.poll_filesystem))
    app = rest.RestApi(manager, metrics=metrics, metrics_path=metrics_path)
    return manager, app, pollers


class _IntendedThreadCount(logging.Filter):
    """Drop granian's warning about more WSGI threads than twice the cores: the count is
    --rest_api_num_threads (TF Serving's default, 4 x cores), and the threads mostly wait on
    TensorFlow, which runs without the GIL."""

    def filter(self, record):
        return "Python threads, which seems quite high" not in record.getMessage()


def _port_in_use(port):
    """Return the reason the REST port cannot be taken, or None.

    granian's worker binds with SO_REUSEPORT, which a second server on the same port would
    share silently (each answering half the calls, maybe from other models): bind a socket
    without it first, which any listener on the port refuses. SO_REUSEADDR lets it past the
    TIME_WAIT connections of a server just stopped on that port, as a restart must.
    """
    probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind(("0.0.0.0", port))
    except OSError as error:
        return error.strerror or str(error)
    finally:
        probe.close()
    return None


def _die_with_parent(parent_pid):
    """Have the kernel kill this worker when its supervisor dies, even by SIGKILL."""
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:  # it died before prctl
        os._exit(1)


def _worker_app(flags, parent_pid):
    """In granian's worker process: load the models, start the pollers, return the WSGI app.

    The worker leaves the supervisor's process group: a SIGTERM to the group (tfship down,
    Ctrl-C) reaches the supervisor alone, which stops its worker gracefully, and does not end
    the worker before it is asked (granian would log that as a crash and exit 1).
    """
    from model.server.config import ConfigError
    from model.server.errors import ServingError
    from model.server.protos import ProtoTextError

    _die_with_parent(parent_pid)
    os.setpgid(0, 0)
    try:
        _, app, pollers = build(flags)
    except (ConfigError, ServingError, ProtoTextError) as error:
        code = getattr(error, "code", "INVALID_ARGUMENT")
        log.error("Failed to start server. Error: %s: %s", code, error)
        sys.exit(1)
    for poller in pollers:  # daemon threads: they end with the worker
        poller.start()
    log.info("Exporting HTTP/REST API at:localhost:%d ...", flags.rest_api_port)
    return app


def serve(flags):
    """Answer REST requests until SIGTERM or Ctrl-C; returns the exit status.

    granian serves the WSGI app (model/server/rest.py): its supervisor runs in this process,
    and its one worker process loads the models, then binds the port (so, as with TF
    Serving, the port refuses connections until the initial models are loaded) and answers
    with up to --rest_api_num_threads calls in Python at once. TensorFlow is imported in the
    worker only: it must not be loaded before a fork.
    """
    from granian.constants import HTTPModes, Interfaces
    from granian.log import LogLevels
    from granian.server import Server

    if flags.port:
        log.info("gRPC (--port=%d) is not served by this local server; REST only", flags.port)
    if not flags.rest_api_port:
        log.error("--rest_api_port is 0: this local server only speaks REST, set a port")
        return 1
    busy = _port_in_use(flags.rest_api_port)
    if busy:
        log.error("Failed to start server. Error: UNAVAILABLE: the REST port %d is taken: %s",
                  flags.rest_api_port, busy)
        return 1
    server = Server(
        "tfship-model-server", address="0.0.0.0", port=flags.rest_api_port,
        interface=Interfaces.WSGI, workers=1, blocking_threads=flags.rest_threads,
        http=HTTPModes.http1, websockets=False, log_level=LogLevels.info,
        # granian's lines through this process's root handler (stderr), like every other line.
        log_dictconfig={"loggers": {"_granian": {"handlers": [], "propagate": True}}},
        respawn_failed_workers=False, workers_kill_timeout=WORKER_KILL_TIMEOUT_S)
    logging.getLogger("_granian").addFilter(_IntendedThreadCount())
    status = 0
    try:
        server.serve(target_loader=functools.partial(_worker_app, flags, os.getpid()),
                     wrap_loader=False)
    except SystemExit as exit_:  # granian exits 1 when its worker failed
        status = exit_.code if isinstance(exit_.code, int) else 1
    log.info("Shutting down")
    return status


def run(command, argv):
    """Entry point for `tfship model-server`; returns the exit status."""
    if any(arg in ("-h", "--help", "--helpfull") for arg in argv):
        print(flags_module.usage())
        return 0
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        flags = flags_module.parse(argv)
    except flags_module.FlagError as error:
        log.error("%s", error)
        print(flags_module.usage(), file=sys.stderr)
        return 1
    _quiet_tensorflow()
    return serve(flags)
