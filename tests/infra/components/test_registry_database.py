"""The registry database: backups to object storage, and the restore procedure's Cluster.

The restore is a `pulumi up` with databaseRestoreFrom set: the Cluster bootstraps by recovery
from the old server's backups. With no cluster here, the test proves the recovering Cluster
the program declares is what CloudNativePG's schema accepts. Budget: under 2 s.
"""
import runpy

import pytest

pytest.importorskip("pulumi", reason="Pulumi programs are tested in .venv-infra")

from infra import mocked, render, validate  # noqa: E402


def cluster_of(objects):
    return next(o for o in objects if o["kind"] == "Cluster")


def test_backups_go_to_the_object_store_on_a_schedule(objects):
    cluster = cluster_of(objects["prod"])
    store = cluster["spec"]["backup"]["barmanObjectStore"]
    assert store["destinationPath"] == "s3://tfship-backups/prod"
    assert store["s3Credentials"]["accessKeyId"] == {"name": "tfship-object-store", "key": "ACCESS_KEY_ID"}
    assert cluster["spec"]["backup"]["retentionPolicy"] == "30d"
    scheduled = next(o for o in objects["prod"] if o["kind"] == "ScheduledBackup")
    assert scheduled["spec"]["cluster"] == {"name": cluster["metadata"]["name"]}
    assert scheduled["spec"]["schedule"] == "0 0 3 * * *"
    assert cluster["spec"]["bootstrap"] == {"initdb": {"database": "tfship", "owner": "tfship",
                                                       "secret": {"name": "registry-db-app-credentials"}}}


def test_restore_bootstraps_from_the_old_servers_backups(runs):
    restored = mocked.run(lambda: runpy.run_path(str(render.ENVIRONMENT_PROGRAM)), mocked.ENVIRONMENT_PROJECT, "prod",
                          stack_outputs={"organization/tfship-platform/prod": runs["platform/prod"].exports},
                          extra_config={"tfship:databaseRestoreFrom": "registry-db-2026-11"})
    cluster = cluster_of([o for _, o in restored.kubernetes_objects()])
    assert cluster["spec"]["bootstrap"]["recovery"]["source"] == "registry-db-2026-11"
    external = cluster["spec"]["externalClusters"][0]
    assert external["name"] == "registry-db-2026-11"
    assert external["barmanObjectStore"]["serverName"] == "registry-db-2026-11"
    assert external["barmanObjectStore"]["destinationPath"] == "s3://tfship-backups/prod"
    assert validate.object_errors(cluster) == []


def test_api_reads_the_database_url_from_a_mounted_file(objects):
    api = next(o for o in objects["prod"] if o["kind"] == "Deployment" and o["metadata"]["name"] == "api-blue")
    container = api["spec"]["template"]["spec"]["containers"][0]
    assert {"name": "TFSHIP_API_DATABASE_URL_FILE", "value": "/var/run/secrets/tfship/database/url"} in container["env"]
    volume = next(v for v in api["spec"]["template"]["spec"]["volumes"] if v["name"] == "database")
    assert volume["secret"]["secretName"] == "registry-db-url"
