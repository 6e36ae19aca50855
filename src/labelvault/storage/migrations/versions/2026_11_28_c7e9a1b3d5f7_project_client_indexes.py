"""tasks and answers: the project's index carries the client id too

Every query runs in a client's scope, which adds ``client_id`` to it; with an index on
``project_id`` alone, counting a project's tasks read every task row to check it (242 ms at a
million tasks on SQLite, 55 ms from the index alone: docs/benchmarks.md, "Task browser"), and so
did counting its answers (every page of the answers' listing says how many there are). The index
on (project_id, client_id) replaces the one on project_id in both tables and serves every query the
old one did.

Revision ID: c7e9a1b3d5f7
Revises: b6d8f0a2c4e7
Create Date: 2026-11-28 09:30:00.000000
"""

from __future__ import annotations

from alembic import op

revision = 'c7e9a1b3d5f7'
down_revision = 'b6d8f0a2c4e7'
branch_labels = None
depends_on = None


TABLES = ('tasks', 'answers')


def upgrade() -> None:
    for table in TABLES:
        # The new index first: the foreign key's cascade from projects is never without one.
        op.create_index(f'ix_{table}_project_client', table, ['project_id', 'client_id'])
        op.drop_index(f'ix_{table}_project_id', table_name=table)


def downgrade() -> None:
    for table in TABLES:
        op.create_index(f'ix_{table}_project_id', table, ['project_id'])
        op.drop_index(f'ix_{table}_project_client', table_name=table)
