"""The /api/v1/models/{name}/rollout resource: which versions serve, and the canary's weight.

Setting a new stable version makes the old one ``previous`` (the rollback target); a
version that loses every role becomes ``retired``. Version statuses and the rollout row
change in one transaction, so they always agree.

``.../rollout/shadow`` sets (PUT), stops (DELETE) and reports (GET) shadow mode: a version that
receives a mirrored share of stable's traffic (service/shadow.py), with the comparison of its
answers kept in shadow_comparisons. It is part of the same rollout state (same ETag), so a
canary driver and a shadow change never overwrite each other. A shadow version that becomes
stable or canary stops being shadowed.
"""
import marshmallow as ma
import sqlalchemy as sa
from flask.views import MethodView
from flask_smorest import Blueprint
from marshmallow import validate

from service import db, shadow
from service.auth import require_role
from service.errors import Conflict, Unprocessable
from service.registry import history, schemas
from service.registry.common import ETAG_HEADER_DOC, IF_MATCH_DOC, check_if_match, etag, find_model
from service.registry.schemas import _Strict
from service.rollout import rollout_dict
from service.tables import ModelVersion, ShadowComparison, utcnow

bp = Blueprint("rollouts", __name__, url_prefix="/api/v1/models/<name>/rollout",
               description="Rollout state: stable, canary (with traffic weight) and previous version.")


def rollout_etag(model):
    """Return the ETag of a model's rollout state."""
    return etag("rollout", model.id, model.rollout.revision, model.created_at)


class RolloutStateSchema(schemas.RolloutSchema):
    """Which versions serve, and the shadow version while shadow mode runs."""

    shadow = ma.fields.Integer(metadata={
        "description": "the version receiving mirrored traffic; absent when none"})
    shadow_share = ma.fields.Float(metadata={
        "description": "share of stable's traffic mirrored to the shadow (0..1); absent when none"})


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
    @bp.response(200, RolloutStateSchema, headers=ETAG_HEADER_DOC)
    def get(self, name):
        """Read a model's rollout state."""
        model = find_model(name)
        return _body(model), {"ETag": rollout_etag(model)}

    @require_role("deployer")
    @bp.arguments(schemas.RolloutUpdateSchema)
    @bp.response(200, RolloutStateSchema, headers=ETAG_HEADER_DOC)
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
        if rollout.shadow_version in (stable, canary):  # it serves now: nothing left to mirror
            rollout.shadow_version, rollout.shadow_share = None, 0.0
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


# --- shadow mode ----------------------------------------------------------------------------

class ShadowUpdateSchema(_Strict):
    """Body of PUT /models/{name}/rollout/shadow: mirror a share of stable's traffic to version."""

    class Meta(_Strict.Meta):
        name = "ShadowUpdate"

    version = ma.fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    share = ma.fields.Float(required=True, allow_nan=False, validate=validate.Range(0.0, 1.0),
                            metadata={"description": "share of stable's predictions mirrored "
                                      "(0..1); 0 pauses mirroring, the version stays loaded",
                                      "example": 0.1})
    reason = ma.fields.String(load_default="", validate=validate.Length(max=2000), metadata={
        "description": "why (kept in the rollout history)"})


class ShadowStopQuery(_Strict):
    """Query of DELETE /models/{name}/rollout/shadow."""

    reason = ma.fields.String(load_default="", validate=validate.Length(max=2000), metadata={
        "description": "why (kept in the rollout history)"})


class ShadowQuery(_Strict):
    """Query of GET /models/{name}/rollout/shadow."""

    version = ma.fields.Integer(load_default=None, validate=validate.Range(min=1), metadata={
        "description": "report this shadow version's comparison (default: the current shadow)"})


class LatencySchema(ma.Schema):
    """Upstream latency of the compared predictions (quantiles: their bucket's upper bound)."""

    count = ma.fields.Integer(required=True)
    mean_s = ma.fields.Float(allow_none=True, required=True)
    p50_s = ma.fields.Float(allow_none=True, required=True)
    p95_s = ma.fields.Float(allow_none=True, required=True)
    p99_s = ma.fields.Float(allow_none=True, required=True)


class ShadowComparisonSchema(ma.Schema):
    """The shadow's answers compared with stable's, summed over every stored window."""

    primary_version = ma.fields.Integer(required=True, metadata={"description": "stable's"})
    shadow_version = ma.fields.Integer(required=True)
    requests = ma.fields.Integer(required=True, metadata={"description": "mirrored calls"})
    failed = ma.fields.Integer(required=True, metadata={"description": "shadow calls that failed"})
    dropped = ma.fields.Integer(required=True, metadata={
        "description": "predictions not mirrored: a worker's shadow queue was full"})
    compared = ma.fields.Integer(required=True)
    rows = ma.fields.Integer(required=True)
    agreed = ma.fields.Integer(required=True, metadata={
        "description": "rows where the shadow predicted stable's class"})
    agreement_rate = ma.fields.Float(allow_none=True, required=True)
    primary_latency = ma.fields.Nested(LatencySchema, required=True)
    shadow_latency = ma.fields.Nested(LatencySchema, required=True)
    since = ma.fields.AwareDateTime(allow_none=True, required=True)
    until = ma.fields.AwareDateTime(allow_none=True, required=True)


