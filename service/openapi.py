"""Generate the OpenAPI 3 document from the code (flask-smorest) and serve it with Swagger UI.

The document is served at /api/v1/openapi.json and Swagger UI at /api/v1/docs; both are
open. Error responses are documented with :class:`service.errors.ErrorSchema`, the shape
every error really has, and flask-smorest's own error handler is replaced by ours.
"""
import flask_smorest

from service.auth import SECURITY_SCHEMES
from service.errors import ErrorSchema

EXTENSION = "tfship_api"


class Api(flask_smorest.Api):
    """flask-smorest's Api, documenting our error shape and leaving error handling to service.errors."""

    ERROR_SCHEMA = ErrorSchema

    def _register_error_handlers(self):
        """Do nothing: service.errors registers the handlers, once, in the factory."""


def init_app(app):
    """Create the app's Api (the spec and its documentation routes) and return it."""
    app.config.update({
        "API_TITLE": "tfship API",
        "API_VERSION": "v1",
        "OPENAPI_VERSION": "3.1.0",
        "OPENAPI_URL_PREFIX": "/api/v1",
        "OPENAPI_JSON_PATH": "openapi.json",
        "OPENAPI_SWAGGER_UI_PATH": "docs",
        "OPENAPI_SWAGGER_UI_URL": app.config["SWAGGER_UI_URL"],
    })
    api = Api(app, spec_kwargs={"info": {"description": (
        "Model registry and prediction gateway. Send an API key as 'Authorization: Bearer "
        "<key>' (or 'X-API-Key'). Every error body is {\"error\": {\"code\", \"message\", "
        "\"field\"?, \"details\"?}}.")}})
    for name, scheme in SECURITY_SCHEMES.items():
        api.spec.components.security_scheme(name, scheme)
    app.extensions[EXTENSION] = api
    return api


def register_blueprint(app, bp):
    """Register bp, in the OpenAPI document too when it is a flask-smorest Blueprint."""
    if isinstance(bp, flask_smorest.Blueprint):
        app.extensions[EXTENSION].register_blueprint(bp)
    else:
        app.register_blueprint(bp)
