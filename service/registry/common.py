"""Helpers shared by the registry's resources: lookups, ETags and If-Match, paging."""
import hashlib
import math

import sqlalchemy as sa
from flask import request, url_for

from service import db
from service.errors import NotFound, PreconditionFailed
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


def page_of(query, *, page, per_page, order_by):
    """Return the page dict (items, total, page, per_page, pages, links) for a select of rows."""
    session = db.session()
    total = session.execute(sa.select(sa.func.count()).select_from(
        query.order_by(None).subquery())).scalar_one()
    items = session.execute(query.order_by(*order_by).limit(per_page)
                            .offset((page - 1) * per_page)).scalars().all()
    pages = max(1, math.ceil(total / per_page))
    return {"items": items, "total": total, "page": page, "per_page": per_page, "pages": pages,
            "links": _page_links(page, pages)}


def _page_links(page, pages):
    args = request.args.to_dict(flat=False)

    def link(number):
        return url_for(request.endpoint, **(request.view_args or {}), **{**args, "page": number})

    links = {"self": link(page), "first": link(1), "last": link(pages)}
    if page < pages:
        links["next"] = link(page + 1)
    if page > 1:
        links["prev"] = link(min(page - 1, pages))
    return links


def sort_order(sort, columns, tie_breaker):
    """Return ORDER BY clauses for a '-'-prefixed sort name, with a unique tie-breaker."""
    column = columns[sort.lstrip("-")]
    first = column.desc() if sort.startswith("-") else column.asc()
    return [first, tie_breaker.desc() if sort.startswith("-") else tie_breaker.asc()]
