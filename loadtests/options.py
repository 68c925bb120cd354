"""The load tests' own command-line options, added to Locust's (each also reads a LOCUST_* variable).

Every locustfile imports this module, so `locust -f loadtests/predict.py --model penguins ...`
works on its own. The gate and its report are active only when --slo-profile is given.
"""
import os

from locust import events

from loadtests.load_plan import WARMUP_SECONDS
from loadtests.protocol import ENVIRONMENTS, SHAPES


@events.init_command_line_parser.add_listener
def add_options(parser):
    """Declare the tfship options: target, credentials, gate profile, shape, canary tolerances."""
    group = parser.add_argument_group("tfship")
    group.add_argument("--model", default="penguins", env_var="LOCUST_MODEL",
                       help="registered model whose stable version's schema drives the payloads")
    group.add_argument("--target-env", choices=ENVIRONMENTS, default="local", env_var="LOCUST_TARGET_ENV",
                       help="environment under test; against prod the registry writer refuses to run")
    group.add_argument("--api-key-file", default="", env_var="LOCUST_API_KEY_FILE",
                       help="file holding the API key of the registry personas (else $TFSHIP_API_KEY)")
    group.add_argument("--predict-api-key-file", default="", env_var="LOCUST_PREDICT_API_KEY_FILE",
                       help="file holding the predictor's API key (else $TFSHIP_PREDICT_API_KEY, "
                            "else the registry key)")
    group.add_argument("--slo-profile", default="", env_var="LOCUST_SLO_PROFILE",
                       help="monitoring/slo.yaml profile to judge the run against; empty: no gate")
    group.add_argument("--shape", choices=SHAPES, default="smoke", env_var="LOCUST_SHAPE",
                       help="load shape (used when loadtests/shapes.py is among the locustfiles)")
    group.add_argument("--hold-seconds", type=float, default=0.0, env_var="LOCUST_HOLD_SECONDS",
                       help="override the shape's time at full load (0: sized from the profile)")
    group.add_argument("--prediction-rps", type=int, default=0, env_var="LOCUST_PREDICTION_RPS",
                       help="override the shape's steady prediction rate (0: the environment's, in "
                            "loadtests/load_plan.py)")
    group.add_argument("--warmup-seconds", type=float, default=WARMUP_SECONDS, env_var="LOCUST_WARMUP_SECONDS",
                       help="seconds at the start that the gate does not judge (spawning, cold caches)")
    group.add_argument("--report-dir", default="", env_var="LOCUST_REPORT_DIR",
                       help="where the gate writes slo-report.html and slo-verdict.json")
    group.add_argument("--max-generator-cpu", type=float, default=0.9, env_var="LOCUST_MAX_GENERATOR_CPU",
                       help="share of one core the load generator may use before the run is untrustworthy")
    group.add_argument("--canary-max-error-delta", type=float, default=0.01,
                       env_var="LOCUST_CANARY_MAX_ERROR_DELTA",
                       help="canary error ratio may exceed stable's by at most this")
    group.add_argument("--canary-max-latency-ratio", type=float, default=1.5,
                       env_var="LOCUST_CANARY_MAX_LATENCY_RATIO",
                       help="canary p50 and p95 may be at most this multiple of stable's (plus 25 ms slack)")
    group.add_argument("--canary-min-samples", type=int, default=50, env_var="LOCUST_CANARY_MIN_SAMPLES",
                       help="predictions each version needs before canary and stable are compared")


def read_key(path, variable):
    """Return the API key from a file (first line), else from an environment variable, else ''."""
    if path:
        with open(path, encoding="utf-8") as handle:
            return handle.readline().strip()
    return os.environ.get(variable, "").strip()
