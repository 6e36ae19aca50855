"""sealed_skip_reasons: a labeler's reason for a skip is stored sealed, like every other free text

A skip's reason is the labeler's own words about a task, and may quote it: it is sealed under the
client's data key from now on (``skips.sealed_reason``, ``skips.data_key_id``). A migration cannot
seal: the keys live outside the database. So the reasons written before stay, renamed
``legacy_reason``, until ``bootstrap.migrate`` (``labelvault upgrade``, ``init``) seals and empties
them right after the schema steps, with the install's key ring.

Revision ID: f2b4d6e8a0c1
Revises: e1a7c3b9d5f2
Create Date: 2026-11-27 03:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'f2b4d6e8a0c1'
down_revision = 'e1a7c3b9d5f2'
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    # SQLite copies the table here (batch mode); nothing refers to skips, so no row is lost.
    with op.batch_alter_table('skips', schema=None) as batch_op:
        batch_op.alter_column('reason', new_column_name='legacy_reason', existing_type=sa.String(length=500),
                              existing_nullable=False)
        batch_op.add_column(sa.Column('data_key_id', Id, nullable=True))
        batch_op.add_column(sa.Column('sealed_reason', sa.LargeBinary(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_skips_data_key_id_data_keys'), 'data_keys', ['data_key_id'],
                                    ['id'])


def downgrade() -> None:
    # Sealed reasons cannot be opened here (no keys): they are dropped; legacy ones stay.
    with op.batch_alter_table('skips', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_skips_data_key_id_data_keys'), type_='foreignkey')
        batch_op.drop_column('sealed_reason')
        batch_op.drop_column('data_key_id')
        batch_op.alter_column('legacy_reason', new_column_name='reason', existing_type=sa.String(length=500),
                              existing_nullable=False)
