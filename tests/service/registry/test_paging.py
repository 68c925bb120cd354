"""Paging, filters and sorting over 10,000 models, on SQLite and PostgreSQL. Budget: ~10 s.

The models are bulk-inserted once per database (Core executemany) with known owners, tags
and version statuses, so every expected answer is computed here independently.
"""
import datetime as dt

import pytest
import sqlalchemy as sa

COUNT = 10_000
OWNERS = ("ana", "ben", "chloe", "dev", "eli", "fay", "gus")
START = dt.datetime(2026, 1, 1)


def dataset():
    """Return [(name, owner, tags, version status or None)] of the registry under test."""
    rows = []
    for index in range(COUNT):
        tags = ["even" if index % 2 == 0 else "odd", f"mod3-{index % 3}"]
        status = "stable" if index % 50 == 0 else ("staged" if index % 7 == 0 else None)
        rows.append((f"model-{index:05d}", OWNERS[index % len(OWNERS)], tags, status))
    return rows


def bulk_insert(app, rows):
    from service import db
    from service.tables import ModelTag, ModelVersion, RegisteredModel, Rollout
    with db.engine(app).begin() as connection:
        connection.execute(sa.insert(RegisteredModel), [
            {"name": name, "description": "", "owner": owner, "revision": 1,
             "created_at": START + dt.timedelta(seconds=index),
             "updated_at": START + dt.timedelta(seconds=COUNT - index)}
            for index, (name, owner, _tags, _status) in enumerate(rows)])
        ids = dict(connection.execute(sa.select(RegisteredModel.name, RegisteredModel.id)).all())
        connection.execute(sa.insert(ModelTag), [
            {"model_id": ids[name], "tag": tag} for name, _owner, tags, _status in rows for tag in tags])
        connection.execute(sa.insert(Rollout), [
            {"model_id": ids[name], "stable_version": 1 if status == "stable" else None,
             "canary_weight": 0.0, "revision": 1, "updated_at": START}
            for name, _owner, _tags, status in rows])
        connection.execute(sa.insert(ModelVersion), [
            {"model_id": ids[name], "version": 1, "status": status, "artifact_uri": "file:///m",
             "metrics": {}, "input_schema": {}, "feature_statistics": {}, "revision": 1,
             "created_at": START, "updated_at": START}
            for name, _owner, _tags, status in rows if status])


@pytest.fixture(scope="module")
def registry(any_database_url, build_app, keys_for, empty_and_close):
    """(client, reader headers, dataset) over a registry of 10,000 models."""
    app = build_app(any_database_url)
    rows = dataset()
    bulk_insert(app, rows)
    key = keys_for(app)["reader"]
    yield app.test_client(), {"Authorization": f"Bearer {key}"}, rows
    empty_and_close(app)


def names(page):
    return [item["name"] for item in page["items"]]


def walk(client, headers, url):
    """Follow next links from url; return every name and the number of pages read."""
    seen, pages = [], 0
    while url:
        page = client.get(url, headers=headers)
        assert page.status_code == 200, page.json
        seen.extend(names(page.json))
        pages += 1
        url = page.json["links"].get("next")
    return seen, pages


def test_pages_of_everything(registry):
    client, headers, rows = registry
    first = client.get("/api/v1/models?per_page=100", headers=headers).json
    assert (first["total"], first["pages"], first["page"]) == (COUNT, 100, 1)
    assert names(first) == [row[0] for row in rows[:100]]
    assert "prev" not in first["links"] and first["links"]["next"].endswith("page=2")
    last = client.get(first["links"]["last"], headers=headers).json
    assert last["page"] == 100 and names(last) == [row[0] for row in rows[-100:]]
    assert "next" not in last["links"]
    back = client.get(last["links"]["prev"], headers=headers).json
    assert names(back) == [row[0] for row in rows[-200:-100]]
    beyond = client.get("/api/v1/models?per_page=100&page=101", headers=headers).json
    assert beyond["items"] == [] and beyond["total"] == COUNT
    default = client.get("/api/v1/models", headers=headers).json
    assert default["per_page"] == 20 and len(default["items"]) == 20


def test_walking_a_filter_returns_each_match_once(registry):
    client, headers, rows = registry
    expected = [name for name, owner, _tags, _status in rows if owner == "ana"]
    seen, pages = walk(client, headers, "/api/v1/models?owner=ana&per_page=100")
    assert seen == expected and pages == -(-len(expected) // 100)


@pytest.mark.parametrize("query, keep", [
    ("name=-012", lambda name, owner, tags, status: "-012" in name),
    ("name=MODEL-0999", lambda name, owner, tags, status: "model-0999" in name),
    ("name=%25", lambda name, owner, tags, status: False),
    ("name=_", lambda name, owner, tags, status: False),
    ("tag=even&tag=mod3-0", lambda name, owner, tags, status: {"even", "mod3-0"} <= set(tags)),
    ("tag=absent", lambda name, owner, tags, status: False),
    ("status=stable", lambda name, owner, tags, status: status == "stable"),
    ("status=staged&owner=ben", lambda name, owner, tags, status: status == "staged" and owner == "ben"),
    ("status=stable&tag=odd", lambda name, owner, tags, status: status == "stable" and "odd" in tags),
])
def test_filters(registry, query, keep):
    client, headers, rows = registry
    expected = [row[0] for row in rows if keep(*row)]
    page = client.get(f"/api/v1/models?{query}&per_page=100", headers=headers).json
    assert page["total"] == len(expected), query
    assert names(page) == expected[:100], query
    assert page["links"]["self"].startswith("/api/v1/models?")


@pytest.mark.parametrize("sort, expected_first", [
    ("-name", lambda rows: [r[0] for r in reversed(rows)]),
    ("created_at", lambda rows: [r[0] for r in rows]),
    ("-created_at", lambda rows: [r[0] for r in reversed(rows)]),
    ("updated_at", lambda rows: [r[0] for r in reversed(rows)]),
    ("owner", lambda rows: [r[0] for r in sorted(rows, key=lambda r: r[1])]),  # stable: by id
    ("-owner", lambda rows: [r[0] for r in sorted(reversed(rows), key=lambda r: r[1], reverse=True)]),
])
def test_sorting(registry, sort, expected_first):
    client, headers, rows = registry
    page = client.get(f"/api/v1/models?sort={sort}&per_page=50&page=3", headers=headers).json
    assert names(page) == expected_first(rows)[100:150], sort


def test_links_keep_the_filters(registry):
    client, headers, _rows = registry
    page = client.get("/api/v1/models?tag=odd&sort=-name&per_page=10", headers=headers).json
    following = client.get(page["links"]["next"], headers=headers).json
    assert following["page"] == 2 and following["total"] == page["total"] == COUNT // 2
    assert names(following)[0] < names(page)[-1]
