"""Ids allocated before insert: ciphertexts bind the id of their row in the associated data."""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

from labelvault.storage.models import Answer, Review, Task

# Each of these tables is created with a BIGSERIAL id on PostgreSQL: its sequence is <table>_id_seq.
SealedRow = type[Task] | type[Answer] | type[Review]


def allocate_ids(session: Session, model: SealedRow, count: int) -> list[int]:
    """Reserve ``count`` fresh ids for ``model``.

    PostgreSQL: the table's sequence (never handed out twice, even across servers). SQLite: the
    caller holds the database's single write lock (BEGIN IMMEDIATE), so max(id) cannot move under us.
    """
    if count <= 0:
        return []
    bind = session.get_bind()
    if bind.dialect.name == "postgresql":
        rows = session.execute(
            text(f"SELECT nextval('{model.__tablename__}_id_seq') FROM generate_series(1, :n)"), {"n": count}
        )
        return [row[0] for row in rows]
    # Ids are global, so the maximum is over all clients; plain SQL on purpose, as the scoped ORM
    # would only see this client's rows. It reads one integer, no content.
    table = model.__tablename__
    start = session.execute(text(f"SELECT max(id) FROM {table}")).scalar() or 0
    return list(range(start + 1, start + 1 + count))
