"""A small real HTTP server speaking the tfship API's endpoints, with fault knobs: the gate's test target.

It answers the registry reads and writes and the prediction gateway the personas use, checks
the bearer key and validates prediction bodies against the schema, and injects latency and
errors on request. It is what the gate's logic is proven against while the real API cannot
run every fault here. Configured by environment:
  TARGET_KEY            the only accepted API key
  TARGET_STABLE, TARGET_CANARY, TARGET_CANARY_WEIGHT   rollout state (canary optional)
  TARGET_LATENCY_MS, TARGET_ERROR_RATE                  faults on every prediction
  TARGET_CANARY_LATENCY_MS, TARGET_CANARY_ERROR_RATE    extra faults on the canary's predictions
  TARGET_WRONG_CLASS    answer 200 with a class name the model does not have (a broken model)
Run: python tests/loadtests/target_server.py  (prints the port it bound, then serves).
"""
import datetime as dt
import hashlib
import json
import math
import os
import random
import threading
import time
from pathlib import Path

from flask import Flask, abort, jsonify, request
from werkzeug.serving import make_server

METADATA = json.loads((Path(__file__).with_name("penguins_metadata.json")).read_text())


def create_app(environ):
    """Build the target from its settings."""
    app = Flask(__name__)
    key = environ["TARGET_KEY"]
    stable, canary = int(environ.get("TARGET_STABLE", "2")), environ.get("TARGET_CANARY")
    canary = int(canary) if canary else None
    weight = float(environ.get("TARGET_CANARY_WEIGHT", "0"))
    faults = {"latency": float(environ.get("TARGET_LATENCY_MS", "0")) / 1000,
              "errors": float(environ.get("TARGET_ERROR_RATE", "0")),
              "canary_latency": float(environ.get("TARGET_CANARY_LATENCY_MS", "0")) / 1000,
              "canary_errors": float(environ.get("TARGET_CANARY_ERROR_RATE", "0")),
              "wrong_class": environ.get("TARGET_WRONG_CLASS") == "1"}
    lock = threading.Lock()
    now = dt.datetime.now(dt.timezone.utc).isoformat()
    models = {"penguins": {"name": "penguins", "description": "", "owner": "ml", "tags": [], "revision": 1,
                           "versions": {v: dict(METADATA, version=v, status="stable" if v == stable else "canary")
                                        for v in {stable, canary} - {None}}}}
    app.config["synthetic"] = {"true": 0, "false": 0}

    def model_body(model):
        return {k: model[k] for k in ("name", "description", "owner", "tags")} | {"serving": True, "created_at": now,
                                                                                    "updated_at": now}

    def etag(model):
        return f'"{model["name"]}-{model["revision"]}"'

    def error(status, message, field=None):
        response = jsonify({"error": {"status": status, "message": message, "field": field}})
        response.status_code = status
        abort(response)

    @app.before_request
    def authenticate():
        app.config["synthetic"]["true" if request.headers.get("X-Tfship-Synthetic") == "1" else "false"] += 1
        if request.headers.get("Authorization") != f"Bearer {key}":
            error(401, "an API key is required: send 'Authorization: Bearer <key>'")

    def find(name):
        if name not in models:
            error(404, f"no model named {name!r}", "name")
        return models[name]

    @app.get("/api/v1/models")
    def list_models():
        part = request.args.get("name", "")
        items = [model_body(m) for m in models.values() if part in m["name"]]
        return {"items": items, "total": len(items), "page": 1, "per_page": 20, "pages": 1,
                "links": {"self": request.full_path, "first": request.full_path, "last": request.full_path}}

    @app.post("/api/v1/models")
    def create_model():
        body = request.get_json()
        with lock:
            if body["name"] in models:
                error(409, "exists", "name")
            models[body["name"]] = {"name": body["name"], "description": "", "owner": body.get("owner", ""),
                                    "tags": body.get("tags", []), "revision": 1, "versions": {}}
        model = models[body["name"]]
        return model_body(model), 201, {"Location": f"/api/v1/models/{model['name']}", "ETag": etag(model)}

    @app.route("/api/v1/models/<name>", methods=["GET", "PATCH", "DELETE"])
    def one_model(name):
        model = find(name)
        if request.method == "GET":
            return model_body(model), {"ETag": etag(model)}
        with lock:
            if request.headers.get("If-Match") not in (None, etag(model)):
                error(412, "the resource changed since you read it", "If-Match")
            if request.method == "DELETE":
                del models[name]
                return "", 204
            model.update(request.get_json())
            model["revision"] += 1
        return model_body(model), {"ETag": etag(model)}

    @app.route("/api/v1/models/<name>/versions", methods=["GET", "POST"])
    def versions(name):
        model = find(name)
        if request.method == "GET":
            items = [{"version": v, "status": m["status"]} for v, m in sorted(model["versions"].items())]
            return {"items": items, "total": len(items), "page": 1, "per_page": 20, "pages": 1, "links": {}}
        body = request.get_json()
        with lock:
            model["versions"][body["version"]] = dict(body, status="staged")
        return {"model": name, **body, "status": "staged"}, 201, {"Location": f"{request.path}/{body['version']}"}

    @app.get("/api/v1/models/<name>/versions/<int:version>")
    def one_version(name, version):
        found = find(name)["versions"].get(version) or error(404, f"no version {version}", "version")
        return {"model": name, **found}

    @app.get("/api/v1/models/<name>/rollout")
    def rollout(name):
        find(name)
        return {"model": name, "stable": stable, "canary": canary, "previous": None, "canary_weight": weight,
                "updated_at": now}

    @app.post("/api/v1/models/<name>:predict")
    def predict(name):
        find(name)
        routing_key = request.headers.get("X-Routing-Key", "")
        share = int(hashlib.sha256(routing_key.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        version = canary if canary is not None and share < weight else stable
        is_canary = version == canary
        time.sleep(faults["latency"] + (faults["canary_latency"] if is_canary else 0))
        if random.random() < faults["errors"] + (faults["canary_errors"] if is_canary else 0):
            response = jsonify({"error": {"status": 503, "message": "injected fault"}})
            return response, 503, {"Retry-After": "1", "X-Model-Version": str(version)}
        rows = (request.get_json(silent=True) or {}).get("instances")
        if not isinstance(rows, list) or not rows:
            error(400, "the body needs a non-empty 'instances' list", "instances")
        inputs = METADATA["input_schema"]["inputs"]
        for row in rows:
            for field, spec in inputs.items():
                value = row.get(field)
                if spec["kind"] == "categorical" and value not in spec["categories"] + [spec["missing"]]:
                    error(400, f"input {field!r}: {value!r} is not one of {spec['categories']}", field)
                if spec["kind"] == "numeric" and not isinstance(value, (int, float)):
                    error(400, f"input {field!r}: expected a number or NaN", field)
        classes = METADATA["input_schema"]["classes"]
        predictions = []
        for row in rows:
            length = row["bill_length_mm"] if not math.isnan(row["bill_length_mm"]) else 44.0
            scores = [math.exp(-abs(length - centre) / 4) for centre in (38.8, 48.8, 47.5)]
            probabilities = [s / sum(scores) for s in scores]
            best = probabilities.index(max(probabilities))
            name = "Emperor" if faults["wrong_class"] else classes[best]
            predictions.append({"probabilities": probabilities, "class_id": best, "class_name": name})
        return {"predictions": predictions}, {"X-Model-Version": str(version)}

    @app.get("/target/synthetic")
    def synthetic_counts():
        return app.config["synthetic"]

    return app


if __name__ == "__main__":
    server = make_server("127.0.0.1", 0, create_app(os.environ), threaded=True)
    print(server.server_port, flush=True)
    server.serve_forever()
