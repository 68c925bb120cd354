"""Require a JSON object as the body of every POST, PUT and PATCH under /api/.

415 when the Content-Type is not JSON, 400 when the body is not valid JSON or not an
object; semantically invalid objects are left to each route's schema (422).
"""
from flask import request
from flask.json.provider import DefaultJSONProvider

from service import json_codec
from service.errors import BadRequest, UnsupportedMediaType

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
JSON_TYPES = {list: "array", str: "string", int: "number", float: "number", bool: "boolean"}


class JsonProvider(DefaultJSONProvider):
    """Flask's JSON, parsing request bodies with orjson (service.json_codec: same bodies accepted)."""

    def loads(self, s, **kwargs):
        return json_codec.loads(s) if not kwargs else super().loads(s, **kwargs)


def require_json_object():
    """Reject a non-JSON or malformed request body before any view runs."""
    if request.method not in BODY_METHODS or not request.path.startswith("/api/"):
        return
    if request.url_rule is None:
        return  # 404/405 come from routing
    if not request.is_json:
        got = f"got {request.mimetype!r}" if request.mimetype else "got no Content-Type"
        raise UnsupportedMediaType(
            f"the body must be JSON (Content-Type: application/json); {got}", field="Content-Type")
    if not request.get_data(cache=True):
        raise BadRequest("the request body is empty; send a JSON object", field="body")
    body = request.get_json(silent=True)
    if body is None:
        raise BadRequest("the request body is not valid JSON", field="body")
    if not isinstance(body, dict):
        raise BadRequest(f"the request body must be a JSON object, not a JSON "
                         f"{JSON_TYPES.get(type(body), 'value')}", field="body")


def init_app(app):
    """Check request bodies before every view."""
    app.before_request(require_json_object)
