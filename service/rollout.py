"""Read a model's rollout state and a version's input schema: what the prediction gateway needs.

Both run inside an app context (a request, or ``with app.app_context()``) and read the
registry database. Both raise :class:`service.errors.NotFound` when the model or version
does not exist, and let database errors propagate (the gateway caches the last answer).
"""
import sqlalchemy as sa

from service import db
from service.errors import NotFound
from service.tables import ModelVersion, RegisteredModel, Rollout


def rollout_dict(rollout):
    """Return the rollout state of a Rollout row as plain data.

    "shadow" and "shadow_share" are present only while a shadow version is set (readers use
    ``state.get("shadow")``), so the state of a model without one reads as it always did.
    """
    state = {"stable": rollout.stable_version, "canary": rollout.canary_version,
             "previous": rollout.previous_version, "canary_weight": rollout.canary_weight}
    if rollout.shadow_version is not None:
        state["shadow"], state["shadow_share"] = rollout.shadow_version, rollout.shadow_share
    return state


def get_rollout_state(model_name):
    """Return {"stable", "canary", "previous", "canary_weight"[, "shadow", "shadow_share"]}."""
    row = db.session().execute(
        sa.select(Rollout).join(RegisteredModel).where(RegisteredModel.name == model_name)
    ).scalar_one_or_none()
    if row is None:
        raise NotFound(f"model {model_name!r} does not exist", field="name")
    return rollout_dict(row)


def get_version_schema(model_name, version):
    """Return {"input_schema", "feature_statistics"} of version of model_name."""
    row = db.session().execute(
        sa.select(ModelVersion.input_schema, ModelVersion.feature_statistics)
        .join(RegisteredModel).where(RegisteredModel.name == model_name,
                                     ModelVersion.version == int(version))
    ).one_or_none()
    if row is None:
        raise NotFound(f"model {model_name!r} has no version {version}", field="version")
    return {"input_schema": row.input_schema, "feature_statistics": row.feature_statistics}