class ShadowSchema(ma.Schema):
    """Shadow mode's state and the comparison measured so far."""

    model = ma.fields.String(required=True)
    stable = ma.fields.Integer(allow_none=True, required=True)
    shadow = ma.fields.Integer(allow_none=True, required=True)
    shadow_share = ma.fields.Float(required=True)
    updated_at = ma.fields.AwareDateTime(required=True)
    comparisons = ma.fields.List(ma.fields.Nested(ShadowComparisonSchema), required=True, metadata={
        "description": "one per stable version the shadow was compared with"})


def comparisons(model, shadow_version):
    """Return the stored comparison of shadow_version, one summary per stable version."""
    if shadow_version is None:
        return []
    rows = db.session().execute(sa.select(ShadowComparison).where(
        ShadowComparison.model_id == model.id, ShadowComparison.shadow_version == shadow_version)
        .order_by(ShadowComparison.primary_version, ShadowComparison.id)).scalars().all()
    by_primary = {}
    for row in rows:
        by_primary.setdefault(row.primary_version, []).append(row)
    return [{"primary_version": primary, "shadow_version": shadow_version,
             **shadow.summarise(found)} for primary, found in by_primary.items()]


def _shadow_body(model, version=None):
    rollout = model.rollout
    return {"model": model.name, "stable": rollout.stable_version,
            "shadow": rollout.shadow_version, "shadow_share": rollout.shadow_share or 0.0,
            "updated_at": rollout.updated_at,
            "comparisons": comparisons(model, version or rollout.shadow_version)}


def _as_measurements(found):
    """Return comparisons as JSON-ready data for the history."""
    return {"comparisons": [{**c, "since": c["since"] and c["since"].isoformat(),
                             "until": c["until"] and c["until"].isoformat()} for c in found]}


@bp.route("/shadow", parameters=[IF_MATCH_DOC])
class ShadowMode(MethodView):
    @require_role("reader")
    @bp.arguments(ShadowQuery, location="query")
    @bp.response(200, ShadowSchema, headers=ETAG_HEADER_DOC)
    def get(self, query, name):
        """Read shadow mode's state and the comparison of the shadow's answers with stable's."""
        model = find_model(name)
        return _shadow_body(model, query["version"]), {"ETag": rollout_etag(model)}

    @require_role("deployer")
    @bp.arguments(ShadowUpdateSchema)
    @bp.response(200, ShadowSchema, headers=ETAG_HEADER_DOC)
    @bp.alt_response(412, response="PRECONDITION_FAILED")
    def put(self, body, name):
        """Mirror a share of stable's traffic to a version (start or change shadow mode)."""
        model = find_model(name)
        rollout = model.rollout
        check_if_match(rollout_etag(model))
        version = body["version"]
        if db.session().execute(sa.select(ModelVersion.id).where(
                ModelVersion.model_id == model.id, ModelVersion.version == version)).first() is None:
            raise Unprocessable(f"model {name!r} has no version {version}", field="version")
        if rollout.stable_version is None:
            raise Unprocessable(f"model {name!r} has no stable version to mirror", field="version")
        if version in (rollout.stable_version, rollout.canary_version):
            raise Unprocessable(f"version {version} already serves (stable or canary); shadow "
                                "another version", field="version")
        rollout.shadow_version, rollout.shadow_share = version, body["share"]
        rollout.updated_at = utcnow()
        history.record(model, rollout, {
            "step": "shadow", "reason": body["reason"] or
            f"mirror {body['share'] * 100:g}% of stable's traffic to version {version}"})
        db.session().commit()
        return _shadow_body(model), {"ETag": rollout_etag(model)}

    @require_role("deployer")
    @bp.arguments(ShadowStopQuery, location="query")
    @bp.response(200, ShadowSchema, headers=ETAG_HEADER_DOC)
    @bp.alt_response(409, response="DEFAULT_ERROR", description="no shadow version is set")
    @bp.alt_response(412, response="PRECONDITION_FAILED")
    def delete(self, query, name):
        """Stop shadow mode; the history keeps the comparison measured so far."""
        model = find_model(name)
        rollout = model.rollout
        check_if_match(rollout_etag(model))
        stopped = rollout.shadow_version
        if stopped is None:
            raise Conflict(f"model {name!r} has no shadow version to stop", field="name")
        found = comparisons(model, stopped)
        rollout.shadow_version, rollout.shadow_share = None, 0.0
        rollout.updated_at = utcnow()
        history.record(model, rollout, {
            "step": "shadow-stop", "reason": query["reason"] or f"stop mirroring to version {stopped}",
            "measurements": _as_measurements(found)})
        db.session().commit()
        return {**_shadow_body(model), "comparisons": found}, {"ETag": rollout_etag(model)}
