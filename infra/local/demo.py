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
from infra.local import model_server, processes
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


def call(url, key=None, body=None):
    """One JSON call; json writes NaN as TF Serving's token. Returns (status, headers, body)."""
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status, response.headers, json.loads(response.read())


def show_predictions(out, predictions):
    for example, prediction in zip(EXAMPLES, predictions):
        probabilities = ", ".join(f"{p:.3f}" for p in prediction["probabilities"])
        out(f"         {example['island']:9} {example['sex'] or '(missing)':9} -> "
            f"{prediction['class_name']:9} [{probabilities}]")


def show_model_server(settings, out):
    """Predictions straight from the model server: each version it serves, and `stable`.

    It serves only what the registry's rollout state names; other exports wait for a rollout.
    """
    served = model_server.available_versions(settings)
    targets = [f"/versions/{v}" for v in served] + ["/labels/stable"]
    for target in targets:
        path = f"/v1/models/{settings.model_name}{target}:predict"
        out(f"[demo] model server: POST {path}")
        _, _, body = call(settings.model_server_url + path, body={"instances": EXAMPLES})
        show_predictions(out, body["predictions"])
    waiting = [v for v in exported_versions(settings) if v not in served]
    if waiting:
        out(f"[demo] exported but not served: versions {waiting}; `tfship rollout start "
            f"--version {waiting[-1]}` canaries one (the reconciler loads it)")


def show_api(settings, out):
    """Registry reads with the admin key, then predictions through the gateway."""
    admin = settings.key_file("admin").read_text().strip()
    predictor = settings.key_file("predictor").read_text().strip()
    base = f"{settings.api_url}/api/v1/models"
    _, _, page = call(f"{base}?per_page=5", admin)
    out(f"[demo] registry: GET /api/v1/models -> {page['total']} model(s): "
        + ", ".join(m["name"] for m in page["items"]))
    _, _, versions = call(f"{base}/{settings.model_name}/versions", admin)
    for item in versions["items"]:
        out(f"         version {item['version']}: {item['status']:8} accuracy "
            f"{item['metrics'].get('accuracy', float('nan')):.4f}  {item['artifact_uri']}")
    _, _, rollout = call(f"{base}/{settings.model_name}/rollout", admin)
    out(f"[demo] registry: rollout state stable={rollout['stable']} canary={rollout['canary']} "
        f"weight={rollout['canary_weight']}")
    path = f"/api/v1/models/{settings.model_name}:predict"
    _, headers, body = call(settings.api_url + path, predictor, {"instances": EXAMPLES})
    out(f"[demo] gateway: POST {path} -> served by version {headers.get('X-Model-Version')} "
        f"({headers.get('X-Model-Label')})")
    show_predictions(out, body["predictions"])


def run(command, argv):
    parser = argparse.ArgumentParser(prog="tfship demo", description=__doc__)
    parser.add_argument("--no-wait", action="store_true",
                        help="return once the demo has run, leaving the stack up")
    args = parser.parse_args(argv)
    settings = LocalSettings.from_env()
    out = lambda line: print(line, flush=True)  # noqa: E731
    train_versions(settings, out)
    stack.up(settings, out)
    show_model_server(settings, out)
    show_api(settings, out)
    out("[demo] post-deploy gate: tfship verify --env local (a bounded smoke load) ...")
    gate = subprocess.run([sys.executable, "-m", "tfship.cli", "verify", "--env", "local"],
                          timeout=600)
    if gate.returncode != 0:
        out(f"[demo] the SLO gate did not pass (exit {gate.returncode}); see its report above")
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
