"""The `tfship` command: a thin dispatcher that imports each part's commands lazily."""
import argparse
import importlib
import os
import sys
import tempfile

# subcommand -> (module, help). Modules are imported only when their command runs, so API
# commands never load TensorFlow.
COMMANDS = {
    "train": ("model.cli", "train, gate and export a new model version"),
    "model-server": ("model.server.main", "run the TF-Serving-compatible local model server"),
    "api": ("service.cli", "run the API under gunicorn (production) or Flask (--dev)"),
    "db": ("service.cli", "registry database commands: db upgrade"),
    "keys": ("service.cli", "API key administration: keys create|list|revoke"),
    "reconcile": ("service.delivery.reconciler",
                  "apply the registry's rollout state to the model servers' config"),
    "rollout": ("service.delivery.rollout_cli",
                "progressive delivery: rollout start|status|promote|abort|rollback|shadow"),
    "up": ("infra.local.cli", "start the local stack in the background"),
    "down": ("infra.local.cli", "stop the local stack"),
    "status": ("infra.local.cli", "show the local stack's processes"),
    "demo": ("infra.local.demo", "train, start the local stack and show predictions"),
    "verify": ("loadtests.cli", "run the post-deploy SLO gate against an environment"),
    "bench": ("loadtests.bench.cli", "run the side-by-side benchmarks (make bench)"),
    "doctor": ("tfship.doctor", "check (and optionally install) the system tools the tests need"),
}


def main(argv=None):
    """Parse the subcommand and hand the rest of the arguments to its module."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="tfship", description=__doc__)
    parser.add_argument("command", choices=sorted(COMMANDS), metavar="COMMAND",
                        help="; ".join(f"{name}: {text}" for name, (_, text) in COMMANDS.items()))
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return 0 if argv else 2
    args = parser.parse_args(argv[:1])
    # TensorFlow's C++ info lines drown the progress output; importing Keras writes ~/.keras.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_HOME", os.path.join(tempfile.gettempdir(), "tfship-keras"))
    module = importlib.import_module(COMMANDS[args.command][0])
    return module.run(args.command, argv[1:]) or 0


if __name__ == "__main__":
    sys.exit(main())
