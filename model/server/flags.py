"""Parse `tensorflow_model_server`'s command line: its flag names, defaults and syntax.

TensorFlow Serving's flags are `--name=value` (or `--name value`); booleans also accept the
bare `--name` and `--name=true|false|1|0`. An unknown flag is an error, as it is there, so a
command line that works here works with the real server and the reverse.
"""
import dataclasses
import os


class FlagError(ValueError):
    """A command line that tensorflow_model_server would refuse."""


@dataclasses.dataclass(frozen=True)
class ServerFlags:
    """The flags the real server accepts; the names and defaults are TF Serving's."""

    port: int = 8500  # gRPC: accepted for compatibility, not served here.
    grpc_socket_path: str = ""
    rest_api_port: int = 0
    rest_api_num_threads: int = 0  # 0: 4 x schedulable CPUs, TF Serving's default.
    rest_api_timeout_in_ms: int = 30000
    model_name: str = "default"
    model_base_path: str = ""
    model_config_file: str = ""
    model_config_file_poll_wait_seconds: int = 0
    file_system_poll_wait_seconds: int = 1
    allow_version_labels: bool = True
    allow_version_labels_for_unavailable_models: bool = False
    enable_batching: bool = False
    batching_parameters_file: str = ""
    enable_model_warmup: bool = True
    num_request_iterations_for_warmup: int = 1
    monitoring_config_file: str = ""
    max_num_load_retries: int = 5
    load_retry_interval_micros: int = 60 * 1000 * 1000
    num_load_threads: int = 0
    num_unload_threads: int = 0
    flush_filesystem_caches: bool = True
    saved_model_tags: str = "serve"
    tensorflow_session_parallelism: int = 0
    tensorflow_intra_op_parallelism: int = 0
    tensorflow_inter_op_parallelism: int = 0
    platform_config_file: str = ""
    ssl_config_file: str = ""
    per_process_gpu_memory_fraction: float = 0.0
    grpc_channel_arguments: str = ""
    rest_api_enable_cors_support: bool = False

    @property
    def tensorflow_threads(self):
        """Return (intra-op, inter-op) thread counts for TensorFlow, as TF Serving derives
        them (server.cc): the two per-pool flags when either is set, else
        --tensorflow_session_parallelism for both; 0 lets TensorFlow choose. None when
        --platform_config_file is set, which these flags then do not apply to."""
        if self.platform_config_file:
            return None
        if self.tensorflow_intra_op_parallelism > 0 or self.tensorflow_inter_op_parallelism > 0:
            return self.tensorflow_intra_op_parallelism, self.tensorflow_inter_op_parallelism
        return self.tensorflow_session_parallelism, self.tensorflow_session_parallelism

    @property
    def rest_threads(self):
        """Return the REST worker count, TF Serving's default when the flag is 0."""
        return self.rest_api_num_threads or 4 * (os.cpu_count() or 1)


_FIELDS = {field.name: field for field in dataclasses.fields(ServerFlags)}
_TRUE = {"true", "1", "t", "yes", "y"}
_FALSE = {"false", "0", "f", "no", "n"}


def _convert(name, text):
    """Return `text` as the type of flag `name`, or raise FlagError."""
    kind = _FIELDS[name].type
    try:
        if kind is bool:
            lowered = text.lower()
            if lowered in _TRUE:
                return True
            if lowered in _FALSE:
                return False
            raise ValueError(text)
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
    except ValueError:
        raise FlagError(f"Illegal value '{text}' specified for {kind.__name__} flag "
                        f"'{name}'") from None
    return text


def parse(argv):
    """Return the ServerFlags that `argv` (without the program name) sets."""
    values = {}
    args = list(argv)
    while args:
        arg = args.pop(0)
        if not arg.startswith("-") or arg in ("-", "--"):
            raise FlagError(f"Unexpected argument: {arg!r} (flags look like --name=value)")
        body = arg.lstrip("-")
        name, has_value, text = body.partition("=")
        if name not in _FIELDS:
            raise FlagError(f"Unknown command line flag '{name}'")
        if not has_value:
            if _FIELDS[name].type is bool:
                text = "true"
            elif args:
                text = args.pop(0)
            else:
                raise FlagError(f"Missing value for flag '{name}'")
        values[name] = _convert(name, text)
    flags = ServerFlags(**values)
    _check(flags)
    return flags


def _check(flags):
    """Refuse the combinations tensorflow_model_server refuses at start."""
    if flags.model_config_file and flags.model_base_path:
        raise FlagError("Specify either --model_base_path (with --model_name) or "
                        "--model_config_file, not both")
    if min(flags.tensorflow_intra_op_parallelism, flags.tensorflow_inter_op_parallelism,
           flags.tensorflow_session_parallelism) > 0:
        raise FlagError("Either configure --tensorflow_session_parallelism or "
                        "(--tensorflow_intra_op_parallelism, --tensorflow_inter_op_parallelism) "
                        "separately. You cannot configure all.")
    if not flags.model_config_file and not flags.model_base_path:
        raise FlagError("Both server config file and model base path are missing: set "
                        "--model_base_path (with --model_name) or --model_config_file")


def usage():
    """Return a one-flag-per-line summary with defaults, for --help."""
    lines = ["usage: tfship model-server --rest_api_port=8501 --model_name=NAME "
             "--model_base_path=/abs/path  (or --model_config_file=FILE)", "", "Flags:"]
    for field in dataclasses.fields(ServerFlags):
        lines.append(f"  --{field.name}={field.default!r}  ({field.type.__name__})")
    return "\n".join(lines)
