"""The prediction gateway: validate, route to stable or canary, forward to the model server.

``POST /api/v1/models/{name}:predict`` takes TF Serving's body, checks it against the
serving version's input schema, picks the stable or canary label by the rollout state
(sticky per routing key), forwards it over TF Serving's REST API and returns the model
server's answer unchanged, with the version that served it in ``X-Model-Version`` (and its
label in ``X-Model-Label``). ``.../versions/{version}:predict`` pins a version.

Requests go to TF Serving's labels, so the model server decides which loaded version a label
means; ``X-Model-Version`` is the version the cached rollout state names for that label. The
two can differ briefly while a label moves: the model server follows the registry, and each
worker's cache lags it by up to ROLLOUT_CACHE_TTL_S (so a version must stay loaded at least
that long after its label moved away).
"""
import threading
import time
from collections import Counter

import marshmallow as ma
import sqlalchemy as sa
from flask import Response, current_app, g, request
from flask_smorest import Blueprint

from service import db, json_codec, logs, metrics, routing, shadow, upstream, validation
from service.auth import require_role
from service.errors import ApiError, ServiceUnavailable
from service.rollout import get_rollout_state, get_version_schema
from service.settings import Setting
from service.tables import RegisteredModel, Rollout

EXTENSION = "tfship_gateway"
VERSION_HEADER, LABEL_HEADER = "X-Model-Version", "X-Model-Label"
REGISTRY_UNAVAILABLE = (sa.exc.SQLAlchemyError, ServiceUnavailable)
PROBE_MODEL = "tfship-readiness-probe"  # an unknown name: TF Serving answers 404, proving it is up
_state_lock = threading.Lock()

SETTINGS = (
    Setting("ROLLOUT_CACHE_TTL_S", 2.0, "Seconds a worker reuses a model's rollout state before "
            "reading the registry again. While the registry is unreachable the last state keeps "
            "serving. A canary may be unloaded only this long after its weight went to 0."),
    Setting("SCHEMA_CACHE_TTL_S", 300.0, "Seconds a worker reuses a version's input schema and "
            "feature statistics (versions are immutable)."),
    Setting("PREDICT_MAX_ROWS", 1000, "Largest batch (rows) a prediction request may carry; "
            "more gets 400."),
)

bp = Blueprint("gateway", __name__, url_prefix="/api/v1/models",
               description="Predictions, forwarded to the model server (TF Serving's REST API).")


class PredictRequestSchema(ma.Schema):
    """TF Serving's predict body (documentation: the gateway validates against the input schema)."""

    class Meta:
        name = "PredictRequest"

    signature_name = ma.fields.String(metadata={"description": "default serving_default"})
    instances = ma.fields.List(ma.fields.Dict(), metadata={
        "description": "rows: one object per row, keyed by input name"})
    inputs = ma.fields.Dict(metadata={
        "description": "columns: one list per input name (send instances or inputs)"})


class PredictResponseSchema(ma.Schema):
    """The model server's answer, unchanged."""

    class Meta:
        name = "PredictResponse"

    predictions = ma.fields.List(ma.fields.Dict(), metadata={
        "description": "for instances: one object per row (probabilities, class_id, class_name)"})
    outputs = ma.fields.Dict(metadata={"description": "for inputs: one list per output name"})


class GatewayState:
    """A worker's gateway: the model-server client and the registry caches."""

    def __init__(self, config):
        self.client = upstream.from_config(config, on_outcome=metrics.observe_upstream)
        self.rollouts = routing.StaleOnErrorCache(float(config["ROLLOUT_CACHE_TTL_S"]),
                                                  REGISTRY_UNAVAILABLE)
        self.schemas = routing.StaleOnErrorCache(float(config["SCHEMA_CACHE_TTL_S"]),
                                                 REGISTRY_UNAVAILABLE)
        self.max_rows = int(config["PREDICT_MAX_ROWS"])

    def known_models(self):
        """Return the names whose rollout state this worker has cached."""
        return sorted(self.rollouts.keys())


def state(app=None):
    """Return the app's GatewayState, built on first use (after the fork, in each worker)."""
    app = app or current_app
    found = app.extensions.get(EXTENSION)
    if found is None:
        with _state_lock:
            found = app.extensions.get(EXTENSION)
            if found is None:
                found = app.extensions[EXTENSION] = GatewayState(app.config)
    return found


