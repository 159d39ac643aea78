"""runs and run metrics

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 00:18:46.242415
"""

from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('runs',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('sweep_id', sa.String(length=32), nullable=False),
    sa.Column('algorithm', sa.String(length=64), nullable=False),
    sa.Column('config', sa.JSON(), nullable=False),
    sa.Column('config_hash', sa.String(length=64), nullable=False),
    sa.Column('seed', sa.Integer(), nullable=False),
    sa.Column('dataset_id', sa.String(length=400), nullable=False),
    sa.Column('dataset_content_sha256', sa.String(length=64), nullable=False),
    sa.Column('env_name', sa.String(length=300), nullable=True),
    sa.Column('plan', sa.JSON(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('code_version', sa.String(length=100), nullable=True),
    sa.Column('host', sa.String(length=255), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('progress', sa.JSON(), nullable=True),
    sa.Column('timings', sa.JSON(), nullable=True),
    sa.Column('results', sa.JSON(), nullable=True),
    sa.Column('checkpoint', sa.String(length=400), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.create_index('ix_runs_algorithm_dataset', ['algorithm', 'dataset_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_runs_config_hash'), ['config_hash'], unique=False)
        batch_op.create_index(batch_op.f('ix_runs_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_runs_sweep_id'), ['sweep_id'], unique=False)

    op.create_table('run_metrics',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('run_id', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('phase', sa.String(length=16), nullable=False),
    sa.Column('step', sa.BigInteger(), nullable=False),
    sa.Column('values', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['run_id'], ['runs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('run_metrics', schema=None) as batch_op:
        batch_op.create_index('ix_run_metrics_run_kind', ['run_id', 'kind'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('run_metrics', schema=None) as batch_op:
        batch_op.drop_index('ix_run_metrics_run_kind')

    op.drop_table('run_metrics')
    with op.batch_alter_table('runs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_runs_sweep_id'))
        batch_op.drop_index(batch_op.f('ix_runs_status'))
        batch_op.drop_index(batch_op.f('ix_runs_config_hash'))
        batch_op.drop_index('ix_runs_algorithm_dataset')

    op.drop_table('runs')
