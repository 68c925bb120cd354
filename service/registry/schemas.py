"""Request and response bodies of the registry, as marshmallow schemas (they also make the OpenAPI document)."""
import marshmallow as ma
from flask import current_app
from marshmallow import validate

from service.tables import VERSION_STATUSES

NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
TAG_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,63}$"
MODEL_SORTS = ("name", "-name", "owner", "-owner", "created_at", "-created_at",
               "updated_at", "-updated_at")
VERSION_SORTS = ("version", "-version", "created_at", "-created_at")
MAX_PAGE = 1_000_000_000

NAME_VALIDATOR = validate.Regexp(NAME_PATTERN, error="must be 1-63 lowercase letters, digits, "
                                 "'-' or '_', starting with a letter or digit")


def _tags_field(**kwargs):
    return ma.fields.List(ma.fields.String(validate=validate.Regexp(
        TAG_PATTERN, error="must be 1-64 letters, digits or '_.:/-', starting with a letter or digit")),
        validate=validate.Length(max=32), **kwargs)


def _description_field(**kwargs):
    return ma.fields.String(validate=validate.Length(max=4000), **kwargs)


def _owner_field(**kwargs):
    return ma.fields.String(validate=validate.Length(max=128), **kwargs)


class _Strict(ma.Schema):
    """Unknown fields are an error (422), not silently dropped."""

    class Meta:
        unknown = ma.RAISE


# --- models -----------------------------------------------------------------------------

class ModelSchema(ma.Schema):
    """A registered model."""

    class Meta:
        name = "Model"

    name = ma.fields.String(required=True)
    description = ma.fields.String(required=True)
    owner = ma.fields.String(required=True)
    tags = ma.fields.List(ma.fields.String(), required=True)
    serving = ma.fields.Boolean(required=True, metadata={
        "description": "true when a stable or canary version is set"})
    created_at = ma.fields.AwareDateTime(required=True)
    updated_at = ma.fields.AwareDateTime(required=True)


class ModelCreateSchema(_Strict):
    """Body of POST /models."""

    class Meta(_Strict.Meta):
        name = "ModelCreate"

    name = ma.fields.String(required=True, validate=NAME_VALIDATOR, metadata={
        "description": "unique model name (used in URLs and by the model server)",
        "example": "penguins"})
    description = _description_field(load_default="")
    owner = _owner_field(load_default="")
    tags = _tags_field(load_default=list)


class ModelReplaceSchema(_Strict):
    """Body of PUT /models/{name}: every mutable field (the name cannot change)."""

    class Meta(_Strict.Meta):
        name = "ModelReplace"

    name = ma.fields.String(metadata={"description": "optional; must equal the name in the URL"})
    description = _description_field(required=True)
    owner = _owner_field(required=True)
    tags = _tags_field(required=True)


class ModelPatchSchema(_Strict):
    """Body of PATCH /models/{name}: the fields to change."""

    class Meta(_Strict.Meta):
        name = "ModelPatch"

    description = _description_field()
    owner = _owner_field()
    tags = _tags_field()

    @ma.validates_schema
    def _not_empty(self, data, **_kwargs):
        if not data:
            raise ma.ValidationError("set at least one of description, owner, tags", "_schema")


def _per_page_in_range(value):
    limit = current_app.config["MAX_PER_PAGE"]
    if not 1 <= value <= limit:
        raise ma.ValidationError(f"must be between 1 and {limit}")


class _PageQuery(_Strict):
    # The cap keeps the OFFSET within the databases' 64-bit integers.
    page = ma.fields.Integer(load_default=1, validate=validate.Range(min=1, max=MAX_PAGE),
                             metadata={"description": "1-based page number"})
    per_page = ma.fields.Integer(load_default=lambda: current_app.config["DEFAULT_PER_PAGE"],
                                 validate=_per_page_in_range,
                                 metadata={"description": "items per page (at most MAX_PER_PAGE)"})


class _CursorPageQuery(_PageQuery):
    cursor = ma.fields.String(validate=validate.Length(max=1024), metadata={"description": (
        "opaque position from a page's links.next or links.prev; an empty cursor starts at the "
        "first item. Cursor pages stay in place while rows are added or removed before them, "
        "and deep ones cost no more than the first. Not together with page.")})


