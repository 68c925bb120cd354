"""Security headers on every response: JSON answers, errors, the docs page, HSTS only over TLS.

Budget: < 1 s (in-process).
"""
from service.security_headers import API_POLICY


def test_json_answers_and_errors_carry_the_standard_headers(client, keys, bearer):
    for response in (client.get("/healthz"), client.get("/api/v1/models"),
                     client.get("/api/v1/models", headers=bearer(keys["reader"])),
                     client.get("/no/such/route")):
        headers = response.headers
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["Referrer-Policy"] == "no-referrer"
        assert headers["Content-Security-Policy"] == API_POLICY
        assert "Strict-Transport-Security" not in headers  # plain HTTP


def test_authenticated_answers_are_never_stored(client, keys, bearer):
    assert client.get("/api/v1/models", headers=bearer(keys["reader"])
                      ).headers["Cache-Control"] == "no-store"
    assert client.get("/api/v1/models", headers={"X-API-Key": "wrong"}
                      ).headers["Cache-Control"] == "no-store"
    assert "no-store" not in client.get("/healthz").headers.get("Cache-Control", "")


def test_hsts_only_over_tls(client):
    secure = client.get("/healthz", base_url="https://api.example")
    assert secure.headers["Strict-Transport-Security"].startswith("max-age=31536000")
    # X-Forwarded-Proto is honoured only from trusted proxies, by gunicorn: not here.
    assert "Strict-Transport-Security" not in client.get(
        "/healthz", headers={"X-Forwarded-Proto": "https"}).headers


def test_the_docs_page_may_load_swagger_ui_and_nothing_else(client):
    policy = client.get("/api/v1/docs").headers["Content-Security-Policy"]
    assert "script-src https://cdn.jsdelivr.net" in policy
    assert "frame-ancestors 'none'" in policy and "default-src 'none'" in policy
