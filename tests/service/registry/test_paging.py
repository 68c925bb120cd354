"""Paging (by page number and by cursor), filters and sorting over 10,000 models, on SQLite
and PostgreSQL. Budget: ~15 s.

The models are bulk-inserted once per database (Core executemany) with known owners, tags
and version statuses, so every expected answer is computed here independently.
"""
import base64
import datetime as dt
import json

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


def _cursor(data):
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def _cursor_after_everything():
    return _cursor({"s": "name", "d": "after", "k": ["zzz", 2 ** 31 - 1]})


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
    ("name=%2F", lambda name, owner, tags, status: False),  # the LIKE escape character, as text
    ("name=%2F-", lambda name, owner, tags, status: False),
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


# --- cursor paging --------------------------------------------------------------------------

def walk_back(client, headers, url):
    """Follow prev links from url; return every name, in list order."""
    pages = []
    while url:
        page = client.get(url, headers=headers)
        assert page.status_code == 200, page.json
        pages.insert(0, names(page.json))
        url = page.json["links"].get("prev")
    return [name for page in pages for name in page]


@pytest.mark.parametrize("query, keep, key", [
    ("owner=ana", lambda name, owner, tags, status: owner == "ana", None),
    ("status=stable&sort=-name", lambda name, owner, tags, status: status == "stable", "-name"),
    ("status=staged&owner=ana", lambda name, owner, tags, status: status == "staged" and owner == "ana",
     None),
    ("tag=mod3-1&sort=-created_at", lambda name, owner, tags, status: "mod3-1" in tags, "-name"),
    ("status=stable&sort=updated_at", lambda name, owner, tags, status: status == "stable", "-name"),
    ("sort=owner&tag=odd&tag=mod3-0", lambda name, owner, tags, status: {"odd", "mod3-0"} <= set(tags),
     "owner"),
])
def test_a_cursor_walk_returns_each_match_once_in_order_and_back(registry, query, keep, key):
    client, headers, rows = registry
    matching = [row for row in rows if keep(*row)]
    if key == "owner":  # ties broken by id, which follows the dataset's order
        matching = sorted(matching, key=lambda row: row[1])
    expected = [row[0] for row in (reversed(matching) if key == "-name" else matching)]
    first = client.get(f"/api/v1/models?{query}&per_page=70&cursor=", headers=headers).json
    assert first["page"] is None and first["total"] == len(expected) and "prev" not in first["links"]
    assert first["links"]["first"].endswith("page=1") and "cursor=" in first["links"]["next"]
    seen, pages = walk(client, headers, first["links"]["self"])
    assert seen == expected and pages == -(-len(expected) // 70)
    by_number = client.get(f"/api/v1/models?{query}&per_page=70&page=2", headers=headers).json
    second = client.get(first["links"]["next"], headers=headers).json
    assert names(second) == names(by_number) and second["total"] == by_number["total"]
    last_by_cursor = client.get(first["links"]["self"], headers=headers).json
    while "next" in last_by_cursor["links"]:
        last_by_cursor = client.get(last_by_cursor["links"]["next"], headers=headers).json
    assert walk_back(client, headers, last_by_cursor["links"]["self"]) == expected


@pytest.mark.parametrize("query, total", [
    ("cursor=" + _cursor_after_everything(), COUNT),
    ("owner=ana&cursor=" + _cursor_after_everything(), len(range(0, COUNT, len(OWNERS)))),
    ("tag=absent&cursor=", 0),
    ("status=stable&owner=nobody&page=1", 0),
])
def test_an_empty_page_still_carries_the_total(registry, query, total):
    client, headers, _rows = registry
    page = client.get(f"/api/v1/models?{query}", headers=headers).json
    assert page["items"] == [] and page["total"] == total, query


def test_a_cursor_page_stays_in_place_when_models_are_added_before_it(registry, keys_for):
    client, headers, rows = registry
    ana = [row[0] for row in rows if row[1] == "ana"]
    first = client.get("/api/v1/models?owner=ana&per_page=100&cursor=", headers=headers).json
    by_number = client.get("/api/v1/models?owner=ana&per_page=100&page=1", headers=headers).json
    deployer = {"Authorization": f"Bearer {keys_for(client.application)['deployer']}"}
    added = ["model-00000-new", "model-00001-new", "model-99999-new"]  # two before, one after
    for name in added:
        assert client.post("/api/v1/models", json={"name": name, "owner": "ana"},
                           headers=deployer).status_code == 201
    try:
        rest, _pages = walk(client, headers, first["links"]["next"])
        assert names(first) + rest == ana + ["model-99999-new"]
        shifted = client.get(by_number["links"]["next"], headers=headers).json
        assert names(shifted)[0] == names(by_number)[-2]  # page numbers shift: a repeat
        back = client.get(client.get(first["links"]["next"], headers=headers).json["links"]["prev"],
                          headers=headers).json
        # The page before the cursor ends at the same boundary and now holds the new models.
        assert len(names(back)) == 100 and names(back)[-1] == ana[99]
        assert names(back)[0] == "model-00001-new"  # 102 lie before it now: the last 100
        before = client.get(back["links"]["prev"], headers=headers).json
        assert names(before) == ["model-00000", "model-00000-new"] and "prev" not in before["links"]
    finally:
        delete_models(registry, added)


def delete_models(registry, names_):
    from service import db
    from service.tables import RegisteredModel
    client, _headers, _rows = registry
    with db.engine(client.application).begin() as connection:
        connection.execute(sa.delete(RegisteredModel).where(RegisteredModel.name.in_(names_)))




@pytest.mark.parametrize("query, message", [
    ("cursor=not-a-cursor!", "not valid"),
    ("cursor=" + _cursor([1, 2]), "not valid"),
    ("cursor=" + _cursor({"s": "name", "d": "after", "k": [5, 1]}), "not valid"),
    ("cursor=" + _cursor({"s": "name", "d": "sideways", "k": ["a", 1]}), "not valid"),
    ("cursor=" + _cursor({"s": "name", "d": "after", "k": ["a", "1"]}), "not valid"),
    ("sort=created_at&cursor=" + _cursor({"s": "created_at", "d": "after", "k": ["2026-01-01", 1]}),
     "not valid"),
    ("sort=created_at&cursor=" + _cursor({"s": "created_at", "d": "after", "k": ["yesterday", 1]}),
     "not valid"),
    ("sort=-name&cursor=" + _cursor({"s": "name", "d": "after", "k": ["a", 1]}), "sort=name"),
    ("page=2&cursor=", "either page or cursor"),
])
def test_a_bad_cursor_gets_400_json(registry, query, message):
    client, headers, _rows = registry
    answer = client.get(f"/api/v1/models?{query}", headers=headers)
    assert answer.status_code == 400, answer.json
    assert answer.json["error"]["code"] == "bad_request" and answer.json["error"]["field"] == "cursor"
    assert message in answer.json["error"]["message"]


def test_the_status_listing_matches_the_versions(registry):
    """model_statuses (kept by triggers) holds exactly what the versions say, after a bulk load."""
    from service import db
    client, _headers, _rows = registry
    with db.engine(client.application).connect() as connection:
        kept = set(connection.execute(sa.text(
            "SELECT model_id, status, owner, name, versions FROM model_statuses")).all())
        derived = set(connection.execute(sa.text(
            "SELECT m.id, v.status, m.owner, m.name, count(*) FROM model_versions v JOIN models m "
            "ON m.id = v.model_id GROUP BY m.id, v.status, m.owner, m.name")).all())
    assert kept == derived and len(kept) > 0
