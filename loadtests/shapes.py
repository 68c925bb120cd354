"""The load shape: a locustfile holding only EnvironmentShape (stages in loadtests/load_plan.py).

Put it among the locustfiles (`locust -f loadtests/shapes.py,loadtests/predict.py ...`) and
choose the shape with --shape and the profile with --slo-profile.
"""
from locust import LoadTestShape

from loadtests.load_plan import SPAWN_SECONDS, stages


class EnvironmentShape(LoadTestShape):
    """Follows the stages of --shape for --slo-profile (default: --target-env); then stops the run."""

    def tick(self):
        parsed = self.runner.environment.parsed_options
        if not hasattr(self, "_stages"):
            self._stages = stages(parsed.shape, parsed.slo_profile or parsed.target_env, parsed.hold_seconds,
                                  parsed.prediction_rps)
            # Fixed-count personas (registry reader, writer) come on top of the prediction users.
            self._fixed = sum(getattr(c, "fixed_count", 0) for c in self.runner.user_classes)
        run_time = self.get_run_time()
        for stage in self._stages:
            if run_time < stage.until_s:
                users = stage.prediction_users + self._fixed
                return users, max(users / SPAWN_SECONDS, 1)
        return None
