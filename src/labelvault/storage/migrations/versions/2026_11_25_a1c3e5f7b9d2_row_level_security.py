"""row-level security on client-owned tables (PostgreSQL)

Revision ID: a1c3e5f7b9d2
Revises: 39dd276d1d9e
Create Date: 2026-11-25 18:50:00
"""

from __future__ import annotations

from alembic import op

from labelvault.storage.rls import disable_statements, enable_statements

revision = "a1c3e5f7b9d2"
down_revision = "39dd276d1d9e"
branch_labels = None
depends_on = None

# The client-owned tables at this revision; later migrations enable RLS on the tables they add.
TABLES = (
    "memberships", "data_keys", "projects", "tasks", "leases", "answers", "skips",
    "review_leases", "reviews", "ledger_entries",
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        for statement in enable_statements(table):
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        for statement in disable_statements(table):
            op.execute(statement)
