"""tasks: the project's index carries the client id too

Every query runs in a client's scope, which adds ``client_id`` to it; with an index on
``project_id`` alone, counting a project's tasks read every task row to check it (242 ms at a
million tasks on SQLite, 55 ms from the index alone: docs/benchmarks.md, "Task browser"). The
index on (project_id, client_id) replaces it and serves every query the old one did.

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


def upgrade() -> None:
    # The new index first: the foreign key's cascade from projects is never without one.
    op.create_index('ix_tasks_project_client', 'tasks', ['project_id', 'client_id'])
    op.drop_index('ix_tasks_project_id', table_name='tasks')


def downgrade() -> None:
    op.create_index('ix_tasks_project_id', 'tasks', ['project_id'])
    op.drop_index('ix_tasks_project_client', table_name='tasks')
