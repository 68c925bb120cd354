"""The /api/v1/models/{name}/versions resource: register, list, read, patch and delete versions."""
import functools

import sqlalchemy as sa
from flask import url_for
from flask.views import MethodView
from flask_smorest import Blueprint

from service import db
from service.auth import require_role
from service.errors import Conflict
from service.registry import schemas
from service.registry.common import (ETAG_HEADER_DOC, IF_MATCH_DOC, check_if_match, etag,
                                     find_model, find_version)
from service.registry.paging import list_page, page_statements, sort_order
from service.tables import ModelVersion, utcnow

bp = Blueprint("versions", __name__, url_prefix="/api/v1/models/<name>/versions",
               description="Exported versions of a model: artifact, metrics, input schema, statistics.")

SORT_COLUMNS = {"version": ModelVersion.version, "created_at": ModelVersion.created_at}
SERVING_STATUSES = ("stable", "canary", "previous")


@functools.lru_cache(maxsize=64)
def _list_statements(status, sort, mode):
    """(page statement, count statement) of a version list, built once per shape and mode."""
    keys = sa.select(ModelVersion.id).where(ModelVersion.model_id == sa.bindparam("model_id"))
    if status:
        keys = keys.where(ModelVersion.status == sa.bindparam("status"))
    return page_statements(keys, _order(sort), mode, _versions_statement)


@functools.lru_cache(maxsize=8)
def _order(sort):
    return sort_order(sort, SORT_COLUMNS, ModelVersion.id)


def _versions_statement(page_keys, order_by, total):
    return (sa.select(page_keys.c.sort_key, page_keys.c.sort_id, total, ModelVersion)
            .join(page_keys, ModelVersion.id == page_keys.c.sort_id).order_by(*order_by))


def _run(statement, params):
    return db.session().execute(statement, params).all()


def _versions(rows):
    return [(row.sort_key, row.sort_id, row.ModelVersion) for row in rows]


def version_etag(row):
    """Return the ETag of a version."""
    return etag("version", row.id, row.revision, row.created_at)


@bp.route("")
class Versions(MethodView):
    @require_role("reader")
    @bp.arguments(schemas.VersionListQuery(), location="query", as_kwargs=True)
    @bp.response(200, schemas.VersionPageSchema)
    def get(self, name, page, per_page, sort, status=None, cursor=None):
        """List a model's versions (paged by page number or cursor), with the total."""
        model = find_model(name)
        return list_page(functools.partial(_list_statements, status is not None, sort),
                         {"model_id": model.id, "status": status}, order=_order(sort), page=page,
                         per_page=per_page, cursor=cursor, run=_run, build=_versions)

    @require_role("deployer")
    @bp.arguments(schemas.VersionCreateSchema)
    @bp.response(201, schemas.VersionSchema, headers={
        **ETAG_HEADER_DOC, "Location": {"description": "URL of the new version",
                                        "schema": {"type": "string"}}})
    @bp.alt_response(409, response="CONFLICT")
    def post(self, body, name):
        """Register a version (status staged)."""
        session = db.session()
        model = find_model(name)
        row = ModelVersion(model=model, status="staged", **body)
        session.add(row)
        try:
            session.commit()
        except sa.exc.IntegrityError:
            session.rollback()
            raise Conflict(f"model {name!r} already has version {body['version']}", field="version")
        location = url_for("versions.Version", name=name, version=row.version)
        return row, 201, {"ETag": version_etag(row), "Location": location}


@bp.route("/<int:version>", parameters=[IF_MATCH_DOC])
class Version(MethodView):
    @require_role("reader")
    @bp.response(200, schemas.VersionSchema, headers=ETAG_HEADER_DOC)
    def get(self, name, version):
        """Read a version."""
        row = find_version(find_model(name), version)
        return row, {"ETag": version_etag(row)}

    @require_role("deployer")
    @bp.arguments(schemas.VersionPatchSchema)
    @bp.response(200, schemas.VersionSchema, headers=ETAG_HEADER_DOC)
    @bp.alt_response(409, response="CONFLICT")
    @bp.alt_response(412, response="PRECONDITION_FAILED")
    def patch(self, body, name, version):
        """Change a version's metrics, or move it between staged and retired."""
        session = db.session()
        row = find_version(find_model(name), version)
        check_if_match(version_etag(row))
        if "status" in body and row.status in SERVING_STATUSES:
            raise Conflict(f"version {version} is {row.status}; change it through the rollout",
                           field="status")
        for field, value in body.items():
            setattr(row, field, value)
        row.updated_at = utcnow()
        session.commit()
        return row, {"ETag": version_etag(row)}

    @require_role("admin")
    @bp.response(204)
    @bp.alt_response(409, response="CONFLICT")
    @bp.alt_response(412, response="PRECONDITION_FAILED")
    def delete(self, name, version):
        """Delete a version; refused while the rollout uses it (stable, canary or previous)."""
        session = db.session()
        row = find_version(find_model(name), version)
        check_if_match(version_etag(row))
        if row.status in SERVING_STATUSES:
            raise Conflict(f"version {version} is {row.status}; take it out of the rollout first",
                           field="version")
        session.delete(row)
        session.commit()
        return None
