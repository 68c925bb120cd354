"""Helpers shared by the registry's resources: lookups, ETags and If-Match (paging: paging.py)."""
import hashlib

import sqlalchemy as sa
from flask import request

from service import db
from service.errors import NotFound, PreconditionFailed
from service.registry.paging import page_of  # noqa: F401  (re-exported for history.py)
from service.tables import ModelVersion, RegisteredModel

ETAG_HEADER_DOC = {"ETag": {"description": "entity tag of the resource; send it back in If-Match",
                            "schema": {"type": "string"}}}
IF_MATCH_DOC = {"in": "header", "name": "If-Match", "required": False, "schema": {"type": "string"},
                "description": "ETag from a previous response; a stale one gets 412"}


def find_model(name):
    """Return the model called name or raise NotFound."""
    query = sa.select(RegisteredModel).where(RegisteredModel.name == name)
    model = db.session().execute(query).scalar_one_or_none()
    if model is None:
        raise NotFound(f"model {name!r} does not exist", field="name")
    return model


def find_version(model, version):
    """Return version of model or raise NotFound."""
    row = db.session().execute(sa.select(ModelVersion).where(
        ModelVersion.model_id == model.id, ModelVersion.version == version)).scalar_one_or_none()
    if row is None:
        raise NotFound(f"model {model.name!r} has no version {version}", field="version")
    return row


def etag(kind, row_id, revision, created_at):
    """Return the strong ETag of a resource at a revision (creation time tells apart re-creations)."""
    text = f"{kind}:{row_id}:{revision}:{created_at.isoformat()}"
    return '"' + hashlib.sha256(text.encode()).hexdigest()[:32] + '"'


def check_if_match(current):
    """Raise 412 when the request carries If-Match and it does not match the current ETag."""
    if_match = request.headers.get("If-Match")
    if if_match is None:
        return
    if not (request.if_match.star_tag or request.if_match.contains(current.strip('"'))):
        raise PreconditionFailed("the resource changed since you read it (If-Match does not match "
                                 "its ETag); fetch it again and retry", field="If-Match",
                                 details={"current_etag": current})
