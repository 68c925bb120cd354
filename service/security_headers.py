"""Add the standard security headers to every response (an API, so no HTML-oriented defaults).

- ``X-Content-Type-Options: nosniff``: browsers never guess a JSON body is something else.
- ``X-Frame-Options: DENY`` and CSP ``frame-ancestors 'none'``: nothing may frame the API.
- ``Content-Security-Policy: default-src 'none'``: a JSON answer loads nothing. Swagger UI
  (/api/v1/docs) gets a policy that allows its scripts from SWAGGER_UI_URL and nothing else.
- ``Referrer-Policy: no-referrer``.
- ``Cache-Control: no-store`` on every response to a request that carried credentials, so no
  shared cache keeps an authenticated answer.
- ``Strict-Transport-Security`` only when the request came over TLS (gunicorn with a
  certificate, or an ingress that terminates TLS and sends X-Forwarded-Proto from a trusted
  address): sent over plain HTTP it would be ignored, and locally it would pin browsers.

flask-talisman was considered: it targets HTML sites (forced HTTPS redirects, session cookies,
a script-oriented CSP) and would need most of its defaults switched off for a JSON API.
"""
from urllib.parse import urlsplit

from flask import current_app, g, request

from service.settings import Setting

SETTINGS = (
    Setting("HSTS_MAX_AGE_S", 31_536_000, "max-age of Strict-Transport-Security, sent only on "
            "responses to HTTPS requests (0 switches it off)."),
)
API_POLICY = "default-src 'none'; frame-ancestors 'none'"
STATIC_HEADERS = (("X-Content-Type-Options", "nosniff"), ("X-Frame-Options", "DENY"),
                  ("Referrer-Policy", "no-referrer"))
DOCS_PATH = "/api/v1/docs"


def docs_policy(swagger_ui_url):
    """Return the CSP for the Swagger UI page: its scripts and styles, this origin's spec."""
    parts = urlsplit(swagger_ui_url)
    source = f"{parts.scheme}://{parts.netloc}" if parts.netloc else "'self'"
    return (f"default-src 'none'; script-src {source} 'unsafe-inline'; style-src {source} "
            f"'unsafe-inline'; img-src {source} data:; connect-src 'self'; "
            "frame-ancestors 'none'")


def add_security_headers(response):
    """Set the security headers on response (existing values set by a view are kept)."""
    headers = response.headers
    present = {name.lower() for name, _ in headers.items()}  # one pass, not one per header
    req, app = request._get_current_object(), current_app._get_current_object()  # one lookup each
    docs = req.path.startswith(DOCS_PATH)
    for name, value in STATIC_HEADERS:
        if name.lower() not in present:
            headers.add(name, value)
    if "content-security-policy" not in present:
        headers.add("Content-Security-Policy", docs_policy(app.config["SWAGGER_UI_URL"])
                    if docs else API_POLICY)
    environ = req.environ
    if g.get("api_key") is not None or "HTTP_AUTHORIZATION" in environ or \
            "HTTP_X_API_KEY" in environ:
        if "cache-control" in present:
            headers["Cache-Control"] = "no-store"
        else:
            headers.add("Cache-Control", "no-store")
    max_age = int(app.config["HSTS_MAX_AGE_S"])
    if req.is_secure and max_age > 0:
        headers.setdefault("Strict-Transport-Security", f"max-age={max_age}; includeSubDomains")
    return response


def init_app(app):
    """Add the headers to every response, errors included."""
    app.after_request(add_security_headers)
