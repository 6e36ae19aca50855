"""queue_epoch: a project's queue order changes, counted by the database; PostgreSQL's queue index by rank

``projects.queue_epoch`` changes whenever a task of the project gains a free slot or moves in the
queue order (priority, uncertainty): a trigger on updates of ``tasks`` changes it, so no code path
can forget to. Tasks added are counted by the one writer of new tasks (io/importer.py) and the
Label Studio import, once per batch: on SQLite any trigger on INSERT, even one that never fires,
made each inserted row three times slower (32 against 11 µs). A labeler's walk of the queue may
start where their last walk ended only while the epoch it was read with is unchanged
(storage/queue_cursors.py).

On PostgreSQL the queue index becomes ``(project_id, -priority, -uncertainty, id)``, the negations
kept in generated columns of ``tasks`` (not in the model: no other statement reads them): the same
order in one direction, so that "after this position" is one row comparison that the index answers.
SQLite does not use an index for a row comparison; it keeps ``ix_tasks_queue`` and reads the
position's three ranges in turn (repositories.py).

Revision ID: e1a7c3b9d5f2
Revises: d4f6a8c0e2b5
Create Date: 2026-11-27 00:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = 'e1a7c3b9d5f2'
down_revision = 'd4f6a8c0e2b5'
branch_labels = None
depends_on = None

# A task joins or moves up the queue: a free slot it did not have, or a new place in the order.
_REQUEUED = (
    "NEW.open_slots > 0 AND (NEW.open_slots > OLD.open_slots OR NEW.priority <> OLD.priority"
    " OR NEW.uncertainty <> OLD.uncertainty)"
)

_SQLITE = [
    "CREATE TRIGGER tasks_requeued AFTER UPDATE OF open_slots, priority, uncertainty ON tasks"
    f" WHEN {_REQUEUED}"
    " BEGIN UPDATE projects SET queue_epoch = queue_epoch + 1 WHERE id = NEW.project_id; END",
]

# The epoch becomes the writing transaction's id: unique to it, so a transaction that requeues many
# tasks (new uncertainties) writes the project's row once, not once per task (each write of a row is
# a new version of it on PostgreSQL). repositories.py bumps it the same way.
_POSTGRESQL = [
    "CREATE FUNCTION tasks_requeued() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
    " UPDATE projects SET queue_epoch = txid_current()"
    " WHERE id = NEW.project_id AND queue_epoch <> txid_current(); RETURN NULL; END $$",
    "CREATE TRIGGER tasks_requeued AFTER UPDATE OF open_slots, priority, uncertainty ON tasks"
    f" FOR EACH ROW WHEN ({_REQUEUED}) EXECUTE FUNCTION tasks_requeued()",
    # Columns, not expressions in the index: under row-level security PostgreSQL uses an index for
    # a condition only when its functions are "leakproof", and negation is not (it can overflow).
    "ALTER TABLE tasks ADD COLUMN queue_rank_priority bigint GENERATED ALWAYS AS (-(priority::bigint)) STORED",
    "ALTER TABLE tasks ADD COLUMN queue_rank_uncertainty double precision GENERATED ALWAYS AS (-uncertainty) STORED",
    "DROP INDEX ix_tasks_queue",
    "CREATE INDEX ix_tasks_queue_rank ON tasks (project_id, queue_rank_priority, queue_rank_uncertainty, id)"
    " WHERE open_slots > 0",
]


def upgrade() -> None:
    # Plain ALTER TABLE (no batch copy): a copy on SQLite would lose the DESC order of ix_tasks_queue.
    with op.batch_alter_table('projects', schema=None, recreate='never') as batch_op:
        batch_op.add_column(sa.Column('queue_epoch', sa.BigInteger(), server_default='0', nullable=False))
    for statement in _POSTGRESQL if op.get_bind().dialect.name == "postgresql" else _SQLITE:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX ix_tasks_queue_rank")
        op.execute("ALTER TABLE tasks DROP COLUMN queue_rank_uncertainty")
        op.execute("ALTER TABLE tasks DROP COLUMN queue_rank_priority")
        op.execute("CREATE INDEX ix_tasks_queue ON tasks (project_id, priority DESC, uncertainty DESC, id)"
                   " WHERE open_slots > 0")
        op.execute("DROP TRIGGER tasks_requeued ON tasks")
        op.execute("DROP FUNCTION tasks_requeued()")
    else:
        op.execute("DROP TRIGGER tasks_requeued")
    with op.batch_alter_table('projects', schema=None, recreate='never') as batch_op:
        batch_op.drop_column('queue_epoch')
