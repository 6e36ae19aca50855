"""PostgreSQL statements through libpq's prepared-statement calls, beneath psycopg's cursor.

On PostgreSQL a queue step is some thirty short statements, and psycopg's cursor cost about twice
what libpq itself does for each: per execute it builds a cursor, converts the query, looks up its
prepared-statement cache and drives a generator through its wait loop (89 µs of CPU against 38 µs
for ``PGconn.exec_prepared`` on the machine of docs/benchmarks.md). Here a prebuilt statement
(``prepared.Plan``) is prepared once per connection and then executed with one libpq call, which
releases the GIL while it waits for the server. Values go through psycopg's own ``Transformer``
(the same dumpers, loaders and parameter types as the cursor: results are the values the cursor
would give), and a failed statement raises psycopg's own exception for its SQLSTATE.

psycopg stays in charge of the connection's transactions: the direct path runs only inside a
transaction that is open and healthy (``INTRANS``); anything else (no transaction yet, one that
failed, pipeline mode) goes through the cursor as before. ``begin_with`` starts a transaction and
runs its first statement in one round trip, when psycopg would have sent a plain ``BEGIN``.

Written here rather than taken from a library: psycopg offers these calls (``psycopg.pq``,
``psycopg.adapt.Transformer``) but no cheaper execute built on them.
"""

from __future__ import annotations

import re
from typing import Any

from psycopg import errors as pg_errors
from psycopg import pq
from psycopg.adapt import PyFormat, Transformer
from sqlalchemy import Connection

_INFO_KEY = "labelvault.pg_direct"
_PLACEHOLDER = re.compile(r"%%|%\((\w+)\)s")
_OK = (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK)


def numbered(pyformat_sql: str) -> tuple[bytes, tuple[str, ...]]:
    """SQL compiled for psycopg (``%(name)s`` places, ``%%`` for a percent sign) as libpq takes it
    (``$1``, ``$2``, ...), and the parameter names in the order of their numbers."""
    names: dict[str, int] = {}

    def number(match: re.Match[str]) -> str:
        name = match[1]
        if name is None:
            return "%"
        return f"${names.setdefault(name, len(names) + 1)}"

    sql = _PLACEHOLDER.sub(number, pyformat_sql)
    return sql.encode(), tuple(names)


class DirectResult:
    __slots__ = ("column_types", "rowcount", "rows")

    def __init__(self, rows: list[tuple[Any, ...]], rowcount: int, column_types: list[int]) -> None:
        self.rows = rows
        self.rowcount = rowcount
        self.column_types = column_types


class DirectConnection:
    """One psycopg connection's direct state: its value transformer and the statements prepared on
    it (kept in the pool record's ``info``, which SQLAlchemy clears when it replaces the connection)."""

    __slots__ = ("_driver", "_pgconn", "_prepared", "_transformer")

    def __init__(self, driver_connection: Any) -> None:
        self._driver = driver_connection
        self._pgconn = driver_connection.pgconn
        self._transformer = Transformer(driver_connection)
        self._prepared: dict[tuple[bytes, tuple[int, ...]], bytes] = {}

    @classmethod
    def of(cls, connection: Connection) -> DirectConnection | None:
        """The state of this SQLAlchemy connection's psycopg connection; None on other drivers."""
        info = connection.connection.info
        state: DirectConnection | None = info.get(_INFO_KEY)
        if state is None:
            if connection.dialect.driver != "psycopg":
                return None
            state = info[_INFO_KEY] = cls(connection.connection.driver_connection)
        return state

    def in_transaction(self) -> bool:
        pgconn = self._pgconn
        return pgconn.transaction_status == pq.TransactionStatus.INTRANS and pgconn.pipeline_status == 0

    def execute(self, sql: bytes, parameters: list[Any]) -> DirectResult:
        """Run a statement (prepared on this connection at its first use with these parameter types)."""
        transformer = self._transformer
        values = transformer.dump_sequence(parameters, [PyFormat.AUTO] * len(parameters))
        key = (sql, transformer.types)
        name = self._prepared.get(key)
        if name is None:
            name = f"lv_{len(self._prepared)}".encode()
            self._check(self._pgconn.prepare(name, sql, transformer.types))
            self._prepared[key] = name
        result = self._pgconn.exec_prepared(name, values, transformer.formats)
        self._check(result)
        rowcount = -1 if result.command_tuples is None else result.command_tuples
        if result.status != pq.ExecStatus.TUPLES_OK:
            return DirectResult([], rowcount, [])
        transformer.set_pgresult(result)
        rows = transformer.load_rows(0, result.ntuples, tuple)
        return DirectResult(rows, rowcount, [result.ftype(i) for i in range(result.nfields)])

    def begin_with(self, sql: bytes) -> bool:
        """Start a transaction and run ``sql`` in it, in one round trip; False (nothing sent) unless
        psycopg would begin with a plain BEGIN now (no transaction open, default characteristics)."""
        driver = self._driver
        if (self._pgconn.transaction_status != pq.TransactionStatus.IDLE or driver.autocommit
                or driver.isolation_level is not None or driver.read_only is not None
                or driver.deferrable is not None or self._pgconn.pipeline_status != 0):
            return False
        self._check(self._pgconn.exec_(b"BEGIN; " + sql))
        return True

    def _check(self, result: Any) -> None:
        if result.status not in _OK:
            raise pg_errors.error_from_result(result, encoding=self._driver.info.encoding)


__all__ = ["DirectConnection", "DirectResult", "numbered"]