class ModelListQuery(_CursorPageQuery):
    """Query of GET /models."""

    name = ma.fields.String(metadata={"description": "case-insensitive substring of the name"})
    tag = ma.fields.List(ma.fields.String(), metadata={"description": "has this tag (repeat: all)"})
    owner = ma.fields.String(metadata={"description": "exact owner"})
    status = ma.fields.String(validate=validate.OneOf(VERSION_STATUSES), metadata={
        "description": "has a version with this status"})
    sort = ma.fields.String(load_default="name", validate=validate.OneOf(MODEL_SORTS),
                            metadata={"description": "field to sort by; '-' for descending"})


class PageLinksSchema(ma.Schema):
    """Links to this, the first, last, next and previous pages (next/prev absent at the ends).

    On a page read by number, next and prev are page numbers; on a page read by cursor, they
    are cursors (first and last are always page numbers).
    """

    class Meta:
        name = "PageLinks"

    self = ma.fields.String(required=True)
    first = ma.fields.String(required=True)
    last = ma.fields.String(required=True)
    next = ma.fields.String()
    prev = ma.fields.String()


class _PageSchema(ma.Schema):
    total = ma.fields.Integer(required=True, metadata={"description": "items matching the filters"})
    page = ma.fields.Integer(required=True, allow_none=True, metadata={
        "description": "the page number asked for; null on a page read by cursor"})
    per_page = ma.fields.Integer(required=True)
    pages = ma.fields.Integer(required=True)
    links = ma.fields.Nested(PageLinksSchema, required=True)


class ModelPageSchema(_PageSchema):
    """One page of models."""

    class Meta:
        name = "ModelPage"

    items = ma.fields.List(ma.fields.Nested(ModelSchema), required=True)


# --- versions ---------------------------------------------------------------------------

class InputSpecSchema(ma.Schema):
    """One model input: dtype, shape, kind, and for categorical inputs the categories."""

    class Meta:
        name = "InputSpec"
        unknown = ma.INCLUDE

    dtype = ma.fields.String(required=True, validate=validate.OneOf(
        ("string", "bool", "float16", "bfloat16", "float32", "float64", "int8", "int16", "int32",
         "int64", "uint8", "uint16", "uint32", "uint64")))
    shape = ma.fields.List(ma.fields.Integer(validate=validate.Range(min=-1)), required=True)
    kind = ma.fields.String(required=True, validate=validate.OneOf(("numeric", "categorical")))
    categories = ma.fields.List(ma.fields.String())
    missing = ma.fields.Raw(allow_none=True)

    @ma.validates_schema
    def _categories_for_categorical(self, data, **_kwargs):
        if data.get("kind") == "categorical" and not data.get("categories"):
            raise ma.ValidationError("a categorical input needs its categories", "categories")


class InputSchemaSchema(ma.Schema):
    """The serving signature's inputs and outputs, as written by the model export."""

    class Meta:
        name = "InputSchema"
        unknown = ma.INCLUDE

    signature_name = ma.fields.String(load_default="serving_default")
    inputs = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Nested(InputSpecSchema),
                            required=True, validate=validate.Length(min=1))
    outputs = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Dict())
    classes = ma.fields.List(ma.fields.String())


class VersionSchema(ma.Schema):
    """A registered version of a model."""

    class Meta:
        name = "ModelVersion"

    model = ma.fields.Function(lambda v: v.model.name, required=True)
    version = ma.fields.Integer(required=True)
    status = ma.fields.String(required=True, validate=validate.OneOf(VERSION_STATUSES))
    artifact_uri = ma.fields.String(required=True)
    metrics = ma.fields.Dict(required=True)
    input_schema = ma.fields.Dict(required=True)
    feature_statistics = ma.fields.Dict(required=True)
    training_data_sha256 = ma.fields.String(allow_none=True, required=True)
    exported_at = ma.fields.AwareDateTime(allow_none=True, required=True)
    created_at = ma.fields.AwareDateTime(required=True)
    updated_at = ma.fields.AwareDateTime(required=True)


