"""Liveness and readiness: /healthz and /readyz (both open).

/healthz answers 200 while the process can answer at all. /readyz reports the database
and the model server in its body, but fails (503) only when this process itself cannot
serve: a database or model-server outage hits every pod alike, and pulling them all out
of the load balancer would turn a partial outage into a total one (predictions keep
flowing from cached rollout state; registry calls answer 503 on their own).
"""
import time

import sqlalchemy as sa
from flask import Blueprint, current_app, jsonify

from service import db, gateway, metrics

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """Answer that the process is alive."""
    return jsonify({"status": "ok"})


def database_state():
    """Return the database's state: ok with its migration revision, or down with the reason."""
    started = time.perf_counter()
    try:
        with db.engine().connect() as connection:
            revision = None
            if sa.inspect(connection).has_table("alembic_version"):
                revision = connection.execute(sa.text("SELECT version_num FROM alembic_version")
                                              ).scalar_one_or_none()
    except sa.exc.SQLAlchemyError as exc:
        return {"status": "down", "error": type(exc).__name__}
    state = {"status": "ok" if revision else "not_migrated", "revision": revision,
             "latency_ms": round((time.perf_counter() - started) * 1000, 2)}
    return state


def model_server_state():
    """Return the model server's state, from the gateway's probe of the serving models."""
    started = time.perf_counter()
    state = gateway.readiness(current_app)
    state["latency_ms"] = round((time.perf_counter() - started) * 1000, 2)
    return state


@bp.get("/readyz")
def readyz():
    """Report dependencies; 200 while this process can serve, whatever their state."""
    dependencies = {"database": database_state(), "model_server": model_server_state()}
    report_dependency_state(dependencies)
    return jsonify({"status": "ready", "dependencies": dependencies})


def report_dependency_state(dependencies):
    """Set tfship_dependency_up{dependency} from the states."""
    for name, state in dependencies.items():
        metrics.set_dependency_up(name, state["status"] == "ok")
