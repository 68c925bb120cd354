"""The tfship API: a model registry and a prediction gateway in front of TF Serving.

``create_app`` builds the Flask application; nothing is built at import time. This
package never imports TensorFlow (the import-linter contract in pyproject.toml).
"""
from flask import Flask


class App(Flask):
    """Flask that remembers which hooks and views are plain functions.

    Flask asks ``inspect.iscoroutinefunction`` of every hook and view wrapper on every request
    (``ensure_sync``, ~18 times per prediction): 4% of the gateway's CPU per request.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._plain_functions = set()

    def ensure_sync(self, func):
        try:
            if func in self._plain_functions:
                return func
        except TypeError:  # unhashable: ask every time
            return super().ensure_sync(func)
        wrapped = super().ensure_sync(func)
        if wrapped is func:
            self._plain_functions.add(func)
        return wrapped


def create_app(test_config=None):
    """Build the API: settings (defaults, TFSHIP_API_* environment, test_config), then extensions and routes."""
    from service import (auth, db, errors, faults, gateway, health, json_bodies, limits, logs,
                         metrics, openapi, security_headers, settings)
    from service.registry import models, rollouts, versions

    app = App(__name__, static_folder=None)
    settings.load(app.config, test_config)
    app.json = json_bodies.JsonProvider(app)
    app.json.sort_keys = False
    app.url_map.strict_slashes = False

    errors.register_error_handlers(app)
    # Request hooks run in registration order: logs and metrics see every request, including
    # those auth rejects; auth runs before the body checks, so a caller without a key learns
    # nothing about the route; rate limits count authenticated keys; injected faults (tests
    # only) hit predictions that passed every check, as a real upstream fault would.
    logs.init_app(app)
    metrics.init_app(app)
    db.init_app(app)
    auth.init_app(app)
    limits.init_app(app)
    json_bodies.init_app(app)
    faults.init_app(app)
    security_headers.init_app(app)
    openapi.init_app(app)

    app.register_blueprint(health.bp)
    for blueprint in (models.bp, versions.bp, rollouts.bp, gateway.bp):
        openapi.register_blueprint(app, blueprint)
    return app
