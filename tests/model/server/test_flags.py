"""tensorflow_model_server's flag syntax. Time budget: < 1 s (no TensorFlow)."""
import pytest

from model.server import flags


def test_defaults_and_values():
    parsed = flags.parse(["--rest_api_port=8501", "--model_name=m", "--model_base_path=/m"])
    assert (parsed.rest_api_port, parsed.model_name, parsed.model_base_path) == (8501, "m", "/m")
    assert parsed.file_system_poll_wait_seconds == 1
    assert parsed.enable_batching is False and parsed.allow_version_labels is True


@pytest.mark.parametrize("argv,expected", [
    (["--enable_batching"], True),
    (["--enable_batching=true"], True),
    (["--enable_batching=false"], False),
    (["--enable_batching=0"], False),
    (["-enable_batching=1"], True),
])
def test_boolean_syntax(argv, expected):
    assert flags.parse(["--model_base_path=/m", *argv]).enable_batching is expected


def test_separate_value_syntax():
    parsed = flags.parse(["--model_config_file", "/c", "--rest_api_port", "9"])
    assert (parsed.model_config_file, parsed.rest_api_port) == ("/c", 9)


@pytest.mark.parametrize("argv,message", [
    (["--model_base_path=/m", "--no_such_flag=1"], "Unknown command line flag 'no_such_flag'"),
    (["--model_base_path=/m", "--rest_api_port=x"], "Illegal value 'x' specified for int"),
    (["--model_base_path=/m", "--enable_batching=maybe"], "bool flag 'enable_batching'"),
    (["--model_base_path=/m", "--model_config_file=/c"], "either --model_base_path"),
    (["--rest_api_port=1"], "missing"),
    (["--model_base_path=/m", "extra"], "Unexpected argument"),
    (["--model_base_path=/m", "--tensorflow_session_parallelism=2",
      "--tensorflow_intra_op_parallelism=1", "--tensorflow_inter_op_parallelism=1"],
     "You cannot configure all"),
])
def test_refused_command_lines(argv, message):
    with pytest.raises(flags.FlagError, match=message):
        flags.parse(argv)


@pytest.mark.parametrize("argv,threads", [
    ([], (0, 0)),  # TensorFlow sizes both pools
    (["--tensorflow_session_parallelism=2"], (2, 2)),
    (["--tensorflow_intra_op_parallelism=3"], (3, 0)),
    (["--tensorflow_inter_op_parallelism=1", "--tensorflow_session_parallelism=4"], (0, 1)),
    (["--tensorflow_intra_op_parallelism=2", "--tensorflow_inter_op_parallelism=1"], (2, 1)),
    (["--tensorflow_session_parallelism=2", "--platform_config_file=/p"], None),
])
def test_tensorflow_threads_are_derived_as_tf_serving_derives_them(argv, threads):
    # server.cc: the per-pool flags win when either is set; the platform config overrides all.
    assert flags.parse(["--model_base_path=/m", *argv]).tensorflow_threads == threads
