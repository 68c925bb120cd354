"""Registry writers: create a scratch model, edit it under If-Match, add versions, delete it.

Never against prod (the gate leaves this file out there, and the persona refuses too).
Run on its own: locust -f loadtests/registry_writer.py --host http://127.0.0.1:8080
(a key with the admin role in $TFSHIP_API_KEY or --api-key-file).
"""
import uuid

from locust import constant_throughput, task
from locust.exception import StopUser

from loadtests.base import API, TfshipUser

ARTIFACT_URI = "file:///dev/null/tfship-loadtest"  # never served: scratch versions stay staged
SCRATCH_SCHEMA = {"inputs": {"x": {"dtype": "float32", "shape": [-1], "kind": "numeric", "missing": "NaN"}},
                  "outputs": {}, "classes": []}


class RegistryWriter(TfshipUser):
    """A deployer automating the registry, once a second, on a model of its own."""

    wait_time = constant_throughput(1)
    fixed_count = 1

    def on_start(self):
        parsed = self.environment.parsed_options
        if parsed is not None and parsed.target_env == "prod":
            raise StopUser("the registry writer never runs against prod")
        super().on_start()
        self.scratch = f"loadtest-{uuid.uuid4().hex[:12]}"
        self.versions = 0
        self.etag = None
        response, body = self.request_json(
            "POST", API, API, expect=(201,), json={"name": self.scratch, "owner": "loadtest", "tags": ["synthetic"]},
            check=lambda _body, r: None if r.headers.get("Location") else "201 without a Location header")
        if body is not None:
            self.etag = response.headers.get("ETag")

    def on_stop(self):
        if self.etag is not None:
            self.request_json("DELETE", f"{API}/{self.scratch}", f"{API}/[scratch]", expect=(204,))

    @task(3)
    def edit(self):
        """Read the ETag and PATCH with it (must change the ETag), then replay the old ETag (must get 412)."""
        if self.etag is None:
            return
        response, body = self.get_json(f"{API}/{self.scratch}", f"{API}/[scratch]")
        if body is None:
            return
        before = response.headers.get("ETag")
        _, body = self.request_json(
            "PATCH", f"{API}/{self.scratch}", f"{API}/[scratch]", headers={"If-Match": before},
            json={"description": f"edited {uuid.uuid4().hex[:6]}"},
            check=lambda _body, r: None if r.headers.get("ETag") not in (None, before) else "the ETag did not change")
        if body is not None:
            self.request_json("PATCH", f"{API}/{self.scratch}", f"{API}/[scratch] stale", expect=(412,),
                              headers={"If-Match": before}, json={"description": "lost update"})

    @task(2)
    def register_version(self):
        """POST the next version number, staged."""
        if self.etag is None:
            return
        self.versions += 1
        self.request_json("POST", f"{API}/{self.scratch}/versions", f"{API}/[scratch]/versions", expect=(201,),
                          json={"version": self.versions, "artifact_uri": ARTIFACT_URI,
                                "input_schema": SCRATCH_SCHEMA},
                          check=lambda body, _r: None if body.get("status") == "staged" else "not staged")
