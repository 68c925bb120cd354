"""`tfship demo`: train two versions, start the local stack, show predictions, keep it running."""
import argparse
import json
import math
import signal
import subprocess
import sys
import time
import urllib.request

from infra.local import cli as stack
from infra.local import processes
from infra.local.settings import LocalSettings

EXAMPLES = [  # one penguin of each species, and one with missing values
    {"island": "Torgersen", "sex": "male", "bill_length_mm": 39.1, "bill_depth_mm": 18.7,
     "flipper_length_mm": 181.0, "body_mass_g": 3750.0},
    {"island": "Dream", "sex": "female", "bill_length_mm": 46.5, "bill_depth_mm": 17.9,
     "flipper_length_mm": 192.0, "body_mass_g": 3500.0},
    {"island": "Biscoe", "sex": "female", "bill_length_mm": 46.1, "bill_depth_mm": 13.2,
     "flipper_length_mm": 211.0, "body_mass_g": 4500.0},
    {"island": "Biscoe", "sex": "", "bill_length_mm": 47.3, "bill_depth_mm": math.nan,
     "flipper_length_mm": 216.0, "body_mass_g": math.nan},
]
VERSIONS_WANTED = 2


def exported_versions(settings):
    model_dir = settings.models_dir / settings.model_name
    return sorted(int(p.name) for p in model_dir.iterdir() if p.name.isdigit()) \
        if model_dir.is_dir() else []


def train_versions(settings, out):
    """Train until two versions exist; each run uses its own seed, so the versions differ."""
    while len(exported_versions(settings)) < VERSIONS_WANTED:
        seed = len(exported_versions(settings)) + 1
        out(f"[demo] training {settings.model_name} (seed {seed}) ...")
        subprocess.run([sys.executable, "-m", "tfship.cli", "train",
                        "--models-dir", str(settings.models_dir),
                        "--model-name", settings.model_name, "--seed", str(seed)],
                       check=True, timeout=600)
    out(f"[demo] exported versions: {exported_versions(settings)} under "
        f"{settings.models_dir / settings.model_name}")


def predict(settings, target):
    body = json.dumps({"instances": EXAMPLES}).encode()  # json writes NaN as TF Serving's token
    request = urllib.request.Request(
        f"{settings.model_server_url}/v1/models/{settings.model_name}{target}:predict",
        data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())["predictions"]


def show_predictions(settings, out):
    targets = [f"/versions/{v}" for v in exported_versions(settings)[-VERSIONS_WANTED:]]
    targets.append("/labels/stable")
    for target in targets:
        out(f"[demo] POST /v1/models/{settings.model_name}{target}:predict")
        for example, prediction in zip(EXAMPLES, predict(settings, target)):
            probabilities = ", ".join(f"{p:.3f}" for p in prediction["probabilities"])
            out(f"         {example['island']:9} {example['sex'] or '(missing)':9} -> "
                f"{prediction['class_name']:9} [{probabilities}]")


def run(command, argv):
    parser = argparse.ArgumentParser(prog="tfship demo", description=__doc__)
    parser.add_argument("--no-wait", action="store_true",
                        help="return once the demo has run, leaving the stack up")
    args = parser.parse_args(argv)
    settings = LocalSettings.from_env()
    out = lambda line: print(line, flush=True)  # noqa: E731
    train_versions(settings, out)
    stack.up(settings, out)
    show_predictions(settings, out)
    if args.no_wait:
        out("[demo] done; the stack keeps running: `make down` stops it")
        return 0
    out("[demo] the stack is running; press Ctrl-C (or run `make down`) to stop it")
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        while any(processes.alive(p.pid) for p in processes.recorded(settings)):
            time.sleep(1)  # `make down` elsewhere ends the demo too
        out("[demo] the stack was stopped")
    except KeyboardInterrupt:
        stack.down(settings, out)
    return 0
