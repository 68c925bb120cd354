"""TF Serving's generated config files and object-store wiring. Budget: under 1 s."""
import pytest

pytest.importorskip("pulumi", reason="Pulumi programs are tested in .venv-infra")

from infra.components import model_server  # noqa: E402
from infra.components.rate_limit_store import maxmemory  # noqa: E402


@pytest.mark.parametrize("uri, endpoint, remote", [
    ("s3://bucket/models/penguins", "", ":s3,env_auth=true,provider=AWS:bucket/models/penguins"),
    ("s3://bucket/m", "https://minio.example:9000", ":s3,env_auth=true,provider=Other,endpoint=https://minio.example:9000:bucket/m"),
    ("gs://bucket/m", "", ":gcs,env_auth=true:bucket/m"),
])
def test_rclone_remote(uri, endpoint, remote):
    assert model_server.rclone_remote(uri, endpoint) == remote


@pytest.mark.parametrize("quantity, expected", [("256Mi", str(int(256 * 2**20 * 0.8))), ("1Gi", str(int(2**30 * 0.8)))])
def test_redis_stays_under_its_memory_limit(quantity, expected):
    assert maxmemory(quantity) == expected


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_volume_source_fetches_before_serving_and_keeps_syncing(objects, stack):
    deployment = next(o for o in objects[stack] if o["kind"] == "Deployment" and o["metadata"]["name"] == "model-server")
    spec = deployment["spec"]["template"]["spec"]
    assert [c["name"] for c in spec["initContainers"]] == ["fetch-models"]
    assert [c["name"] for c in spec["containers"]] == ["tfserving", "sync-models"]
    assert "rclone sync" in spec["initContainers"][0]["command"][2]
    server = spec["containers"][0]
    assert {"name": "AWS_SHARED_CREDENTIALS_FILE", "value": "/var/run/secrets/tfship/object-store/credentials"} in server["env"]
    assert any(m["mountPath"] == model_server.MODELS_DIR and m["readOnly"] for m in server["volumeMounts"])


@pytest.mark.parametrize("stack, threads", [("dev", 1), ("prod", 2)])  # 500m and "2" requested
def test_tensorflow_threads_follow_the_cpu_request_not_the_nodes_cores(objects, stack, threads):
    deployment = next(o for o in objects[stack] if o["kind"] == "Deployment" and o["metadata"]["name"] == "model-server")
    server = deployment["spec"]["template"]["spec"]["containers"][0]
    assert f"--tensorflow_session_parallelism={threads}" in server["args"]
