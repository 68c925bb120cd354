"""The behaviour every persona shares: credentials, the synthetic label, validated JSON requests."""
from locust import HttpUser

from loadtests import gate, measurements, options  # noqa: F401  (importing registers their listeners)
from loadtests.protocol import SYNTHETIC_HEADER

API = "/api/v1/models"


class TfshipUser(HttpUser):
    """A persona of the tfship API. All its requests carry X-Tfship-Synthetic: 1."""

    abstract = True

    def on_start(self):
        parsed = self.environment.parsed_options
        self.model = parsed.model if parsed else "penguins"
        self.client.headers[SYNTHETIC_HEADER] = "1"
        self.client.headers.update(self.authorization())

    def authorization(self):
        """The persona's Authorization header: the registry key (--api-key-file, else $TFSHIP_API_KEY)."""
        return _bearer(options.read_key(getattr(self.environment.parsed_options, "api_key_file", ""),
                                        "TFSHIP_API_KEY"))

    def get_json(self, path, name, expect=(200,), check=None, **kwargs):
        """GET path; fail the request unless the status is expected and `check(body)` finds nothing wrong."""
        return self.request_json("GET", path, name, expect, check, **kwargs)

    def request_json(self, method, path, name, expect=(200,), check=None, **kwargs):
        """Send a request and validate its answer; return (response, parsed body) or (response, None)."""
        with self.client.request(method, path, name=name, catch_response=True, **kwargs) as response:
            body, problem = self._judge(response, expect, check)
            if problem:
                response.failure(problem)
                return response, None
            response.success()  # an expected 4xx is a pass, not the HTTPError Locust would assume
            return response, body

    @staticmethod
    def _judge(response, expect, check):
        if response.status_code not in expect:
            return None, f"HTTP {response.status_code} (expected {expect}): {response.text[:200]}"
        if response.status_code == 204:
            return {}, None
        try:
            body = response.json()
        except ValueError:
            return None, "the answer is not JSON"
        return body, check(body, response) if check else None


def _bearer(key):
    return {"Authorization": f"Bearer {key}"} if key else {}
