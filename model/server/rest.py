"""TF Serving's REST API as a WSGI app: status, metadata, predict (and classify/regress)."""
import logging
import re
import time

from google.protobuf import json_format

from model.server import codec
from model.server.errors import (Internal, InvalidArgument, NotFound, ServingError,
                                 Unimplemented, servable_not_found)
from model.server.servable import CLASSIFY_METHOD, REGRESS_METHOD

log = logging.getLogger(__name__)

# tensorflow_serving/model_servers/http_rest_api_handler.cc
_VERSION_OR_LABEL = r"(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?"
PREDICTION_PATH = re.compile(r"(?i)/v1/models/([^/:]+)" + _VERSION_OR_LABEL
                             + r":(classify|regress|predict)")
STATUS_PATH = re.compile(r"(?i)/v1/models(?:/([^/:]+))?" + _VERSION_OR_LABEL
                         + r"(?:/(metadata))?")
API_PREFIX = re.compile(r"(?i)/v1/.*")
INT64_MAX = 2**63 - 1


class NoMetrics:
    """The metrics seam: the monitoring module records requests through this interface."""

    def record(self, model_name, api, error_code, latency_us):
        pass

    def exposition(self):
        return None


def _version(text):
    if text is None:
        return None
    version = int(text)
    if version > INT64_MAX:
        raise InvalidArgument(f"Failed to convert version: {text} to numeric.")
    return version


class RestApi:
    """The WSGI callable; reads the manager's snapshot once per request."""

    def __init__(self, manager, runner=None, metrics=None, metrics_path=None):
        self.manager = manager
        self.runner = runner or (lambda servable, key, inputs: servable.predict(key, inputs))
        self.metrics = metrics or NoMetrics()
        self.metrics_path = metrics_path

    def __call__(self, environ, start_response):
        method = environ["REQUEST_METHOD"]
        path = environ.get("PATH_INFO", "")
        if self.metrics_path and path == self.metrics_path and method == "GET":
            body = self.metrics.exposition()
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [body]
        started = time.perf_counter()
        match = PREDICTION_PATH.fullmatch(path) if method == "POST" else None
        try:
            if not API_PREFIX.fullmatch(path):
                raise NotFound(f"Not found: {method} {path}")
            status, document = self._dispatch(environ, method, path, match)
            error_code = "OK"
        except ServingError as error:
            status, document, error_code = error.http_status, {"error": error.message}, error.code
        except Exception:  # never a traceback to the client
            log.exception("Unexpected error answering %s %s", method, path)
            error = Internal("Internal error; see the model server's log")
            status, document, error_code = error.http_status, {"error": error.message}, error.code
        if match:  # TF Serving's request metrics cover the prediction APIs only
            latency_us = (time.perf_counter() - started) * 1e6
            self.metrics.record(match.group(1), match.group(4), error_code, latency_us)
        body = document if isinstance(document, bytes) else codec.dumps(document).encode("utf-8")
        start_response(f"{status} {_REASONS.get(status, 'Error')}",
                       [("Content-Type", "application/json"),
                        ("Content-Length", str(len(body)))])
        return [body]

    def _dispatch(self, environ, method, path, match):
        """Return (HTTP status, response object or its JSON bytes); `match` is the path's
        PREDICTION_PATH match for a POST (else None)."""
        if match:
            name, version_text, label, verb = match.groups()
            version = _version(version_text)
            body = _read_body(environ)
            if verb.lower() == "predict":
                return 200, self._predict(name, version, label, body)
            self._classify_or_regress(name, version, label, body, verb.lower())
        match = STATUS_PATH.fullmatch(path)
        if method == "GET" and match:
            name, version_text, label, subresource = match.groups()
            if not name:
                raise InvalidArgument("Missing model name in request.")
            version = _version(version_text)
            if subresource:
                return 200, self._metadata(name, version, label)
            return 200, self._status(name, version, label)
        raise InvalidArgument(f"Malformed request: {method} {path}")

    def _view(self, name, version, label):
        view = self.manager.snapshot.model(name)
        if view is None:
            if label is not None:
                raise InvalidArgument(f"Unrecognized servable version label: {label}")
            request = f"Specific({name}, {version})" if version is not None else f"Latest({name})"
            raise servable_not_found(request)
        return view

    def _status(self, name, version, label):
        view = self.manager.snapshot.model(name)
        if view is None:
            if version is not None:
                raise NotFound(f"Could not find version {version} of model {name}")
            if label is not None:
                raise InvalidArgument(f"Unrecognized servable version label: {label}")
            raise NotFound(f"Could not find any versions of model {name}")
        return {"model_version_status": [
            {"version": str(s.version), "state": s.state,
             "status": {"error_code": s.error_code, "error_message": s.error_message}}
            for s in view.statuses(version, label)]}

    def _metadata(self, name, version, label):
        servable = self._view(name, version, label).resolve(version, label)
        from tensorflow_serving.apis import get_model_metadata_pb2

        signature_map = get_model_metadata_pb2.SignatureDefMap()
        for key, signature in servable.signature_defs.items():
            signature_map.signature_def[key].CopyFrom(signature)
        return {"model_spec": {"name": name, "signature_name": "",
                               "version": str(servable.version)},
                "metadata": {"signature_def": json_format.MessageToDict(
                    signature_map, preserving_proto_field_name=True,
                    always_print_fields_with_no_presence=True)}}

    def _predict(self, name, version, label, body):
        answer = self._predict_typed_rows(name, version, label, body)
        if answer is not None:
            return answer
        document = codec.parse_body(body)
        request = codec.predict_request(document)
        servable = self._view(name, version, label).resolve(version, label)
        key = servable.signature(request.signature_name)
        inputs = codec.decode_inputs(request, servable.input_specs[key])
        outputs = self.runner(servable, key, inputs)
        return codec.encode_response(outputs, request.format)

    def _predict_typed_rows(self, name, version, label, body):
        """The common request on a shorter path: row objects for the default signature,
        decoded and checked in one pass (typed_rows.py). None sends the request down the
        general path, which answers it, or words its error, as TF Serving does."""
        try:
            servable = self._view(name, version, label).resolve(version, label)
        except ServingError:
            return None
        decoded = servable.decode_rows(body)
        if decoded is None:
            return None
        key, inputs = decoded
        return codec.encode_response(self.runner(servable, key, inputs), codec.ROW)

    def _classify_or_regress(self, name, version, label, body, verb):
        document = codec.parse_body(body)
        signature_name = codec.signature_name(document)
        if "examples" not in document:
            raise InvalidArgument(f"JSON Value: {codec.json_text(document)} When method is "
                                  f"{verb}, key 'examples' is expected and was not found")
        servable = self._view(name, version, label).resolve(version, label)
        key = servable.signature(signature_name)
        expected = CLASSIFY_METHOD if verb == "classify" else REGRESS_METHOD
        method_name = servable.signature_defs[key].method_name
        if method_name != expected:
            kind = "classification" if verb == "classify" else "regression"
            raise InvalidArgument(f"Expected {kind} signature method_name to be {expected}. "
                                  f"Was: {method_name}")
        raise Unimplemented(f"{verb} with tf.Example inputs is not supported by this local "
                            "server; use :predict")


def _read_body(environ):
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise InvalidArgument("Invalid Content-Length header") from None
    return environ["wsgi.input"].read(length) if length > 0 else b""


_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
            404: "Not Found", 409: "Conflict", 429: "Too Many Requests", 499: "Client Closed",
            500: "Internal Server Error", 501: "Not Implemented", 503: "Service Unavailable",
            504: "Gateway Timeout"}
