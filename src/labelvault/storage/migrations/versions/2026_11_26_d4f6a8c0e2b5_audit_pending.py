"""audit_pending: audit entries written by their acts on PostgreSQL, numbered later by a sequencer

Revision ID: d4f6a8c0e2b5
Revises: b7d2e4f6a8c1
Create Date: 2026-11-26 11:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'd4f6a8c0e2b5'
down_revision = 'b7d2e4f6a8c1'
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table('audit_pending',
    sa.Column('id', Id, nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('actor_id', Id, nullable=True),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.Column('action', sa.String(length=60), nullable=False),
    sa.Column('client_id', Id, nullable=True),
    sa.Column('object_kind', sa.String(length=40), nullable=False),
    sa.Column('object_id', sa.String(length=100), nullable=False),
    sa.Column('outcome', sa.String(length=20), nullable=False),
    sa.Column('fields', sa.LargeBinary(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_pending'))
    )


def downgrade() -> None:
    op.drop_table('audit_pending')