class VersionCreateSchema(_Strict):
    """Body of POST /models/{name}/versions (the export's tfship_metadata.json fields)."""

    class Meta(_Strict.Meta):
        name = "ModelVersionCreate"

    version = ma.fields.Integer(required=True, strict=True, validate=validate.Range(min=1))
    artifact_uri = ma.fields.String(required=True, validate=validate.Length(min=1, max=2048),
                                    metadata={"example": "file:///models/penguins/2"})
    metrics = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Raw(), load_default=dict)
    input_schema = ma.fields.Nested(InputSchemaSchema, required=True)
    feature_statistics = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Dict(),
                                        load_default=dict)
    training_data_sha256 = ma.fields.String(validate=validate.Regexp(
        r"^[0-9a-f]{64}$", error="must be 64 lowercase hex digits"), load_default=None)
    exported_at = ma.fields.AwareDateTime(load_default=None, metadata={
        "description": "when the version was exported (the metadata's created_at)"})


class VersionPatchSchema(_Strict):
    """Body of PATCH /models/{name}/versions/{version}. Serving statuses change through /rollout."""

    class Meta(_Strict.Meta):
        name = "ModelVersionPatch"

    status = ma.fields.String(validate=validate.OneOf(("staged", "retired"), error=(
        "must be staged or retired (stable, canary and previous are set through the rollout)")))
    metrics = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Raw())

    @ma.validates_schema
    def _not_empty(self, data, **_kwargs):
        if not data:
            raise ma.ValidationError("set at least one of status, metrics", "_schema")


class VersionListQuery(_CursorPageQuery):
    """Query of GET /models/{name}/versions."""

    status = ma.fields.String(validate=validate.OneOf(VERSION_STATUSES))
    sort = ma.fields.String(load_default="-version", validate=validate.OneOf(VERSION_SORTS))


class VersionPageSchema(_PageSchema):
    """One page of versions."""

    class Meta:
        name = "ModelVersionPage"

    items = ma.fields.List(ma.fields.Nested(VersionSchema), required=True)


# --- rollout ----------------------------------------------------------------------------

class RolloutSchema(ma.Schema):
    """Which versions serve: stable, canary (with its traffic share) and the previous stable."""

    class Meta:
        name = "Rollout"

    model = ma.fields.String(required=True)
    stable = ma.fields.Integer(allow_none=True, required=True)
    canary = ma.fields.Integer(allow_none=True, required=True)
    previous = ma.fields.Integer(allow_none=True, required=True)
    canary_weight = ma.fields.Float(required=True, metadata={"description": "0..1"})
    updated_at = ma.fields.AwareDateTime(required=True)


class RolloutUpdateSchema(_Strict):
    """Body of PUT /models/{name}/rollout. The previous version follows from the stable change."""

    class Meta(_Strict.Meta):
        name = "RolloutUpdate"

    stable = ma.fields.Integer(required=True, allow_none=True, strict=True,
                               validate=validate.Range(min=1))
    canary = ma.fields.Integer(load_default=None, allow_none=True, strict=True,
                               validate=validate.Range(min=1))
    canary_weight = ma.fields.Float(load_default=0.0, validate=validate.Range(0.0, 1.0),
                                    allow_nan=False)
    # Recorded in the rollout history with this transition (progressive delivery, issue 9).
    reason = ma.fields.String(load_default="", validate=validate.Length(max=2000), metadata={
        "description": "why this transition happens (kept in the rollout history)"})
    step = ma.fields.String(load_default=None, allow_none=True, validate=validate.Length(max=64),
                            metadata={"description": "the rollout step, e.g. '25%' or 'promote'",
                                      "example": "25%"})
    measurements = ma.fields.Dict(keys=ma.fields.String(), values=ma.fields.Raw(),
                                  load_default=dict, metadata={
                                      "description": "what the step measured (kept in the history)"})

    @ma.validates_schema
    def _consistent(self, data, **_kwargs):
        if data.get("canary") is not None:
            if data.get("stable") is None:
                raise ma.ValidationError("a canary needs a stable version", "canary")
            if data["canary"] == data["stable"]:
                raise ma.ValidationError("the canary must differ from the stable version", "canary")
        elif data.get("canary_weight", 0.0) > 0.0:
            raise ma.ValidationError("canary_weight must be 0 without a canary", "canary_weight")
