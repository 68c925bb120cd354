"""Turn every failure into one JSON error shape, mapped to its HTTP status in one place.

Every error body the API sends is::

    {"error": {"code": "not_found", "message": "model 'penguins' does not exist",
               "field": "name", "details": {...}}}

``code`` is a stable machine-readable word, ``message`` says what is wrong, ``field``
(when there is one) says where: a body field (dotted path, e.g. ``inputs.island``), a
query parameter, a path parameter or a header. ``details`` is optional extra structure
(e.g. every validation message, or the allowed values). Raise the classes below from
anywhere in ``service/``; the handlers registered by :func:`register_error_handlers`
render them.
"""
import logging

import marshmallow as ma
from flask import g, has_request_context, jsonify
from werkzeug.exceptions import HTTPException

log = logging.getLogger(__name__)


class ApiError(Exception):
    """Base class: an error with an HTTP status, a stable code, a message and a location."""

    status_code = 500
    code = "internal_error"

    def __init__(self, message, *, field=None, details=None, headers=None, code=None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.details = details
        self.headers = dict(headers or {})
        if code is not None:
            self.code = code

    def to_dict(self):
        """Return the JSON body for this error."""
        body = {"code": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        if self.details is not None:
            body["details"] = self.details
        return {"error": body}


class _RetryableError(ApiError):
    """An error the caller may retry after ``retry_after`` seconds (sent as Retry-After)."""

    def __init__(self, message, *, retry_after=1, **kwargs):
        super().__init__(message, **kwargs)
        self.headers.setdefault("Retry-After", str(int(retry_after)))


class BadRequest(ApiError):
    status_code, code = 400, "bad_request"


class Unauthorized(ApiError):
    status_code, code = 401, "unauthorized"

    def __init__(self, message, **kwargs):
        super().__init__(message, **kwargs)
        self.headers.setdefault("WWW-Authenticate", 'Bearer realm="tfship"')


class Forbidden(ApiError):
    status_code, code = 403, "forbidden"


class NotFound(ApiError):
    status_code, code = 404, "not_found"


class MethodNotAllowed(ApiError):
    status_code, code = 405, "method_not_allowed"


class RequestTimeout(ApiError):
    status_code, code = 408, "request_timeout"


class Conflict(ApiError):
    status_code, code = 409, "conflict"


class PreconditionFailed(ApiError):
    status_code, code = 412, "precondition_failed"


class PayloadTooLarge(ApiError):
    status_code, code = 413, "payload_too_large"


class UnsupportedMediaType(ApiError):
    status_code, code = 415, "unsupported_media_type"


class Unprocessable(ApiError):
    status_code, code = 422, "validation_failed"


class TooManyRequests(_RetryableError):
    status_code, code = 429, "too_many_requests"


class BadGateway(_RetryableError):
    status_code, code = 502, "bad_gateway"


class ServiceUnavailable(_RetryableError):
    status_code, code = 503, "service_unavailable"


class GatewayTimeout(_RetryableError):
    status_code, code = 504, "gateway_timeout"


class ErrorBodySchema(ma.Schema):
    """The inner error object (documentation only; bodies are built by ApiError.to_dict)."""

    code = ma.fields.String(required=True, metadata={"description": "stable error code"})
    message = ma.fields.String(required=True, metadata={"description": "what is wrong"})
    field = ma.fields.String(metadata={"description": "where: body field, parameter or header"})
    details = ma.fields.Dict(metadata={"description": "extra structure, e.g. every message"})


class ErrorSchema(ma.Schema):
    """The JSON body of every error response."""

    class Meta:
        name = "Error"

    error = ma.fields.Nested(ErrorBodySchema, required=True)


_CODES_BY_STATUS = {cls.status_code: cls.code for cls in (
    BadRequest, Unauthorized, Forbidden, NotFound, MethodNotAllowed, Conflict,
    PreconditionFailed, PayloadTooLarge, UnsupportedMediaType, Unprocessable,
    TooManyRequests, BadGateway, ServiceUnavailable, GatewayTimeout)}


LOCATIONS = ("json", "query", "headers", "view_args", "path", "form", "cookies")


def _first_message(messages, path=()):
    """Return (dotted field path, first message) from webargs/marshmallow nested messages."""
    if isinstance(messages, dict):
        for key, value in messages.items():
            # webargs nests by location ("json", "query", ...); "_schema" is the whole body;
            # marshmallow's Dict fields nest entry errors under "key"/"value".
            skip = (not path and key in LOCATIONS) or key == "_schema" or (
                path and key in ("key", "value") and set(messages) <= {"key", "value"})
            return _first_message(value, path + (() if skip else (str(key),)))
    if isinstance(messages, (list, tuple)) and messages:
        if all(isinstance(item, str) for item in messages):
            return ".".join(path) or None, messages[0]
        return _first_message(messages[0], path)
    return ".".join(path) or None, str(messages)


def error_from_http_exception(exc):
    """Translate a werkzeug HTTPException (routing, abort, webargs) into an ApiError."""
    data = getattr(exc, "data", None) or {}
    messages = data.get("messages")
    status = exc.code or 500
    if messages:
        field, first = _first_message(messages)
        location = next(iter(messages), None) if isinstance(messages, dict) else None
        where = f"{field}: " if field else ""
        if status == 400 and location == "json":
            return BadRequest("request body is not valid JSON", field="body")
        error = ApiError(f"{where}{first}", field=field, details={"messages": messages},
                         code=_CODES_BY_STATUS.get(status, "error"))
    else:
        text = exc.description or exc.name
        error = ApiError(text, code=_CODES_BY_STATUS.get(status, "error"))
    error.status_code = status
    headers = dict(data.get("headers") or {})
    valid_methods = getattr(exc, "valid_methods", None)
    if status == 405 and valid_methods:
        headers["Allow"] = ", ".join(sorted(valid_methods))
    error.headers.update(headers)
    return error


ERROR_CODE_KEY = "tfship_error_code"  # flask.g: the code the access line reports as error.code


def render(error):
    """Return the Flask response for an ApiError (its code kept for the request's access line)."""
    if has_request_context():
        setattr(g, ERROR_CODE_KEY, error.code)
    response = jsonify(error.to_dict())
    response.status_code = error.status_code
    for name, value in error.headers.items():
        response.headers[name] = value
    return response


def register_error_handlers(app):
    """Register the JSON error handlers on the app: specific classes first, the generic one last."""
    app.register_error_handler(ApiError, render)
    app.register_error_handler(HTTPException, lambda exc: render(error_from_http_exception(exc)))

    # A request body that stopped arriving (gunicorn_worker's deadline): the caller's fault.
    app.register_error_handler(TimeoutError, lambda exc: render(RequestTimeout(
        "the request body did not arrive in time", field="body")))

    def handle_unexpected(exc):
        log.exception("unhandled error")
        return render(ApiError("internal error: the server could not complete the request"))

    app.register_error_handler(Exception, handle_unexpected)
