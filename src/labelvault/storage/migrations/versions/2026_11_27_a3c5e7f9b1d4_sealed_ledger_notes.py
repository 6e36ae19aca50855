"""sealed_ledger_notes: the note on a ledger entry is stored sealed, like every other free text

A bonus carries the manager's note, which may quote the work it rewards: it is sealed under the
client's data key from now on (``ledger_entries.sealed_note``, ``ledger_entries.data_key_id``). A
migration cannot seal (the keys live outside the database), so the notes written before stay,
renamed ``legacy_note``, until ``bootstrap.migrate`` (``labelvault upgrade``, ``init``) seals and
empties them right after the schema steps, as it does for skip reasons (f2b4d6e8a0c1).

Revision ID: a3c5e7f9b1d4
Revises: f2b4d6e8a0c1
Create Date: 2026-11-27 07:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'a3c5e7f9b1d4'
down_revision = 'f2b4d6e8a0c1'
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    # SQLite copies the table here (batch mode); nothing refers to ledger entries, so no row is lost.
    with op.batch_alter_table('ledger_entries', schema=None) as batch_op:
        batch_op.alter_column('note', new_column_name='legacy_note', existing_type=sa.String(length=200),
                              existing_nullable=False)
        batch_op.add_column(sa.Column('data_key_id', Id, nullable=True))
        batch_op.add_column(sa.Column('sealed_note', sa.LargeBinary(), nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_ledger_entries_data_key_id_data_keys'), 'data_keys',
                                    ['data_key_id'], ['id'])


def downgrade() -> None:
    # Sealed notes cannot be opened here (no keys): they are dropped; legacy ones stay.
    with op.batch_alter_table('ledger_entries', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_ledger_entries_data_key_id_data_keys'), type_='foreignkey')
        batch_op.drop_column('sealed_note')
        batch_op.drop_column('data_key_id')
        batch_op.alter_column('legacy_note', new_column_name='note', existing_type=sa.String(length=200),
                              existing_nullable=False)
