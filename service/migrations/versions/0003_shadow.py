"""shadow mode: a shadow candidate on the rollout state, and persisted shadow comparisons

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25

"""
from typing import Sequence, Union

from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision: str = '0003'
down_revision: Union[str, Sequence[str], None] = '0002'
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    """Add shadow columns and the shadow_comparisons table (expand only: old code keeps working)."""
    with op.batch_alter_table('rollouts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('shadow_version', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('shadow_share', sa.Float(), nullable=False,
                                      server_default=sa.text('0')))
        batch_op.create_check_constraint('shadow_share_range',
                                         'shadow_share >= 0 AND shadow_share <= 1')
    with op.batch_alter_table('rollout_history', schema=None) as batch_op:
        batch_op.add_column(sa.Column('shadow_version', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('shadow_share', sa.Float(), nullable=True))
    op.create_table('shadow_comparisons',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('model_id', sa.Integer(), nullable=False),
    sa.Column('primary_version', sa.Integer(), nullable=False),
    sa.Column('shadow_version', sa.Integer(), nullable=False),
    sa.Column('window_start', sa.DateTime(), nullable=False),
    sa.Column('window_end', sa.DateTime(), nullable=False),
    sa.Column('requests', sa.Integer(), nullable=False),
    sa.Column('failed', sa.Integer(), nullable=False),
    sa.Column('dropped', sa.Integer(), nullable=False),
    sa.Column('rows', sa.Integer(), nullable=False),
    sa.Column('agreed', sa.Integer(), nullable=False),
    sa.Column('primary_latency_sum_s', sa.Float(), nullable=False),
    sa.Column('shadow_latency_sum_s', sa.Float(), nullable=False),
    sa.Column('primary_latency_buckets', sa.JSON(), nullable=False),
    sa.Column('shadow_latency_buckets', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['model_id'], ['models.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('shadow_comparisons', schema=None) as batch_op:
        batch_op.create_index('ix_shadow_comparisons_model_shadow',
                              ['model_id', 'shadow_version', 'window_start'], unique=False)


def downgrade() -> None:
    """Drop the shadow_comparisons table and the shadow columns."""
    with op.batch_alter_table('shadow_comparisons', schema=None) as batch_op:
        batch_op.drop_index('ix_shadow_comparisons_model_shadow')
    op.drop_table('shadow_comparisons')
    with op.batch_alter_table('rollout_history', schema=None) as batch_op:
        batch_op.drop_column('shadow_share')
        batch_op.drop_column('shadow_version')
    with op.batch_alter_table('rollouts', schema=None) as batch_op:
        batch_op.drop_constraint('shadow_share_range', type_='check')
        batch_op.drop_column('shadow_share')
        batch_op.drop_column('shadow_version')
