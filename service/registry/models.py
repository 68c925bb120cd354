"""The /api/v1/models resource: list, create, read, replace, patch and delete models."""
import functools
from typing import NamedTuple

import sqlalchemy as sa
from flask import jsonify, url_for
from flask.views import MethodView
from flask_smorest import Blueprint

from service import db
from service.auth import require_role
from service.errors import Conflict, PreconditionFailed, Unprocessable
from service.registry import schemas
from service.registry.common import ETAG_HEADER_DOC, IF_MATCH_DOC, check_if_match, etag, find_model
from service.registry.paging import list_page, page_statements, sort_order
from service.tables import ModelStatus, ModelTag, RegisteredModel, Rollout, is_serving, utcnow

bp = Blueprint("models", __name__, url_prefix="/api/v1/models",
               description="Registered models: create, list, read, update, delete.")


def model_etag(model):
    """Return the ETag of a model."""
    return etag("model", model.id, model.revision, model.created_at)


def _headers(model):
    return {"ETag": model_etag(model)}


@bp.route("")
class Models(MethodView):
    @require_role("reader")
    @bp.arguments(schemas.ModelListQuery(), location="query", as_kwargs=True)
    @bp.response(200, schemas.ModelPageSchema)
    def get(self, page, per_page, sort, name=None, tag=(), owner=None, status=None, cursor=None):
        """List models, filtered, sorted and paged (by page number or cursor), with the total."""
        shape = ListShape(status is not None, owner is not None, bool(name), len(tag), sort)
        # The items are already JSON values (summaries): a Response skips re-serialising.
        return jsonify(list_page(
            functools.partial(list_statements, shape), list_params(name, tag, owner, status),
            order=listing(shape)[1], page=page, per_page=per_page, cursor=cursor,
            run=_run, build=summaries))

    @require_role("deployer")
    @bp.arguments(schemas.ModelCreateSchema)
    @bp.response(201, schemas.ModelSchema, headers={
        **ETAG_HEADER_DOC, "Location": {"description": "URL of the new model",
                                        "schema": {"type": "string"}}})
    @bp.alt_response(409, response="CONFLICT")
    def post(self, body):
        """Register a model."""
        session = db.session()
        model = RegisteredModel(name=body["name"], description=body["description"],
                                owner=body["owner"], rollout=Rollout())
        model.tags = body["tags"]
        session.add(model)
        try:
            session.commit()
        except sa.exc.IntegrityError:
            session.rollback()
            raise Conflict(f"a model named {body['name']!r} already exists", field="name")
        return model, 201, {**_headers(model), "Location": url_for("models.Model", name=model.name)}


@bp.route("/<name>", parameters=[IF_MATCH_DOC])
class Model(MethodView):
    @require_role("reader")
    @bp.response(200, schemas.ModelSchema, headers=ETAG_HEADER_DOC)
    def get(self, name):
        """Read a model."""
        model = find_model(name)
        return model, _headers(model)

    @require_role("deployer")
    @bp.arguments(schemas.ModelReplaceSchema)
    @bp.response(200, schemas.ModelSchema, headers=ETAG_HEADER_DOC)
    @bp.alt_response(412, response="PRECONDITION_FAILED")
    def put(self, body, name):
        """Replace a model's description, owner and tags."""
        if body.get("name", name) != name:
            raise Unprocessable("the name cannot change (it is the model's identity)", field="name")
        return _update(name, body)

    @require_role("deployer")
    @bp.arguments(schemas.ModelPatchSchema)
    @bp.response(200, schemas.ModelSchema, headers=ETAG_HEADER_DOC)
    @bp.alt_response(412, response="PRECONDITION_FAILED")
    def patch(self, body, name):
        """Change some of a model's description, owner and tags."""
        return _update(name, body)

    @require_role("admin")
    @bp.response(204)
    @bp.alt_response(409, response="CONFLICT")
    @bp.alt_response(412, response="PRECONDITION_FAILED")
    def delete(self, name):
        """Delete a model and its versions; refused while it serves (stable or canary set)."""
        session = db.session()
        model = find_model(name)
        check_if_match(model_etag(model))
        rollout = model.rollout
        if model.serving:
            raise Conflict(f"model {name!r} is serving (stable {rollout.stable_version}, canary "
                           f"{rollout.canary_version}); clear its rollout first", field="name")
        deleted = session.execute(sa.delete(RegisteredModel).where(
            RegisteredModel.id == model.id, RegisteredModel.revision == model.revision,
            ~sa.exists().where(Rollout.model_id == RegisteredModel.id, sa.or_(
                Rollout.stable_version.is_not(None), Rollout.canary_version.is_not(None))))).rowcount
        if deleted != 1:
            session.rollback()
            raise PreconditionFailed(f"model {name!r} changed while being deleted; read it again",
                                     field="If-Match")
        session.commit()
        return None


