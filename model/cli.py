"""`tfship train`: train, gate and export the next model version."""
import argparse
import os
import sys

from model.gate import GateConfig
from model.training import TrainingConfig

EXIT_GATE_REFUSED = 3
EXIT_REGISTRATION_FAILED = 4
EXIT_NOT_SERVABLE = 5


def parser():
    defaults_training, defaults_gate = TrainingConfig(), GateConfig()
    p = argparse.ArgumentParser(prog="tfship train", description=__doc__)
    p.add_argument("--models-dir", default=os.environ.get("TFSHIP_MODELS_DIR", "models"),
                   help="base directory; versions go to <models-dir>/<model-name>/<version>/ "
                        "(env TFSHIP_MODELS_DIR, default ./models)")
    p.add_argument("--model-name", default="penguins")
    p.add_argument("--epochs", type=int, default=defaults_training.epochs)
    p.add_argument("--seed", type=int, default=defaults_training.seed)
    p.add_argument("--learning-rate", type=float, default=defaults_training.learning_rate)
    p.add_argument("--min-accuracy", type=float, default=defaults_gate.min_accuracy,
                   help="quality gate: the floor for validation accuracy")
    p.add_argument("--max-regression", type=float, default=defaults_gate.max_regression,
                   help="quality gate: how far below the stable (else latest) version's "
                        "accuracy a candidate may fall")
    p.add_argument("--registry", metavar="URL", default=os.environ.get("TFSHIP_REGISTRY_URL"),
                   help="register the exported version with this tfship API (env "
                        "TFSHIP_REGISTRY_URL); needs a deployer key")
    p.add_argument("--registry-key-file",
                   help="file holding the deployer key (default: env TFSHIP_REGISTRY_KEY)")
    p.add_argument("--model-config-file",
                   help="a TF Serving model config whose `stable` label names the version to beat")
    return p


def run(command, argv):
    args = parser().parse_args(argv)
    from model import gate, pipeline, registration, serving_check

    config = TrainingConfig(epochs=args.epochs, seed=args.seed, learning_rate=args.learning_rate)
    gate_config = GateConfig(min_accuracy=args.min_accuracy, max_regression=args.max_regression)
    stable = gate.stable_from_model_config(args.model_config_file, args.model_name)
    try:
        key = registration.read_key(args.registry_key_file) if args.registry else None
        result = pipeline.run(args.models_dir, args.model_name, config, gate_config, stable,
                              progress=lambda line: print(f"[train] {line}", flush=True))
    except gate.GateRefused as refused:
        print(f"[train] quality gate refused the new {args.model_name} version: {refused}",
              file=sys.stderr, flush=True)
        return EXIT_GATE_REFUSED
    except serving_check.ServingCheckError as error:
        print(f"[train] the new {args.model_name} version was not exported: {error}",
              file=sys.stderr, flush=True)
        return EXIT_NOT_SERVABLE
    except registration.RegistrationError as error:
        print(f"[train] {error}", file=sys.stderr, flush=True)
        return EXIT_REGISTRATION_FAILED
    if args.registry:
        try:
            registration.register(args.registry, key, result.metadata, result.path)
        except registration.RegistrationError as error:
            print(f"[train] version {result.version} is exported at {result.path} but was not "
                  f"registered: {error}", file=sys.stderr, flush=True)
            return EXIT_REGISTRATION_FAILED
        print(f"[train] registered {args.model_name} version {result.version} at {args.registry}",
              flush=True)
    return 0
