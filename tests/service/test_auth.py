"""API keys and roles: the route/role matrix over every route in the URL map. Budget: ~4 s.

Every route and method either is in OPEN_ROUTES or carries a role (require_role); the
matrix asserts 401 without a key or with a bad one, 403 for every role that does not
grant the route's, and neither for those that do. Routes added later are covered.
"""
import pytest
from werkzeug.routing.converters import NumberConverter

from service import auth

OPEN_ROUTES = {"/healthz", "/readyz", "/metrics", "/api/v1/openapi.json", "/api/v1/docs"}
CHECKED_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def routes(app):
    """Yield (rule, method, url) for every route and method the app serves."""
    adapter = app.url_map.bind("localhost")
    for rule in app.url_map.iter_rules():
        values = {arg: 1 if isinstance(rule._converters[arg], NumberConverter) else "penguins"
                  for arg in rule.arguments}
        url = adapter.build(rule.endpoint, values)
        for method in sorted(set(rule.methods) & set(CHECKED_METHODS)):
            yield rule, method, url


def call(client, method, url, headers=None):
    body = {} if method in ("POST", "PUT", "PATCH") else None
    return client.open(url, method=method, json=body, headers=headers or {})


def test_every_route_is_open_or_has_a_role(app):
    seen = set()
    for rule, method, _url in routes(app):
        role = auth.required_role_of(app.view_functions[rule.endpoint], method)
        if rule.rule in OPEN_ROUTES:
            assert role is None, f"{method} {rule.rule} is listed open but requires {role}"
        else:
            assert role in auth.GRANTS, f"{method} {rule.rule} has no require_role()"
        seen.add(rule.rule)
    assert OPEN_ROUTES <= seen
    assert "/api/v1/models/<name>:predict" in seen, "the gateway's routes are registered"


def test_route_role_matrix(app, client, keys, bearer):
    checked = 0
    for rule, method, url in routes(app):
        if rule.rule in OPEN_ROUTES:
            assert call(client, method, url).status_code not in (401, 403), url
            continue
        required = auth.required_role_of(app.view_functions[rule.endpoint], method)
        no_key = call(client, method, url)
        assert no_key.status_code == 401, f"{method} {rule.rule} without a key: {no_key.status_code}"
        assert no_key.json["error"]["code"] == "unauthorized"
        assert no_key.headers["WWW-Authenticate"].startswith("Bearer")
        forged = call(client, method, url, bearer(f"tfs_{'0' * 12}_{'A' * 43}"))
        assert forged.status_code == 401, f"{method} {rule.rule} with an unknown key"
        for role, key in keys.items():
            answer = call(client, method, url, bearer(key))
            if auth.grants(role, required):
                assert answer.status_code not in (401, 403), (method, rule.rule, role, answer.json)
            else:
                assert answer.status_code == 403, (method, rule.rule, role, answer.status_code)
                assert answer.json["error"]["details"] == {"required_role": required,
                                                           "key_role": role}
        checked += 1
    assert checked >= 12


def test_roles_nest_and_predictor_stands_apart():
    assert auth.grants("admin", "deployer") and auth.grants("admin", "reader")
    assert auth.grants("deployer", "reader") and not auth.grants("deployer", "admin")
    assert not auth.grants("reader", "deployer")
    assert not any(auth.grants(role, "predictor") for role in ("reader", "deployer", "admin"))
    assert not auth.grants("predictor", "reader")


@pytest.mark.parametrize("header", [
    {"Authorization": "Bearer"},
    {"Authorization": "Basic dXNlcjpwYXNz"},
    {"Authorization": "Bearer not-a-key"},
    {"X-API-Key": "tfs_short"},
])
def test_malformed_credentials_get_401(client, header):
    answer = client.get("/api/v1/models", headers=header)
    assert answer.status_code == 401 and answer.json["error"]["field"] == "Authorization"


def test_x_api_key_header_is_accepted(client, keys):
    assert client.get("/api/v1/models", headers={"X-API-Key": keys["reader"]}).status_code == 200


def test_a_tampered_key_with_a_real_prefix_gets_401(client, keys, bearer):
    key = keys["admin"]
    tampered = key[:-1] + ("A" if key[-1] != "A" else "B")
    assert client.get("/api/v1/models", headers=bearer(tampered)).status_code == 401


def test_keys_are_stored_as_hmac_digests_only(app):
    from service import db, keys
    from service.tables import ApiKey
    with app.app_context():
        key, row = keys.create_key("digest check", "reader")
        stored = db.session().get(ApiKey, row.id)
        assert key not in (stored.digest, stored.prefix, stored.name)
        assert stored.digest == auth.digest(app.extensions[auth.SECRET_EXTENSION], key)
        assert len(stored.digest) == 64 and key.startswith(f"tfs_{stored.prefix}_")


def test_revoked_key_is_refused_after_the_cache_ttl(sqlite_url, app_factory, bearer):
    from service import keys as key_admin
    app = app_factory(sqlite_url, KEY_CACHE_TTL_S=0)
    with app.app_context():
        key, row = key_admin.create_key("to revoke", "reader")
    client = app.test_client()
    assert client.get("/api/v1/models", headers=bearer(key)).status_code == 200
    with app.app_context():
        key_admin.revoke_key(row.prefix)
    assert client.get("/api/v1/models", headers=bearer(key)).status_code == 401


def test_a_cached_key_survives_a_database_outage(tmp_path, app_factory, bearer):
    from service import keys as key_admin, migrate
    url = f"sqlite:///{tmp_path / 'outage.sqlite3'}"
    migrate.upgrade(url)
    app = app_factory(url, KEY_CACHE_TTL_S=0, KEY_CACHE_STALE_S=600)
    with app.app_context():
        key, _ = key_admin.create_key("cached", "predictor")
        other, _ = key_admin.create_key("never used", "predictor")
    client = app.test_client()
    predict = "/api/v1/models/penguins:predict"
    assert client.post(predict, json={}, headers=bearer(key)).status_code not in (401, 403)
    (tmp_path / "outage.sqlite3").unlink()
    for suffix in ("-wal", "-shm"):
        (tmp_path / f"outage.sqlite3{suffix}").unlink(missing_ok=True)
    (tmp_path / "outage.sqlite3").mkdir()  # the database can no longer be opened
    from service import db
    db.engine(app).dispose()
    assert client.post(predict, json={}, headers=bearer(key)).status_code not in (401, 403)
    unknown = client.post(predict, json={}, headers=bearer(other))
    assert unknown.status_code == 503 and unknown.json["error"]["code"] == "database_unavailable"
