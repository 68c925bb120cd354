"""rollout history: one row per rollout transition

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0002'
down_revision: Union[str, Sequence[str], None] = '0001'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Add the rollout_history table (expand only: nothing existing changes)."""
    op.create_table('rollout_history',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('recorded_at', sa.DateTime(), nullable=False),
    sa.Column('actor', sa.String(length=160), nullable=False),
    sa.Column('stable_version', sa.Integer(), nullable=True),
    sa.Column('canary_version', sa.Integer(), nullable=True),
    sa.Column('previous_version', sa.Integer(), nullable=True),
    sa.Column('canary_weight', sa.Float(), nullable=False),
    sa.Column('step', sa.String(length=64), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('measurements', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('rollout_history', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rollout_history_model_id'), ['model_id'], unique=False)


def downgrade() -> None:
    """Drop the rollout_history table."""
    with op.batch_alter_table('rollout_history', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rollout_history_model_id'))
    op.drop_table('rollout_history')
