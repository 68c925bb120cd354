"""The /api/v1/models/{name}/rollout resource: which versions serve, and the canary's weight.

Setting a new stable version makes the old one ``previous`` (the rollback target); a
version that loses every role becomes ``retired``. Version statuses and the rollout row
change in one transaction, so they always agree.
"""
import sqlalchemy as sa
from flask.views import MethodView
from flask_smorest import Blueprint

from service import db
from service.auth import require_role
from service.errors import Unprocessable
from service.registry import history, schemas
from service.registry.common import ETAG_HEADER_DOC, IF_MATCH_DOC, check_if_match, etag, find_model
from service.rollout import rollout_dict
from service.tables import ModelVersion, utcnow

bp = Blueprint("rollouts", __name__, url_prefix="/api/v1/models/<name>/rollout",
               description="Rollout state: stable, canary (with traffic weight) and previous version.")


def rollout_etag(model):
    """Return the ETag of a model's rollout state."""
    return etag("rollout", model.id, model.rollout.revision, model.created_at)


def _body(model):
    return {"model": model.name, **rollout_dict(model.rollout), "updated_at": model.rollout.updated_at}


def next_roles(current, stable, canary):
    """Return the (stable, canary, previous) that follow current when setting stable and canary."""
    previous = current["previous"]
    if current["stable"] is not None and stable != current["stable"]:
        previous = current["stable"]
    if previous in (stable, canary):
        previous = None
    return stable, canary, previous


@bp.route("", parameters=[IF_MATCH_DOC])
class RolloutState(MethodView):
    @require_role("reader")
    @bp.response(200, schemas.RolloutSchema, headers=ETAG_HEADER_DOC)
    def get(self, name):
        """Read a model's rollout state."""
        model = find_model(name)
        return _body(model), {"ETag": rollout_etag(model)}

    @require_role("deployer")
    @bp.arguments(schemas.RolloutUpdateSchema)
    @bp.response(200, schemas.RolloutSchema, headers=ETAG_HEADER_DOC)
    @bp.alt_response(412, response="PRECONDITION_FAILED")
    def put(self, body, name):
        """Set the stable and canary versions and the canary's traffic weight."""
        session = db.session()
        model = find_model(name)
        rollout = model.rollout
        check_if_match(rollout_etag(model))
        stable, canary, previous = next_roles(rollout_dict(rollout), body["stable"], body["canary"])
        involved = {v for v in (rollout.stable_version, rollout.canary_version,
                                rollout.previous_version, stable, canary) if v is not None}
        rows = {row.version: row for row in session.execute(sa.select(ModelVersion).where(
            ModelVersion.model_id == model.id, ModelVersion.version.in_(involved))).scalars()}
        for field, wanted in (("stable", stable), ("canary", canary)):
            if wanted is not None and wanted not in rows:
                raise Unprocessable(f"model {name!r} has no version {wanted}", field=field)
        roles = {stable: "stable", canary: "canary", previous: "previous"}
        for version, row in rows.items():
            status = roles.get(version, "retired" if row.status in ("stable", "canary", "previous")
                               else row.status)
            if row.status != status:
                row.status, row.updated_at = status, utcnow()
        rollout.stable_version, rollout.canary_version = stable, canary
        rollout.previous_version, rollout.canary_weight = previous, body["canary_weight"]
        rollout.updated_at = utcnow()
        history.record(model, rollout, body)
        session.commit()
        return _body(model), {"ETag": rollout_etag(model)}


@bp.route("/history")
class RolloutHistory(MethodView):
    @require_role("reader")
    @bp.arguments(history.HistoryQuery, location="query")
    @bp.response(200, history.HistoryPageSchema)
    def get(self, query, name):
        """Read a model's rollout transitions, newest first (time, actor, step, reason)."""
        return history.page(find_model(name), query)
