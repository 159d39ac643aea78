"""robot trials

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 05:01:40.249010
"""

from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('robot_trials',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('dataset', sa.String(length=400), nullable=False),
    sa.Column('task', sa.String(length=300), nullable=False),
    sa.Column('policy', sa.String(length=100), nullable=False),
    sa.Column('phase', sa.String(length=16), nullable=False),
    sa.Column('trial', sa.Integer(), nullable=False),
    sa.Column('success', sa.Boolean(), nullable=False),
    sa.Column('judge', sa.String(length=100), nullable=True),
    sa.Column('notes', sa.Text(), nullable=True),
    sa.Column('owner', sa.String(length=64), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('robot_trials', schema=None) as batch_op:
        batch_op.create_index('ix_robot_trials_dataset_policy', ['dataset', 'policy'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('robot_trials', schema=None) as batch_op:
        batch_op.drop_index('ix_robot_trials_dataset_policy')

    op.drop_table('robot_trials')
