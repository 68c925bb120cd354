"""The rollout history: every transition of a model's rollout state, who made it and why.

Each PUT of the rollout state appends one row in the same transaction as the change, so the
history is complete by construction: no transition can commit without its entry. The rows
are read, newest first, at GET /api/v1/models/{name}/rollout/history (reader role). Shadow
mode's start and stop (PUT/DELETE .../rollout/shadow) are transitions too: steps "shadow" and
"shadow-stop", the stop carrying the comparison measured so far.
"""
import marshmallow as ma
import sqlalchemy as sa
from flask import g

from service import db
from service.registry.common import page_of
from service.registry.schemas import _PageQuery, _PageSchema
from service.tables import RolloutEvent


def actor():
    """Return who is calling, as 'key name (prefix)' (the key itself is never stored)."""
    caller = g.get("api_key")
    if caller is None:
        return "unknown"
    return f"{caller.name} ({caller.prefix})"[:160]


def record(model, rollout, body):
    """Add the history entry of the transition that set rollout (committed by the caller)."""
    db.session().add(RolloutEvent(
        model_id=model.id, actor=actor(), stable_version=rollout.stable_version,
        canary_version=rollout.canary_version, previous_version=rollout.previous_version,
        canary_weight=rollout.canary_weight, shadow_version=rollout.shadow_version,
        shadow_share=rollout.shadow_share, step=body.get("step"),
        reason=body.get("reason") or "", measurements=body.get("measurements") or {}))


def page(model, query):
    """Return one page of model's history, newest first."""
    select = sa.select(RolloutEvent).where(RolloutEvent.model_id == model.id)
    return page_of(select, page=query["page"], per_page=query["per_page"],
                   order_by=[RolloutEvent.id.desc()])


class HistoryQuery(_PageQuery):
    """Query of GET /models/{name}/rollout/history."""


class RolloutEventSchema(ma.Schema):
    """One rollout transition: the state it set, when, by whom, at which step and why."""

    class Meta:
        name = "RolloutEvent"

    id = ma.fields.Integer(required=True, metadata={"description": "increases with time"})
    recorded_at = ma.fields.AwareDateTime(required=True)
    actor = ma.fields.String(required=True, metadata={"description": "API key name (prefix)"})
    stable = ma.fields.Integer(attribute="stable_version", allow_none=True, required=True)
    canary = ma.fields.Integer(attribute="canary_version", allow_none=True, required=True)
    previous = ma.fields.Integer(attribute="previous_version", allow_none=True, required=True)
    canary_weight = ma.fields.Float(required=True)
    shadow = ma.fields.Integer(attribute="shadow_version", allow_none=True, metadata={
        "description": "the version receiving mirrored traffic (shadow mode), if any"})
    shadow_share = ma.fields.Float(allow_none=True, metadata={
        "description": "share of stable's traffic mirrored to the shadow (0..1)"})
    step = ma.fields.String(allow_none=True, required=True)
    reason = ma.fields.String(required=True)
    measurements = ma.fields.Dict(required=True)


class HistoryPageSchema(_PageSchema):
    """One page of a model's rollout history, newest first."""

    class Meta:
        name = "RolloutHistoryPage"

    items = ma.fields.List(ma.fields.Nested(RolloutEventSchema), required=True)