def _from_registry(cache, key, fetch):
    try:
        return cache.get(key, fetch)
    except REGISTRY_UNAVAILABLE as exc:
        if isinstance(exc, ApiError):
            raise
        raise ServiceUnavailable("the registry is unavailable and this worker has no cached "
                                 "answer yet; retry shortly", code="registry_unavailable",
                                 retry_after=2) from exc


def _predicted_classes(answer, input_schema):
    """Count the predicted class names of a TF Serving answer (rows or columns)."""
    classes = input_schema.get("classes") or []

    def name_of(row_name, row_id):
        if isinstance(row_name, str):
            return row_name if not classes or row_name in classes else None
        if isinstance(row_id, int) and 0 <= row_id < len(classes):
            return classes[row_id]
        return None

    names = []
    if isinstance(answer, dict) and isinstance(answer.get("predictions"), list):
        for row in answer["predictions"]:
            if isinstance(row, dict):
                names.append(name_of(row.get("class_name"), row.get("class_id")))
    elif isinstance(answer, dict) and isinstance(answer.get("outputs"), dict):
        outputs = answer["outputs"]
        column_names, column_ids = outputs.get("class_name"), outputs.get("class_id")
        rows = len(column_names) if isinstance(column_names, list) else (
            len(column_ids) if isinstance(column_ids, list) else 0)
        for index in range(rows):
            names.append(name_of(column_names[index] if isinstance(column_names, list) else None,
                                 column_ids[index] if isinstance(column_ids, list) else None))
    return Counter(name for name in names if name is not None)


def _forward(gateway, name, route, sent):
    """POST sent (the validated body's JSON bytes) to the route's version.

    By version, not by the route's label: the registry names the version, and the model server
    moves a label only on its next config poll (about a second), during which the label still
    answers with the version it pointed at before a promote, rollback or new canary. A call by
    version is served by the version named in X-Model-Version and in the metrics. A canary
    gets traffic only once its version is AVAILABLE (the rollout driver waits for the load
    before its first step) and stays loaded until the gateways' cached state has expired.
    """
    return gateway.client.predict(name, sent, version=route.version,
                                  request_id=logs.request_id(), metric_version=route.version)


def _fall_back(gateway, name, canary, body, sent, error):
    """Retry a failed canary call on stable, so a failing canary costs callers nothing.

    Returns (stable route, its schema, the body checked against it, the answer). When the body
    does not fit stable's input schema, the canary's error stands.
    """
    stable = canary.fallback
    schema = _from_registry(gateway.schemas, (name, stable.version),
                            lambda: get_version_schema(name, stable.version))
    try:
        checked = validation.validate_predict_body(body, schema["input_schema"] or {},
                                                   max_rows=gateway.max_rows)
    except ApiError:
        raise error from None
    metrics.count_canary_fallback(name, canary.version, getattr(error, "outcome", error.code))
    metrics.label_request(name, stable.version)
    return stable, schema, checked, _forward(gateway, name, stable, sent)


def _predict(name, pinned_version=None):
    gateway = state()
    req = request._get_current_object()  # one proxy lookup
    if pinned_version is None:
        rollout = _from_registry(gateway.rollouts, name, lambda: get_rollout_state(name))
        caller = g.get("api_key")
        key = routing.routing_key(req.headers, getattr(caller, "prefix", None), req.remote_addr)
        route = routing.choose_route(name, rollout, key)
    else:
        route = routing.pinned_route(pinned_version)
    schema = _from_registry(gateway.schemas, (name, route.version),
                            lambda: get_version_schema(name, route.version))
    input_schema = schema["input_schema"] or {}
    metrics.label_request(name, route.version)
    if not input_schema.get("inputs"):
        raise ServiceUnavailable(f"version {route.version} of model {name!r} has no input schema "
                                 "in the registry; it cannot be validated", code="no_input_schema")
    body = req.get_json(silent=True)
    checked = validation.validate_predict_body(body, input_schema, max_rows=gateway.max_rows)
    # Forward what was validated, written again (orjson: microseconds), not the raw bytes: a
    # duplicate key in the raw text would reach TF Serving, whose parser keeps the first while
    # validation saw the last (tests/service/test_gateway.py: the duplicate-key test).
    sent = json_codec.dumps_validated(body)
    forwarded_at = time.perf_counter()
    try:
        answer = _forward(gateway, name, route, sent)
    except ApiError as error:
        if route.fallback is None:
            raise
        route, schema, checked, answer = _fall_back(gateway, name, route, body, sent, error)
        input_schema = schema["input_schema"] or {}
    if pinned_version is None:  # shadow mode: queue a copy for the shadow version, never wait
        shadow.mirror(name, rollout, route, sent, answer.body, time.perf_counter() - forwarded_at)
    metrics.count_predictions(name, route.version, checked.rows,
                              _predicted_classes(answer.data, input_schema))
    metrics.count_out_of_range(name, route.version, validation.out_of_range_counts(
        checked.columns, input_schema, schema.get("feature_statistics")))
    logs.log_prediction_sample(name, route.version, body, answer.data)
    response = Response(answer.body, status=200, mimetype="application/json")
    headers = response.headers  # a new response: add, not set (set scans every header)
    headers.add(VERSION_HEADER, str(route.version))
    if route.label is not None:
        headers.add(LABEL_HEADER, route.label)
    return response


