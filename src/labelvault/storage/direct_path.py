"""Which connections take PostgreSQL's direct path (``pg_direct.py``), asked without psycopg.

Every prebuilt statement and unit of work asks whether its connection has a direct path; on
SQLite the answer is always no, and asking must not import psycopg (a tenth of a second at the
start of every CLI command and server). So the answer, the statement conversion and the result
type live here, and ``pg_direct.py``, which needs psycopg, is imported when a connection of an
enabled engine first takes the path.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

if TYPE_CHECKING:
    from labelvault.storage.pg_direct import DirectConnection

_INFO_KEY = "labelvault.pg_direct"
_ENABLED = "labelvault_direct_path"
_PLACEHOLDER = re.compile(r"%%|%\((\w+)\)s")


def enable(dialect: Any) -> None:
    """Use the direct path on this engine's connections (``storage.engine.build_engine`` does it,
    with the event handlers that send what waits before anything else runs: an engine without
    them must not defer anything)."""
    setattr(dialect, _ENABLED, True)


def of(connection: Connection) -> DirectConnection | None:
    """The direct state of this SQLAlchemy connection's psycopg connection; None where the path is
    not enabled (other drivers, engines not built by ``build_engine``)."""
    info = connection.connection.info
    state: DirectConnection | None = info.get(_INFO_KEY)
    if state is None:
        if not getattr(connection.dialect, _ENABLED, False):
            return None
        from labelvault.storage.pg_direct import DirectConnection  # once per pooled connection

        state = info[_INFO_KEY] = DirectConnection(connection.connection.driver_connection)
    return state


def of_record(info: dict[str, Any]) -> DirectConnection | None:
    """The state kept in a pool record's ``info``, if any (event handlers: they create none)."""
    return info.get(_INFO_KEY)


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
