"""registry list indexes: a status listing kept by triggers, and indexes matching each filter + sort

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25

The model list's status filter ("has a version with this status") joined two large sets
(every model of an owner, every version with a status) on each request. ``model_statuses``
holds one row per model and status its versions have, with the model's owner and name,
so that status, status + owner, and their name order are each one index range. The
database keeps it current with triggers, whoever writes the versions (the API, the
reconciler, a bulk load).

Note for later migrations: SQLite's batch mode recreates a table by copying it, which drops
its triggers. A migration that batch-alters ``models`` or ``model_versions`` on SQLite must
create the triggers below again (``create_triggers()``).
"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0004'
down_revision: Union[str, Sequence[str], None] = '0003'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

# Statement bodies valid on SQLite and PostgreSQL alike: count a version in (or out of) its
# model's status row. (The SELECT needs its WHERE: without one SQLite would read ON CONFLICT
# as part of a join.)
_COUNT_IN = """
    INSERT INTO model_statuses (model_id, status, owner, name, versions)
    SELECT m.id, NEW.status, m.owner, m.name, 1 FROM models m WHERE m.id = NEW.model_id
    ON CONFLICT (model_id, status) DO UPDATE SET versions = model_statuses.versions + 1"""
_COUNT_OUT = """
    UPDATE model_statuses SET versions = versions - 1
    WHERE model_id = OLD.model_id AND status = OLD.status;
    DELETE FROM model_statuses
    WHERE model_id = OLD.model_id AND status = OLD.status AND versions <= 0"""
_FOLLOW_MODEL = """
    UPDATE model_statuses SET owner = NEW.owner, name = NEW.name WHERE model_id = NEW.id"""

_STATUS_CHANGED = "OLD.status IS DISTINCT FROM NEW.status OR OLD.model_id IS DISTINCT FROM NEW.model_id"
_MODEL_CHANGED = "OLD.owner IS DISTINCT FROM NEW.owner OR OLD.name IS DISTINCT FROM NEW.name"

TRIGGERS = ("model_versions_status_insert", "model_versions_status_update",
            "model_versions_status_delete", "models_listing_update")


def _sqlite_triggers():
    changed = _STATUS_CHANGED.replace("IS DISTINCT FROM", "IS NOT")
    model_changed = _MODEL_CHANGED.replace("IS DISTINCT FROM", "IS NOT")
    return [
        f"CREATE TRIGGER model_versions_status_insert AFTER INSERT ON model_versions "
        f"BEGIN {_COUNT_IN}; END",
        f"CREATE TRIGGER model_versions_status_update AFTER UPDATE OF status, model_id ON model_versions "
        f"WHEN {changed} BEGIN {_COUNT_OUT}; {_COUNT_IN}; END",
        f"CREATE TRIGGER model_versions_status_delete AFTER DELETE ON model_versions "
        f"BEGIN {_COUNT_OUT}; END",
        f"CREATE TRIGGER models_listing_update AFTER UPDATE OF owner, name ON models "
        f"WHEN {model_changed} BEGIN {_FOLLOW_MODEL}; END",
    ]


def _postgresql_triggers():
    def function(name, body):
        return (f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ "
                f"BEGIN {body}; RETURN NULL; END $$")

    return [
        function("model_statuses_count_in", _COUNT_IN),
        function("model_statuses_count_out", _COUNT_OUT),
        function("model_statuses_move", f"{_COUNT_OUT}; {_COUNT_IN}"),
        function("model_statuses_follow_model", _FOLLOW_MODEL),
        "CREATE TRIGGER model_versions_status_insert AFTER INSERT ON model_versions "
        "FOR EACH ROW EXECUTE FUNCTION model_statuses_count_in()",
        f"CREATE TRIGGER model_versions_status_update AFTER UPDATE OF status, model_id ON model_versions "
        f"FOR EACH ROW WHEN ({_STATUS_CHANGED}) EXECUTE FUNCTION model_statuses_move()",
        "CREATE TRIGGER model_versions_status_delete AFTER DELETE ON model_versions "
        "FOR EACH ROW EXECUTE FUNCTION model_statuses_count_out()",
        f"CREATE TRIGGER models_listing_update AFTER UPDATE OF owner, name ON models "
        f"FOR EACH ROW WHEN ({_MODEL_CHANGED}) EXECUTE FUNCTION model_statuses_follow_model()",
    ]


def create_triggers():
    """Create the triggers that keep model_statuses current, in this database's dialect."""
    dialect = op.get_bind().dialect.name
    if dialect not in ("sqlite", "postgresql"):
        raise NotImplementedError(f"model_statuses triggers are written for SQLite and PostgreSQL, "
                                  f"not {dialect}")
    for statement in _sqlite_triggers() if dialect == "sqlite" else _postgresql_triggers():
        op.execute(statement)


def drop_triggers():
    """Drop the triggers (and on PostgreSQL their functions)."""
    postgresql = op.get_bind().dialect.name == "postgresql"
    for name in TRIGGERS:
        table = "models" if name.startswith("models_") else "model_versions"
        op.execute(f"DROP TRIGGER IF EXISTS {name}" + (f" ON {table}" if postgresql else ""))
    if postgresql:
        for name in ("model_statuses_count_in", "model_statuses_count_out", "model_statuses_move",
                     "model_statuses_follow_model"):
            op.execute(f"DROP FUNCTION IF EXISTS {name}()")


def upgrade() -> None:
    """Add model_statuses (filled from the versions) and its triggers; index the list's paths."""
    op.create_table('model_statuses',
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('owner', sa.String(length=128), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('versions', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('model_id', 'status')
    )
    op.create_index('ix_model_statuses_status_owner_name', 'model_statuses',
                    ['status', 'owner', 'name', 'model_id'], unique=False)
    op.create_index('ix_model_statuses_status_name', 'model_statuses',
                    ['status', 'name', 'model_id'], unique=False)
    op.execute("INSERT INTO model_statuses (model_id, status, owner, name, versions) "
               "SELECT m.id, v.status, m.owner, m.name, count(*) FROM model_versions v "
               "JOIN models m ON m.id = v.model_id GROUP BY m.id, v.status, m.owner, m.name")
    create_triggers()
    # The owner filter in name order, and the tag filter, become index-only range scans.
    op.create_index('ix_models_owner_name', 'models', ['owner', 'name', 'id'], unique=False)
    op.drop_index('ix_model_tags_tag', table_name='model_tags')
    op.create_index('ix_model_tags_tag_model', 'model_tags', ['tag', 'model_id'], unique=False)


def downgrade() -> None:
    """Drop model_statuses and its triggers, and the list's indexes; restore the tag index."""
    op.drop_index('ix_model_tags_tag_model', table_name='model_tags')
    op.create_index('ix_model_tags_tag', 'model_tags', ['tag'], unique=False)
    op.drop_index('ix_models_owner_name', table_name='models')
    drop_triggers()
    op.drop_index('ix_model_statuses_status_name', table_name='model_statuses')
    op.drop_index('ix_model_statuses_status_owner_name', table_name='model_statuses')
    op.drop_table('model_statuses')