_RESPONSE_HEADERS = {
    VERSION_HEADER: {"description": "the model version that served the prediction",
                     "schema": {"type": "string"}},
    LABEL_HEADER: {"description": "stable or canary (absent for a pinned version)",
                   "schema": {"type": "string"}},
    logs.REQUEST_ID_HEADER: {"description": "the request id (the caller's or a new one)",
                             "schema": {"type": "string"}},
}
_ERRORS = {400: "input does not fit the version's input schema", 404: "unknown model or version",
           502: "bad answer from the model server", 503: "model server or registry unavailable, "
           "circuit open or too many calls in flight (Retry-After)",
           504: "the model server did not answer in time (Retry-After)"}


def _document(view):
    documented = bp.doc(requestBody={"required": True, "content": {"application/json": {
        "schema": PredictRequestSchema}}}, parameters=[{
            "in": "header", "name": routing.ROUTING_KEY_HEADER, "required": False,
            "schema": {"type": "string"},
            "description": "sticky traffic-split key (default: the API key's prefix)"}])(view)
    for status, description in _ERRORS.items():
        documented = bp.alt_response(status, response="DEFAULT_ERROR",
                                     description=description)(documented)
    documented = bp.response(200, PredictResponseSchema, headers=_RESPONSE_HEADERS)(documented)
    # flask-smorest's decorators document by wrapping: seven pass-through calls per request,
    # each through current_app. The view always returns a Response, which they hand back
    # untouched, so keep their documentation and let the route call the view itself.
    view._apidoc = documented._apidoc
    return view


@bp.route("/<name>:predict", methods=["POST"])
@require_role("predictor")
@_document
def predict(name):
    """Predict with the model's stable or canary version (split by the rollout state)."""
    return _predict(name)


@bp.route("/<name>/versions/<int:version>:predict", methods=["POST"])
@require_role("predictor")
@_document
def predict_version(name, version):
    """Predict with one pinned version of the model."""
    return _predict(name, pinned_version=version)


def serving_model_names(gateway):
    """Return the models with a stable or canary version (cached names if the registry is down)."""
    try:
        return list(db.session().execute(
            sa.select(RegisteredModel.name).join(Rollout).where(sa.or_(
                Rollout.stable_version.is_not(None), Rollout.canary_version.is_not(None)))
            .order_by(RegisteredModel.name)).scalars())
    except sa.exc.SQLAlchemyError:
        return gateway.known_models()


def readiness(app, model_names=None):
    """Probe the model server: reachable, and which versions of each serving model are AVAILABLE.

    Sets tfship_model_versions_available{model} for every model probed. Models are those given,
    else those with a stable or canary version in the registry (those this worker has routed
    to while the registry is down); with none, an unknown name is asked (TF Serving's 404
    proves it answers).
    """
    gateway = state(app)
    names = list(model_names) if model_names is not None else serving_model_names(gateway)
    report = {"status": "ok", "models": {}}
    try:
        for name in names:
            try:
                versions = gateway.client.available_versions(name)
            except upstream.UpstreamClientError:
                versions = []  # the model server does not know the model: nothing loaded
            report["models"][name] = {"available_versions": versions}
            metrics.set_versions_available(name, len(versions))
        if not names:
            try:
                gateway.client.model_status(PROBE_MODEL)
            except upstream.UpstreamClientError:
                pass
    except ApiError as exc:
        report = {"status": "down", "error": exc.code, "message": exc.message,
                  "models": report["models"]}
        for name in names:
            if name not in report["models"]:
                metrics.set_versions_available(name, 0)
    return report
