"""The registry's tables: models, their tags and versions, rollout state and API keys.

Every mutable row carries ``revision``, SQLAlchemy's version counter: an UPDATE only
succeeds when the row still has the revision it was read with, so two concurrent writers
cannot both win (the loser gets StaleDataError, answered as 412).
"""
import datetime as dt

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from service.db import Base

VERSION_STATUSES = ("staged", "canary", "stable", "previous", "retired")
ROLES = ("reader", "predictor", "deployer", "admin")


def utcnow():
    """Return the current time, timezone-aware UTC."""
    return dt.datetime.now(dt.timezone.utc)


def is_serving(stable_version, canary_version):
    """Return whether a model with these rollout versions takes traffic (stable or canary set)."""
    return stable_version is not None or canary_version is not None


class UTCDateTime(sa.types.TypeDecorator):
    """A timestamp stored naive-UTC everywhere and returned timezone-aware (SQLite drops zones)."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return None if value is None else value.astimezone(dt.timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value, dialect):
        return None if value is None else value.replace(tzinfo=dt.timezone.utc)


class RegisteredModel(Base):
    """A named model: its owner, description and tags; versions hang below it."""

    __tablename__ = "models"
    # The owner filter in name order (the list's default sort) is one index-only range; the
    # owner index alone keeps serving sort=owner (ties by id).
    __table_args__ = (sa.Index("ix_models_owner_name", "owner", "name", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(64), unique=True)
    description: Mapped[str] = mapped_column(sa.Text, default="")
    owner: Mapped[str] = mapped_column(sa.String(128), default="", index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow,
                                                    index=True)
    revision: Mapped[int] = mapped_column(default=1)

    tag_rows: Mapped[list["ModelTag"]] = relationship(
        cascade="all, delete-orphan", passive_deletes=True, lazy="selectin",
        order_by="ModelTag.tag")
    versions: Mapped[list["ModelVersion"]] = relationship(
        back_populates="model", cascade="all, delete-orphan", passive_deletes=True,
        lazy="raise_on_sql")
    rollout: Mapped["Rollout"] = relationship(
        back_populates="model", cascade="all, delete-orphan", passive_deletes=True,
        uselist=False, lazy="selectin")

    __mapper_args__ = {"version_id_col": revision}

    @property
    def tags(self):
        return [row.tag for row in self.tag_rows]

    @property
    def serving(self):
        """Whether the model takes traffic: its rollout has a stable or canary version."""
        return self.rollout is not None and is_serving(self.rollout.stable_version,
                                                       self.rollout.canary_version)

    @tags.setter
    def tags(self, values):
        wanted = sorted(set(values))
        kept = [row for row in self.tag_rows if row.tag in wanted]
        have = {row.tag for row in kept}
        self.tag_rows = kept + [ModelTag(tag=tag) for tag in wanted if tag not in have]


class ModelTag(Base):
    """One tag of a model (a row each, so that filtering by tag uses an index)."""

    __tablename__ = "model_tags"
    __table_args__ = (sa.Index("ix_model_tags_tag_model", "tag", "model_id"),)

    model_id: Mapped[int] = mapped_column(sa.ForeignKey("models.id", ondelete="CASCADE"),
                                          primary_key=True)
    tag: Mapped[str] = mapped_column(sa.String(64), primary_key=True)


class ModelVersion(Base):
    """One exported version: where its artifact lives, its metrics, input schema and statistics."""

    __tablename__ = "model_versions"
    __table_args__ = (sa.UniqueConstraint("model_id", "version"),
                      sa.CheckConstraint(f"status IN {VERSION_STATUSES}", name="version_status"))

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(sa.ForeignKey("models.id", ondelete="CASCADE"),
                                          index=True)
    version: Mapped[int]
    status: Mapped[str] = mapped_column(sa.String(16), default="staged", index=True)
    artifact_uri: Mapped[str] = mapped_column(sa.Text)
    metrics: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    input_schema: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    feature_statistics: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    training_data_sha256: Mapped[str | None] = mapped_column(sa.String(64))
    exported_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    revision: Mapped[int] = mapped_column(default=1)

    model: Mapped[RegisteredModel] = relationship(back_populates="versions")

    __mapper_args__ = {"version_id_col": revision}


class ModelStatus(Base):
    """A status that at least one of a model's versions has, with the model's owner and name.

    Derived data, written only by database triggers (migration 0004) whenever a version is
    inserted, deleted or changes status, or a model's owner changes: never write it from code.
    It turns the list's status filter (alone or with an owner, in name order) into one index
    range, where joining models with versions would cost a pass over both.
    """

    __tablename__ = "model_statuses"
    __table_args__ = (
        sa.Index("ix_model_statuses_status_owner_name", "status", "owner", "name", "model_id"),
        sa.Index("ix_model_statuses_status_name", "status", "name", "model_id"),
    )

    model_id: Mapped[int] = mapped_column(sa.ForeignKey("models.id", ondelete="CASCADE"),
                                          primary_key=True)
    status: Mapped[str] = mapped_column(sa.String(16), primary_key=True)
    owner: Mapped[str] = mapped_column(sa.String(128))
    name: Mapped[str] = mapped_column(sa.String(64))
    versions: Mapped[int] = mapped_column(doc="how many of the model's versions have the status")


class Rollout(Base):
    """Which versions of a model serve: stable, canary (with its traffic weight), previous.

    A shadow version receives a mirrored copy of shadow_share of stable's traffic; its answers
    are compared and never returned to a client.
    """

    __tablename__ = "rollouts"
    __table_args__ = (sa.CheckConstraint("canary_weight >= 0 AND canary_weight <= 1",
                                         name="canary_weight_range"),
                      sa.CheckConstraint("shadow_share >= 0 AND shadow_share <= 1",
                                         name="shadow_share_range"))

    model_id: Mapped[int] = mapped_column(sa.ForeignKey("models.id", ondelete="CASCADE"),
                                          primary_key=True)
    stable_version: Mapped[int | None]
    canary_version: Mapped[int | None]
    previous_version: Mapped[int | None]
    canary_weight: Mapped[float] = mapped_column(sa.Float, default=0.0)
    shadow_version: Mapped[int | None]
    shadow_share: Mapped[float] = mapped_column(sa.Float, default=0.0, server_default=sa.text("0"))
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    revision: Mapped[int] = mapped_column(default=1)

    model: Mapped[RegisteredModel] = relationship(back_populates="rollout")

    __mapper_args__ = {"version_id_col": revision}


class ApiKey(Base):
    """An API key: found by its public prefix, checked against an HMAC-SHA-256 digest."""

    __tablename__ = "api_keys"
    __table_args__ = (sa.CheckConstraint(f"role IN {ROLES}", name="api_key_role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    prefix: Mapped[str] = mapped_column(sa.String(16), unique=True)
    digest: Mapped[str] = mapped_column(sa.String(64))
    name: Mapped[str] = mapped_column(sa.String(128))
    role: Mapped[str] = mapped_column(sa.String(16))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class RolloutEvent(Base):
    """One rollout transition, kept forever: when, who, the state it set, and why."""

    __tablename__ = "rollout_history"

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(sa.ForeignKey("models.id", ondelete="CASCADE"),
                                          index=True)
    recorded_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(sa.String(160))
    stable_version: Mapped[int | None]
    canary_version: Mapped[int | None]
    previous_version: Mapped[int | None]
    canary_weight: Mapped[float] = mapped_column(sa.Float)
    shadow_version: Mapped[int | None]
    shadow_share: Mapped[float | None] = mapped_column(sa.Float)
    step: Mapped[str | None] = mapped_column(sa.String(64))
    reason: Mapped[str] = mapped_column(sa.Text, default="")
    measurements: Mapped[dict] = mapped_column(sa.JSON, default=dict)


class ShadowComparison(Base):
    """One worker's shadow comparison counts over one flush window (rows are only inserted)."""

    __tablename__ = "shadow_comparisons"
    __table_args__ = (sa.Index("ix_shadow_comparisons_model_shadow", "model_id", "shadow_version",
                               "window_start"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    model_id: Mapped[int] = mapped_column(sa.ForeignKey("models.id", ondelete="CASCADE"))
    primary_version: Mapped[int]
    shadow_version: Mapped[int]
    window_start: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    window_end: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    requests: Mapped[int]
    failed: Mapped[int]
    dropped: Mapped[int]
    rows: Mapped[int]
    agreed: Mapped[int]
    primary_latency_sum_s: Mapped[float] = mapped_column(sa.Float)
    shadow_latency_sum_s: Mapped[float] = mapped_column(sa.Float)
    primary_latency_buckets: Mapped[list] = mapped_column(sa.JSON)
    shadow_latency_buckets: Mapped[list] = mapped_column(sa.JSON)
