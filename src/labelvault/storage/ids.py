"""Ids allocated before insert: ciphertexts bind the id of their row in the associated data."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

from sqlalchemy import func, literal_column, select, text
from sqlalchemy.orm import Session

from labelvault.storage.models import Answer, LedgerEntry, Review, Skip, Task, WebhookEndpoint
from labelvault.storage.scope import Read, ScopedSql, Unscoped

# Each of these tables is created with a BIGSERIAL id on PostgreSQL: its sequence is <table>_id_seq.
SealedRow = type[Task] | type[Answer] | type[Review] | type[Skip] | type[WebhookEndpoint] | type[LedgerEntry]

# One id (SQLite: the maximum so far, plus one; PostgreSQL: the sequence's next value), per table
# and dialect, built on first use. The maximum is over all clients on purpose (ids are global).
_one_id: dict[tuple[str, bool], Unscoped] = {}
_LAST_ID = "last_id"  # a write batch's memo: (_LAST_ID, table) -> the last id it handed out


def _one_id_query(model: type[Any], postgresql: bool) -> Unscoped:
    key = (model.__tablename__, postgresql)
    query = _one_id.get(key)
    if query is None:
        table = model.__table__
        sequence = literal_column(f"'{model.__tablename__}_id_seq'")
        query = _one_id[key] = Unscoped(select(func.nextval(sequence) if postgresql else func.max(table.c.id)))
    return query


def one_id_read(source: Session | ScopedSql, model: SealedRow) -> Read:
    """The statement that ``allocate_ids(source, model, 1)`` runs, for ``ScopedSql.prefetch``: on
    PostgreSQL a sequence's next value, which, dropped unused and run again, only leaves a gap."""
    return _one_id_query(model, _runner(source).dialect_name == "postgresql"), {}


def allocate_ids(
    source: Session | ScopedSql, model: SealedRow, count: int, *, batch_memo: dict[Hashable, Any] | None = None
) -> list[int]:
    """Reserve ``count`` fresh ids for ``model``, in the transaction of ``source`` (a unit of work's
    session, or its statement runner ``uow.sql``, which needs no ORM session).

    PostgreSQL: the table's sequence (never handed out twice, even across servers). SQLite: the
    caller holds the database's single write lock (BEGIN IMMEDIATE), so max(id) cannot move under us.
    With ``batch_memo`` (``uow.batch_memo``: a SQLite write batch's, for a table whose every insert
    in the batch takes its id here, as the answers of submits do) the maximum is read once per batch
    and counted on: nothing else writes while the batch is open, and a step that rolls back puts
    the memo back with its savepoint, so its ids are handed out again as its rows are gone.
    """
    if count <= 0:
        return []
    sql = _runner(source)
    postgresql = sql.dialect_name == "postgresql"
    if batch_memo is not None and count == 1 and not postgresql:
        key = (_LAST_ID, model.__tablename__)
        last = batch_memo.get(key)
        if last is None:
            last = int(sql.run(*one_id_read(sql, model)).scalar_one() or 0)
        batch_memo[key] = last + 1
        return [last + 1]
    if count == 1:  # every submit: a prepared statement (see prepared.py)
        value = sql.run(*one_id_read(sql, model)).scalar_one()
        return [int(value)] if postgresql else [int(value or 0) + 1]
    if postgresql:
        rows = sql.run(Unscoped(text(f"SELECT nextval('{model.__tablename__}_id_seq') FROM generate_series(1, :n)")),
                       {"n": count})
        return [row[0] for row in rows]
    # Ids are global, so the maximum is over all clients (an unscoped statement on purpose: a
    # client's scope would only see its own rows). It reads one integer, no content.
    start = int(sql.run(*one_id_read(sql, model)).scalar_one() or 0)
    return list(range(start + 1, start + 1 + count))


def _runner(source: Session | ScopedSql) -> ScopedSql:
    return source if isinstance(source, ScopedSql) else ScopedSql.of(source)
