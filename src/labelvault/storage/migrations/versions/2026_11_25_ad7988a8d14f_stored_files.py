"""stored files

Revision ID: ad7988a8d14f
Revises: a24d9410562a
Create Date: 2026-11-25 19:05:15.569455
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from labelvault.storage.rls import disable_statements, enable_statements

revision = 'ad7988a8d14f'
down_revision = 'a24d9410562a'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('stored_files',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('project_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('data_key_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('name_sealed', sa.LargeBinary(), nullable=False),
    sa.Column('content_type', sa.String(length=100), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('ciphertext_sha256', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('client_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_stored_files_client_id_clients'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['data_key_id'], ['data_keys.id'], name=op.f('fk_stored_files_data_key_id_data_keys')),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_stored_files_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stored_files'))
    )
    with op.batch_alter_table('stored_files', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_stored_files_client_id'), ['client_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_stored_files_project_id'), ['project_id'], unique=False)

    if op.get_bind().dialect.name == "postgresql":
        for statement in enable_statements("stored_files"):
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for statement in disable_statements("stored_files"):
            op.execute(statement)
    with op.batch_alter_table('stored_files', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_stored_files_project_id'))
        batch_op.drop_index(batch_op.f('ix_stored_files_client_id'))

    op.drop_table('stored_files')

