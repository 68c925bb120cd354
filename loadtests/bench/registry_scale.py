"""Registry at scale: 100,000 models with a version each; a filtered list page through the API.

The tables are filled with SQLAlchemy core (executemany in chunks): the API's ORM would take
minutes for 100,000 rows, and only the read path is measured. Page 50 is read twice: by page
number (``page=50``, OFFSET) and by cursor (the ``links.next`` reached from page 1); both carry
the total count.
"""
import datetime
import os
import time

import sqlalchemy as sa

from loadtests.bench import arithmetic, measure, servers

OWNERS = 10        # model i belongs to team-(i % 10)
STABLE_EVERY = 3   # model i has a stable version when i % 3 == 0 (else staged)
TAGS = 20
FILTERS = {"owner": "team-03", "status": "stable"}
PER_PAGE, PAGE = 50, 50
CHUNK = 10_000


def expected_total(models):
    """Models the FILTERS match: owner team-03 and a stable version."""
    return sum(1 for i in range(1, models + 1) if i % OWNERS == 3 and i % STABLE_EVERY == 0)


def query(models):
    """The list query: FILTERS, PER_PAGE, and page PAGE (or the last full page for a smaller registry)."""
    return dict(FILTERS, per_page=PER_PAGE, page=max(1, min(PAGE, expected_total(models) // PER_PAGE)))


def seed(url, models):
    """Migrate the database at `url` and fill it with `models` models, versions and tags; return
    the table pages left not all-visible (settle(); 0 on SQLite)."""
    from service import migrate
    from service.tables import ModelTag, ModelVersion, RegisteredModel, Rollout

    migrate.upgrade(url)
    engine = sa.create_engine(url)
    now = datetime.datetime.now(datetime.timezone.utc)
    try:
        with engine.begin() as connection:
            for first in range(1, models + 1, CHUNK):
                ids = range(first, min(first + CHUNK, models + 1))
                connection.execute(sa.insert(RegisteredModel.__table__), [
                    {"id": i, "name": f"model-{i:06d}", "description": "", "owner": f"team-{i % OWNERS:02d}",
                     "created_at": now, "updated_at": now, "revision": 1} for i in ids])
                connection.execute(sa.insert(ModelVersion.__table__), [
                    {"id": i, "model_id": i, "version": 1,
                     "status": "stable" if i % STABLE_EVERY == 0 else "staged",
                     "artifact_uri": f"file:///models/model-{i:06d}/1", "metrics": {"accuracy": 0.9},
                     "input_schema": {}, "feature_statistics": {}, "created_at": now, "updated_at": now,
                     "revision": 1} for i in ids])
                connection.execute(sa.insert(ModelTag.__table__), [
                    {"model_id": i, "tag": f"tag-{i % TAGS:02d}"} for i in ids])
                connection.execute(sa.insert(Rollout.__table__), [
                    {"model_id": i, "stable_version": 1 if i % STABLE_EVERY == 0 else None,
                     "canary_weight": 0.0, "updated_at": now, "revision": 1} for i in ids])
        if engine.dialect.name == "postgresql":
            return settle(engine)
        with engine.begin() as connection:
            connection.execute(sa.text("ANALYZE"))
        return 0
    finally:
        engine.dispose()


_NOT_ALL_VISIBLE = sa.text(
    "SELECT coalesce(sum(relpages - relallvisible), 0) FROM pg_class "
    "WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace")


def settle(engine, timeout_s=60):
    """VACUUM ANALYZE the loaded PostgreSQL database until it is as autovacuum leaves it once
    settled: every table page all-visible, so a count reads an index alone (index-only scan).

    One VACUUM right after the load left most pages not all-visible, a VACUUM a moment later
    marked them (likely the load's commit not yet flushed under the bench server's
    synchronous_commit=off, so VACUUM could not yet mark its rows committed): each list request
    then read 834 table pages for its count. Later VACUUMs skip the pages already done. Returns
    the pages left not all-visible (0 once settled).
    """
    deadline = time.monotonic() + timeout_s
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        while True:
            connection.execute(sa.text("VACUUM ANALYZE"))
            left = connection.execute(_NOT_ALL_VISIBLE).scalar_one()
            if not left or time.monotonic() > deadline:
                return left
            time.sleep(0.5)


def list_statement(models):
    """The API's own statement for the list query, built by its code, and its parameters: the
    page (its keys found in the sort's index, joined to the models, rollouts and tags) with the
    total beside it."""
    from service.registry import models as model_views
    from service.registry import paging

    chosen = query(models)
    shape = model_views.ListShape(status=True, owner=True, name=False, tags=0, sort="name")
    page, _count = model_views.list_statements(shape, paging.PAGE)
    params = dict(model_views.list_params(None, (), chosen["owner"], chosen["status"]),
                  **{paging.LIMIT: PER_PAGE, paging.OFFSET: (chosen["page"] - 1) * PER_PAGE})
    return page, params


def database_only(url, models, calls=50):
    """The list's statement straight on the database, no API: ms per call.

    The same statement the API runs (in autocommit, as the API reads), built by the API's own
    code: separates the database's share of the API's latency from the API's own (auth,
    parsing, JSON, HTTP).
    """
    page, params = list_statement(models)
    engine = sa.create_engine(url)
    durations = []
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            for _ in range(calls + 1):
                started = time.perf_counter()
                rows = connection.execute(page, params).all()
                durations.append(1000 * (time.perf_counter() - started))
    finally:
        engine.dispose()
    total = rows[0].total if rows else None
    if total != expected_total(models) or len({row.sort_id for row in rows}) != PER_PAGE:
        raise AssertionError(f"unexpected database answer: total {total}, {len(rows)} rows")
    durations = durations[1:]  # the first call warms the connection and the statement cache
    return {"calls": calls, "p50_ms": round(arithmetic.percentile(durations, 50), 3),
            "p99_ms": round(arithmetic.percentile(durations, 99), 3)}


# Indexes to try on the scratch database only, before proposing them as a migration. Empty:
# the ones this tried last (versions by status, models by owner and name) grew into migration
# 0004 (model_statuses and the list's indexes).
CANDIDATE_INDEXES = ()


def with_candidate_indexes(url, models):
    """database_only() again after adding CANDIDATE_INDEXES: what an index change would buy."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as connection:
            for statement in CANDIDATE_INDEXES:
                connection.execute(sa.text(statement))
            connection.execute(sa.text("ANALYZE"))
    finally:
        engine.dispose()
    return dict(database_only(url, models), indexes=list(CANDIDATE_INDEXES))


def cursor_url(base_url, chosen, headers):
    """The URL of page chosen["page"] reached by cursor: follow links.next from the first page."""
    params = {k: v for k, v in chosen.items() if k != "page"}
    url = f"{base_url}/api/v1/models?" + "&".join(f"{k}={v}" for k, v in params.items()) + "&cursor="
    for _ in range(chosen["page"] - 1):
        url = base_url + servers.get_json(url, timeout=10, headers=headers)["links"]["next"]
    return url


def measure_list(database_url, root, models, seconds, database_pid=None):
    """Seed, start the API on the database, check the answer, then wrk the list at c=1."""
    unsettled_pages = seed(database_url, models)
    database = database_only(database_url, models)
    env = dict(os.environ, TFSHIP_API_DATABASE_URL=database_url, TFSHIP_API_DATA_DIR=str(root))
    key = servers.tfship("keys", "create", "--role", "reader", "--name", "bench", env=env).strip()
    port = servers.free_port()
    api = servers.api(port, env, root / "api.log")
    try:
        url = f"http://127.0.0.1:{port}"
        api.wait_ready(lambda: servers.api_ready(url))
        chosen = query(models)
        list_url = f"{url}/api/v1/models?" + "&".join(f"{k}={v}" for k, v in chosen.items())
        headers = {"Authorization": f"Bearer {key}"}
        page = servers.get_json(list_url, timeout=10, headers=headers)
        if page["total"] != expected_total(models) or len(page["items"]) != PER_PAGE:
            raise AssertionError(f"unexpected page: total {page['total']}, {len(page['items'])} items")
        by_cursor = cursor_url(url, chosen, headers)
        same = servers.get_json(by_cursor, timeout=10, headers=headers)
        if same["items"] != page["items"] or same["total"] != page["total"]:
            raise AssertionError("page 50 by cursor differs from page 50 by number")
        measure.run(list_url, seconds=1, pids={}, authorization=f"Bearer {key}")
        pids = {"api": api.pid, **({"database": database_pid} if database_pid else {})}
        idle = measure.idle_rates(pids, 0.5)
        run = measure.run(list_url, seconds=seconds, pids=pids, authorization=f"Bearer {key}", idle=idle)
        cursor_run = measure.run(by_cursor, seconds=seconds, pids=pids, authorization=f"Bearer {key}",
                                 idle=idle)
    finally:
        api.stop()
    return dict(run, total=page["total"], query=chosen, models=models, database_only=database,
                unsettled_pages=unsettled_pages,
                database_only_with_indexes=with_candidate_indexes(database_url, models),
                cursor=dict(cursor_run, url=by_cursor[len(url):]))
