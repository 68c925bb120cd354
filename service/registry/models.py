"""The /api/v1/models resource: list, create, read, replace, patch and delete models."""
import sqlalchemy as sa
from flask import url_for
from flask.views import MethodView
from flask_smorest import Blueprint

from service import db
from service.auth import require_role
from service.errors import Conflict, PreconditionFailed, Unprocessable
from service.registry import schemas
from service.registry.common import (ETAG_HEADER_DOC, IF_MATCH_DOC, check_if_match, etag,
                                     find_model, page_of, sort_order)
from service.tables import ModelTag, ModelVersion, RegisteredModel, Rollout, utcnow

bp = Blueprint("models", __name__, url_prefix="/api/v1/models",
               description="Registered models: create, list, read, update, delete.")

SORT_COLUMNS = {"name": RegisteredModel.name, "owner": RegisteredModel.owner,
                "created_at": RegisteredModel.created_at, "updated_at": RegisteredModel.updated_at}


def model_etag(model):
    """Return the ETag of a model."""
    return etag("model", model.id, model.revision, model.created_at)


def _headers(model):
    return {"ETag": model_etag(model)}


@bp.route("")
class Models(MethodView):
    @require_role("reader")
    @bp.arguments(schemas.ModelListQuery, location="query", as_kwargs=True)
    @bp.response(200, schemas.ModelPageSchema)
    def get(self, page, per_page, sort, name=None, tag=(), owner=None, status=None):
        """List models, filtered, sorted and paged."""
        query = sa.select(RegisteredModel)
        if name:
            query = query.where(RegisteredModel.name.icontains(name, autoescape=True))
        # IN (subquery) rather than EXISTS: each subquery runs once (SQLite would otherwise
        # probe it per model row).
        for one_tag in tag:
            query = query.where(RegisteredModel.id.in_(
                sa.select(ModelTag.model_id).where(ModelTag.tag == one_tag)))
        if owner is not None:
            query = query.where(RegisteredModel.owner == owner)
        if status is not None:
            query = query.where(RegisteredModel.id.in_(
                sa.select(ModelVersion.model_id).where(ModelVersion.status == status)))
        return page_of(query, page=page, per_page=per_page,
                       order_by=sort_order(sort, SORT_COLUMNS, RegisteredModel.id))

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
        if rollout.stable_version is not None or rollout.canary_version is not None:
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
