"""Start the TF-Serving-compatible local model server: `tfship model-server --flag=value ...`."""
import logging
import os
import signal
import sys
import tempfile

from model.server import flags as flags_module

log = logging.getLogger("model.server")
RECV_BYTES = 64 * 1024


def _quiet_tensorflow():
    """Keep TF's C++ info lines out of the log and Keras out of the home directory."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_HOME", os.path.join(tempfile.gettempdir(), "tfship-keras"))


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


def serve(flags):
    """Load the models, then answer REST requests until SIGTERM or Ctrl-C."""
    import waitress

    from model.server.config import ConfigError
    from model.server.errors import ServingError
    from model.server.protos import ProtoTextError

    try:
        _, app, pollers = build(flags)
    except (ConfigError, ServingError, ProtoTextError) as error:
        code = getattr(error, "code", "INVALID_ARGUMENT")
        log.error("Failed to start server. Error: %s: %s", code, error)
        return 1
    if flags.port:
        log.info("gRPC (--port=%d) is not served by this local server; REST only", flags.port)
    if not flags.rest_api_port:
        log.error("--rest_api_port is 0: this local server only speaks REST, set a port")
        return 1
    # One recv for a typical predict body (waitress reads 8 KiB at a time by default).
    server = waitress.create_server(app, host="0.0.0.0", port=flags.rest_api_port,
                                    threads=flags.rest_threads, ident="tfship-model-server",
                                    recv_bytes=RECV_BYTES)

    def stop(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    for poller in pollers:
        poller.start()
    log.info("Exporting HTTP/REST API at:localhost:%d ...", flags.rest_api_port)
    try:
        server.run()  # returns (or raises KeyboardInterrupt) on SIGTERM or Ctrl-C
    except KeyboardInterrupt:
        pass
    finally:
        log.info("Shutting down")
        for poller in pollers:
            poller.stop()
        server.close()
    return 0


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
