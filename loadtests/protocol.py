"""Names the load tests share with the API, and their own vocabulary; importable without Locust.

Locust monkey-patches the process with gevent when imported, so the modules that the test
process imports (verdict, canary, load_plan, report, cli) take their constants from here.
"""
SYNTHETIC_HEADER = "X-Tfship-Synthetic"  # the API counts these as synthetic="true" in its metrics
ROUTING_KEY_HEADER = "X-Routing-Key"  # the gateway's canary split is sticky per routing key
VERSION_HEADER = "X-Model-Version"  # the version that served a prediction
ENVIRONMENTS = ("local", "dev", "staging", "prod")
SHAPES = ("smoke", "ramp", "soak")
PREDICT_MARKER = ":predict"  # prediction request names contain the gateway's verb
UNKNOWN_VERSION = "unknown"  # answers without a version header (e.g. refused before routing)


def is_prediction(name):
    """True for a prediction request's stats name."""
    return PREDICT_MARKER in name
