"""Registry readers: browse models, one model, its versions and its rollout state.

Run on its own: locust -f loadtests/registry_reader.py --host http://127.0.0.1:8080 --model penguins
(a reader key in $TFSHIP_API_KEY or --api-key-file).
"""
from locust import constant_throughput, task

from loadtests.base import API, TfshipUser


def _page(body, _response):
    if not isinstance(body.get("items"), list) or not isinstance(body.get("total"), int):
        return "a page needs an items list and a total"
    if len(body["items"]) > body["total"]:
        return f"{len(body['items'])} items but a total of {body['total']}"
    return None


class RegistryReader(TfshipUser):
    """A dashboard or CI job reading the registry, twice a second."""

    wait_time = constant_throughput(2)
    fixed_count = 1

    @task(4)
    def list_models(self):
        self.get_json(f"{API}?per_page=20&sort=-updated_at", f"{API}?[page]", check=_page)

    @task(2)
    def search_models(self):
        self.get_json(f"{API}?name={self.model[:3]}", f"{API}?name=[part]", check=lambda body, r: _page(body, r) or (
            None if any(m.get("name") == self.model for m in body["items"]) else f"{self.model} not found"))

    @task(3)
    def read_model(self):
        self.get_json(f"{API}/{self.model}", f"{API}/[model]", check=lambda body, response: (
            None if body.get("name") == self.model and response.headers.get("ETag") else "wrong model or no ETag"))

    @task(2)
    def list_versions(self):
        self.get_json(f"{API}/{self.model}/versions", f"{API}/[model]/versions", check=_page)

    @task(2)
    def read_rollout(self):
        self.get_json(f"{API}/{self.model}/rollout", f"{API}/[model]/rollout", check=lambda body, _r: (
            None if "stable" in body and 0 <= body.get("canary_weight", -1) <= 1 else "not a rollout state"))
