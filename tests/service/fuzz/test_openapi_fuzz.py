"""Schemathesis against the served OpenAPI document (/api/v1/openapi.json), in-process (WSGI).

Every operation, with a valid key of each role, in three kinds of cases: schema-valid data on a
model that exists (serving version 1, so predictions reach a real HTTP upstream), schema-valid
data with generated path parameters, and schema-breaking data (which must get a 4xx). At least
1,000 cases; the checks: no 5xx, every status code and header documented, every body matching
its documented schema and content type, bad data rejected.

Budget: ~45 s (about 1,150 cases, no shrinking; one upstream HTTP server in a thread).
"""
import collections

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given
from schemathesis import GenerationMode
from schemathesis.checks import (content_type_conformance, negative_data_rejection,
                                 not_a_server_error, response_headers_conformance,
                                 response_schema_conformance, status_code_conformance)

from tests.service.conftest import ROLES, make_version_body
from tests.service.gateway_conftest import FaultServer

KNOWN = "fuzzed"
EXAMPLES_PER_KIND = 6
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance, negative_data_rejection]
KINDS = {"known model": (GenerationMode.POSITIVE, {"name": KNOWN, "version": 1}),
         "generated": (GenerationMode.POSITIVE, None),
         "schema-breaking": (GenerationMode.NEGATIVE, None)}


def seed(client, headers):
    """Make sure model KNOWN exists with version 1 as its stable version (cases may change it)."""
    if client.get(f"/api/v1/models/{KNOWN}", headers=headers).status_code == 404:
        client.post("/api/v1/models", json={"name": KNOWN}, headers=headers)
    client.post(f"/api/v1/models/{KNOWN}/versions", json=make_version_body(1), headers=headers)
    rollout = client.get(f"/api/v1/models/{KNOWN}/rollout", headers=headers)
    if rollout.status_code == 200 and rollout.get_json().get("stable") != 1:
        client.put(f"/api/v1/models/{KNOWN}/rollout", json={"stable": 1},
                   headers={**headers, "If-Match": rollout.headers["ETag"]})


@pytest.fixture(scope="module")
def fuzz_app(sqlite_url, data_dir, fault_server):
    from tests.service.conftest import close_app, make_app
    app = make_app(sqlite_url, data_dir, MODEL_SERVER_URL=fault_server.url,
                   RATELIMIT_PER_KEY="1000000 per minute")
    yield app
    close_app(app)


@pytest.fixture(scope="module")
def fault_server():
    """One TF-Serving-shaped upstream (a real HTTP server) for every case."""
    server = FaultServer()
    yield server
    server.close()


ROW = {"island": "Torgersen", "sex": "female", "bill_length_mm": 39.1, "bill_depth_mm": 18.7,
       "flipper_length_mm": 181.0, "body_mass_g": 3750.0}


def run_operation(operation, mode, path_parameters, headers, before_each, counter):
    fixed = {}
    if path_parameters and operation.path.endswith(":predict"):
        fixed["body"] = {"instances": [ROW]}  # valid, so predictions reach the upstream
    strategy = operation.as_strategy(generation_mode=mode, path_parameters=path_parameters,
                                     **fixed)

    @hypothesis.settings(max_examples=EXAMPLES_PER_KIND, phases=[Phase.generate], database=None,
                         deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def one_case(case):
        before_each()
        response = case.call_and_validate(headers=headers, checks=CHECKS)
        counter.append((case.operation.method.upper(), case.operation.path, response.status_code))

    one_case()


def test_no_5xx_and_no_schema_breaking_response(fuzz_app, keys_for):
    role_keys = keys_for(fuzz_app)
    client = fuzz_app.test_client()
    admin = {"Authorization": f"Bearer {role_keys['admin']}"}
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", fuzz_app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    cases, failures = [], []
    for role in ROLES:
        headers = {"Authorization": f"Bearer {role_keys[role]}"}
        for operation in operations:
            for kind, (mode, path_parameters) in KINDS.items():
                parameters = ({name: value for name, value in path_parameters.items()
                               if f"{{{name}}}" in operation.path} if path_parameters else None)
                before = (lambda: seed(client, admin)) if parameters else (lambda: None)
                try:
                    run_operation(operation, mode, parameters, headers, before, cases)
                except Exception as exc:  # collect every operation's failure, then report all
                    failures.append(f"{role} {operation.method.upper()} {operation.path} "
                                    f"({kind}): {exc}")

    assert not failures, "\n\n".join(failures)[:20000]
    assert len(cases) >= 1000, len(cases)
    statuses = {status for _, _, status in cases}
    # The cases reach past authentication and validation: successes and upstream answers too.
    assert {200, 201, 400, 403, 404}.issubset(statuses), sorted(statuses)
    assert any(path.endswith(":predict") and status == 200 for _, path, status in cases)
    print(f"{len(cases)} cases, statuses {collections.Counter(s for _, _, s in cases)}")
