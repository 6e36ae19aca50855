"""review_seq: the reviewer queue in the order tasks became pending, and its index

``tasks.review_seq`` is set whenever a task becomes pending review: on PostgreSQL the id of the
transaction that makes it pending, on SQLite the project's highest + 1 (its writers take turns).
The reviewer queue is read in (review_seq, id) order from a partial index of pending tasks, so a
task joining the queue lands behind every reviewer's remembered place (storage/queue_cursors.py,
``ReviewRepository.next_for``). Tasks pending before this migration keep 0 on PostgreSQL, and their
id order.
On SQLite they get their ids instead (see ``upgrade``). The index (project_id, review_state, id)
it replaces served only the reviewer queue.

Revision ID: b6d8f0a2c4e7
Revises: a3c5e7f9b1d4
Create Date: 2026-11-27 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'b6d8f0a2c4e7'
down_revision = 'a3c5e7f9b1d4'
branch_labels = None
depends_on = None

_PENDING = sa.text("review_state = 'pending'")


def upgrade() -> None:
    # Plain ALTER TABLE (no batch copy): a copy on SQLite would lose the DESC order of ix_tasks_queue.
    with op.batch_alter_table('tasks', schema=None, recreate='never') as batch_op:
        batch_op.add_column(sa.Column('review_seq', sa.BigInteger(), server_default='0', nullable=False))
    op.drop_index('ix_tasks_review_queue', table_name='tasks')
    op.create_index('ix_tasks_review_pending', 'tasks', ['project_id', 'review_seq', 'id'],
                    sqlite_where=_PENDING, postgresql_where=_PENDING)
    if op.get_bind().dialect.name == "sqlite":
        op.create_index('ix_tasks_review_seq', 'tasks', ['project_id', 'review_seq'])
        # SQLite's walk reads from a number and filters the ids of that number: tasks already
        # pending get their ids (new ones get the project's highest + 1). PostgreSQL's walk is one
        # row comparison, and its new numbers (transaction ids) may be lower than task ids: 0 there.
        op.execute("UPDATE tasks SET review_seq = id WHERE review_state = 'pending'")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.drop_index('ix_tasks_review_seq', table_name='tasks')
    op.drop_index('ix_tasks_review_pending', table_name='tasks')
    op.create_index('ix_tasks_review_queue', 'tasks', ['project_id', 'review_state', 'id'])
    with op.batch_alter_table('tasks', schema=None, recreate='never') as batch_op:
        batch_op.drop_column('review_seq')
