"""project_spend: the project's ledger total in stripes, instead of projects.spent

One running total per project was a row every paid submit locked until its commit; on PostgreSQL
the transactions of all labelers queued on it. The total moves to stripe 0 of the new table.

Revision ID: b7d2e4f6a8c1
Revises: c5e8a1f0d3b7
Create Date: 2026-11-26 10:50:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from labelvault.storage.rls import disable_statements, enable_statements

revision = 'b7d2e4f6a8c1'
down_revision = 'c5e8a1f0d3b7'
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('project_spend',
    sa.Column('project_id', Id, nullable=False),
    sa.Column('stripe', sa.Integer(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('client_id', Id, nullable=False),
    sa.ForeignKeyConstraint(['client_id'], ['clients.id'], name=op.f('fk_project_spend_client_id_clients'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['project_id'], ['projects.id'], name=op.f('fk_project_spend_project_id_projects'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('project_id', 'stripe', name=op.f('pk_project_spend'))
    )
    with op.batch_alter_table('project_spend', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_project_spend_client_id'), ['client_id'], unique=False)
    op.execute(
        "INSERT INTO project_spend (project_id, stripe, amount, client_id) "
        "SELECT id, 0, spent, client_id FROM projects WHERE spent <> 0"
    )
    # Not batch mode: on SQLite it would copy the table and drop the old one, and dropping it
    # deletes every task of the project through ON DELETE CASCADE. SQLite has had a real DROP
    # COLUMN since 3.35.
    op.execute("ALTER TABLE projects DROP COLUMN spent")
    if op.get_bind().dialect.name == "postgresql":
        for statement in enable_statements('project_spend'):
            op.execute(statement)


def downgrade() -> None:
    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.add_column(sa.Column('spent', sa.BigInteger(), server_default='0', nullable=False))
    op.execute(
        "UPDATE projects SET spent = (SELECT coalesce(sum(amount), 0) FROM project_spend "
        "WHERE project_spend.project_id = projects.id)"
    )
    if op.get_bind().dialect.name == "postgresql":
        for statement in disable_statements('project_spend'):
            op.execute(statement)
    with op.batch_alter_table('project_spend', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_project_spend_client_id'))
    op.drop_table('project_spend')
