"""datasets and versions

Revision ID: 0001
Revises: 
Create Date: 2026-11-23 21:39:28.766608
"""

from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('datasets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('namespace', sa.String(length=300), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('namespace', 'name', name='uq_datasets_namespace_name')
    )
    op.create_table('dataset_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('dataset_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('storage_path', sa.String(length=400), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('published_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('writer_host', sa.String(length=255), nullable=True),
    sa.Column('writer_pid', sa.Integer(), nullable=True),
    sa.Column('episodes', sa.BigInteger(), nullable=True),
    sa.Column('steps', sa.BigInteger(), nullable=True),
    sa.Column('size_bytes', sa.BigInteger(), nullable=True),
    sa.Column('manifest_sha256', sa.String(length=64), nullable=True),
    sa.Column('content_sha256', sa.String(length=64), nullable=True),
    sa.Column('observation_space', sa.JSON(), nullable=True),
    sa.Column('action_space', sa.JSON(), nullable=True),
    sa.Column('env', sa.JSON(), nullable=True),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('license', sa.String(length=200), nullable=True),
    sa.Column('source_format', sa.String(length=32), nullable=True),
    sa.Column('yanked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('yank_reason', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['dataset_id'], ['datasets.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('dataset_id', 'version', name='uq_dataset_versions_dataset_version')
    )
    with op.batch_alter_table('dataset_versions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dataset_versions_content_sha256'), ['content_sha256'], unique=False)
        batch_op.create_index('ix_dataset_versions_state', ['state'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('dataset_versions', schema=None) as batch_op:
        batch_op.drop_index('ix_dataset_versions_state')
        batch_op.drop_index(batch_op.f('ix_dataset_versions_content_sha256'))

    op.drop_table('dataset_versions')
    op.drop_table('datasets')