MODELS, STATUSES, TAGS, ROLLOUTS = (RegisteredModel.__table__, ModelStatus.__table__,
                                   ModelTag.__table__, Rollout.__table__)
LIKE_ESCAPE = "/"  # the name filter's LIKE escape character


class ListShape(NamedTuple):
    """What decides a list's statements (not the values): which filters are given, the sort."""

    status: bool
    owner: bool
    name: bool
    tags: int
    sort: str


@functools.lru_cache(maxsize=256)
def listing(shape):
    """Return (select of the matching models, SortOrder) for a list of this shape.

    The filters' values are bind parameters (list_params() gives them). With a status filter
    the rows come from model_statuses (kept by triggers), whose indexes hold status, owner and
    name together: status (+ owner) in name or owner order is one index range, counted and
    paged without touching models. Every other filter narrows it. Core columns, not ORM
    entities: the list reads keys and plain values, nothing to track.
    """
    if not shape.status:
        source, model_id = MODELS, MODELS.c.id
        columns = {"name": MODELS.c.name, "owner": MODELS.c.owner}
    else:
        source, model_id = STATUSES, STATUSES.c.model_id
        columns = {"name": STATUSES.c.name, "owner": STATUSES.c.owner}
    columns.update(created_at=MODELS.c.created_at, updated_at=MODELS.c.updated_at)
    order = sort_order(shape.sort, columns, model_id)
    needs_models = shape.status and shape.sort.lstrip("-") in ("created_at", "updated_at")
    keys = sa.select(model_id).select_from(
        source.join(MODELS, MODELS.c.id == model_id) if needs_models else source)
    if shape.status:
        keys = keys.where(STATUSES.c.status == sa.bindparam("status"))
    if shape.owner:
        keys = keys.where(columns["owner"] == sa.bindparam("owner"))
    if shape.name:
        keys = keys.where(columns["name"].icontains(sa.bindparam("name"), escape=LIKE_ESCAPE))
    # IN (subquery) rather than EXISTS: each subquery runs once (SQLite would otherwise
    # probe it per model row).
    for index in range(shape.tags):
        keys = keys.where(model_id.in_(
            sa.select(TAGS.c.model_id).where(TAGS.c.tag == sa.bindparam(f"tag_{index}"))))
    return keys, order


def list_params(name, tags, owner, status):
    """The values of listing()'s bind parameters; name matches as a plain substring."""
    params = {"status": status, "owner": owner}
    if name:
        params["name"] = (name.replace(LIKE_ESCAPE, 2 * LIKE_ESCAPE).replace("%", LIKE_ESCAPE + "%")
                          .replace("_", LIKE_ESCAPE + "_"))
    params.update((f"tag_{index}", tag) for index, tag in enumerate(tags))
    return params


@functools.lru_cache(maxsize=1024)
def list_statements(shape, mode):
    """(page statement, count statement) of a list of this shape in a paging mode, built once."""
    keys, order = listing(shape)
    return page_statements(keys, order, mode, summaries_statement)


def summaries_statement(page_keys, order_by, total):
    """One statement: the page's keys joined to their models, rollouts and tags, in order,
    with the list's total."""
    return (sa.select(page_keys.c.sort_key, page_keys.c.sort_id, total, MODELS.c.name,
                      MODELS.c.description, MODELS.c.owner, MODELS.c.created_at,
                      MODELS.c.updated_at, ROLLOUTS.c.stable_version, ROLLOUTS.c.canary_version,
                      TAGS.c.tag)
            .select_from(page_keys.join(MODELS, MODELS.c.id == page_keys.c.sort_id)
                         .outerjoin(ROLLOUTS, ROLLOUTS.c.model_id == MODELS.c.id)
                         .outerjoin(TAGS, TAGS.c.model_id == MODELS.c.id))
            .order_by(*order_by, TAGS.c.tag))


def _run(statement, params):
    return db.read_connection().execute(statement, params).all()


def summaries(rows):
    """Return [(sort_key, sort_id, item)] of summaries_statement's rows, items ready for JSON.

    The items are written here rather than by ModelSchema: marshmallow took a tenth of the
    list's CPU time; a test holds each item equal to the model's own GET body.
    """
    found = []
    for row in rows:
        if found and found[-1][1] == row.sort_id:
            found[-1][2]["tags"].append(row.tag)
            continue
        found.append((row.sort_key, row.sort_id, {
            "name": row.name, "description": row.description, "owner": row.owner,
            "tags": [] if row.tag is None else [row.tag],
            "serving": is_serving(row.stable_version, row.canary_version),
            "created_at": row.created_at.isoformat(), "updated_at": row.updated_at.isoformat()}))
    return found


def _update(name, changes):
    session = db.session()
    model = find_model(name)
    check_if_match(model_etag(model))
    for field in ("description", "owner", "tags"):
        if field in changes:
            setattr(model, field, changes[field])
    model.updated_at = utcnow()  # also bumps the revision when only tags changed
    session.commit()
    return model, _headers(model)
