"""Prebuilt statements run straight on the driver's cursor.

The queue runs some thirty statements per answer. Through SQLAlchemy's Core each costs about 60 µs
of Python (execution context, events, result metadata) against 5 to 15 µs for the database itself;
these statements never change, so their SQL, parameter order and type conversions are worked out
once per dialect (SQLAlchemy's own compiler and type processors, so values convert exactly as on the
regular path) and each execution is a cursor call. Driver errors are raised as SQLAlchemy's
``DBAPIError`` subclasses, as on the regular path. An INSERT is planned per set of columns given,
and only when every column with a Python-side default is among them (those defaults are computed
by SQLAlchemy's execution context); otherwise it takes the regular path. SQLAlchemy's
``before_cursor_execute``/``after_cursor_execute`` events are still sent when something listens
(statement counters, tracing), so these statements stay as visible as the others.

Written here rather than taken from a library: SQLAlchemy has no public "execute a compiled
statement cheaply" API, and the alternatives (raw SQL strings per dialect) would lose the one
statement definition that ``scope.scoped`` checks.
"""

from __future__ import annotations

import re
from collections import namedtuple
from collections.abc import Callable, Iterator
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Delete, Executable, Insert, Select, Update
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Dialect

from labelvault.storage import direct_path
from labelvault.storage.direct_path import DirectResult, numbered

if TYPE_CHECKING:
    from labelvault.storage.pg_direct import DirectConnection

# Each place's parameter name and its converter (None: the value goes as it is), in the places' order.
_Binds = tuple[tuple[str, Callable[[Any], Any] | None], ...]


class PreparedResult:
    """The part of SQLAlchemy's result interface that the repositories use."""

    __slots__ = ("_rows", "rowcount")

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self._rows = rows
        self.rowcount = rowcount

    def __iter__(self) -> Iterator[Any]:
        return iter(self._rows)

    def first(self) -> Any:
        return self._rows[0] if self._rows else None

    def one(self) -> Any:
        if len(self._rows) != 1:
            raise sa_exc.NoResultFound("no row") if not self._rows else sa_exc.MultipleResultsFound("several rows")
        return self._rows[0]

    def all(self) -> list[Any]:
        return self._rows

    def scalar(self) -> Any:
        return self._rows[0][0] if self._rows else None

    def scalar_one(self) -> Any:
        return self.one()[0]

    def scalars(self) -> list[Any]:
        return [row[0] for row in self._rows]


_DEFERRED = PreparedResult([], -1)  # a deferred statement's result: nothing known yet


class Plan:
    """One statement compiled for one dialect: SQL text, parameter order, converters, row type."""

    __slots__ = (
        "bind_processors", "columns", "defaults", "direct_binds", "direct_sql", "positional", "positional_binds",
        "processors_known", "result_processors", "returns_rows", "row_type", "sql",
    )

    def __init__(self, statement: Executable, dialect: Dialect, column_keys: list[str] | None = None) -> None:
        compiled = statement.compile(dialect=dialect, column_keys=column_keys)
        if getattr(compiled, "insert_prefetch", None):
            raise NotPreparable("an INSERT whose Python-side column defaults are not all given")
        self.sql = str(compiled)
        self.positional: tuple[str, ...] | None = tuple(compiled.positiontup) if compiled.positiontup else None
        # Literals such as LIMIT 1 are bound parameters with a value: supplied here, once.
        self.defaults = {
            key: bind.value for bind, key in compiled.bind_names.items() if not bind.required and bind.value is not None
        }
        self.bind_processors: dict[str, Callable[[Any], Any]] = dict(compiled._bind_processors)
        # For positional drivers (SQLite): each place's parameter and its converter, in order.
        self.positional_binds = self._binds(self.positional) if self.positional else None
        self.columns = compiled._result_columns
        self.returns_rows = bool(self.columns)
        self.row_type = namedtuple("Row", [c.keyname for c in self.columns], rename=True) if self.columns else None  # type: ignore[misc]
        # Some converters depend on the type the driver reports (PostgreSQL numerics): worked out at
        # the first execution, from the cursor's description.
        self.result_processors: list[tuple[int, Callable[[Any], Any]]] | None = None  # (column, converter)
        self.processors_known = False
        # psycopg: the statement as libpq's prepared-statement calls take it (see pg_direct.py), its
        # numbered places bound like a positional driver's.
        self.direct_sql: bytes | None = None
        self.direct_binds: _Binds = ()
        if dialect.driver == "psycopg" and not self.positional:
            self.direct_sql, names = numbered(self.sql)
            self.direct_binds = self._binds(names)

    def _binds(self, names: tuple[str, ...]) -> _Binds:
        return tuple((key, self.bind_processors.get(key)) for key in names)

    def _bind_in_order(self, binds: _Binds,
                       parameters: dict[str, Any]) -> list[Any]:
        """The values for the places in order, converted (one pass: these statements run hundreds of
        times a second)."""
        defaults = self.defaults
        bound = []
        for key, process in binds:
            value = parameters[key] if key in parameters else defaults[key]
            bound.append(value if process is None else process(value))
        return bound

    def execute(
        self, connection: Connection, parameters: dict[str, Any], *, defer: bool = False, observed: bool | None = None
    ) -> PreparedResult:
        """Run the statement. ``defer`` (a statement whose rows nobody reads): on PostgreSQL inside
        a transaction it may wait to be sent with the next statement or the commit (pg_direct.py),
        its error raised there; elsewhere it runs now. ``observed``: whether anything listens to
        the cursor events, if the caller knows (see ``cursor_events_observed``)."""
        bound: Any
        if observed is None:
            observed = cursor_events_observed(connection)
        if self.direct_sql is not None:
            direct = direct_path.of(connection)
            if direct is not None and direct.in_transaction():
                return self._execute_direct(connection, direct, parameters, defer, observed)
        if self.positional_binds is not None:
            bound = self._bind_in_order(self.positional_binds, parameters)
        else:
            bound = {**self.defaults, **parameters}
            for key, process in self.bind_processors.items():
                if key in bound:
                    bound[key] = process(bound[key])
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        dispatch = connection.dispatch
        try:
            if observed:
                dispatch.before_cursor_execute(connection, cursor, self.sql, bound, None, False)
            cursor.execute(self.sql, bound)
            rows = cursor.fetchall() if self.returns_rows else []
            rowcount = cursor.rowcount
            if observed:
                dispatch.after_cursor_execute(connection, cursor, self.sql, bound, None, False)
            if not self.processors_known and self.returns_rows:
                self._learn_processors(connection.dialect, cursor.description)
        except connection.dialect.loaded_dbapi.Error as error:
            raise as_sqlalchemy_error(connection, self.sql, error) from error
        finally:
            cursor.close()
        return self._result(rows, rowcount)

    def _execute_direct(
        self, connection: Connection, direct: DirectConnection, parameters: dict[str, Any], defer: bool,
        observed: bool,
    ) -> PreparedResult:
        values = self._bind_in_order(self.direct_binds, parameters)
        dispatch = connection.dispatch
        try:
            if observed:  # no cursor here: listeners get None for it
                dispatch.before_cursor_execute(connection, None, self.sql, values, None, False)
            result = direct.execute(self.direct_sql, values, defer=defer)  # type: ignore[arg-type]
            if observed:
                dispatch.after_cursor_execute(connection, None, self.sql, values, None, False)
        except connection.dialect.loaded_dbapi.Error as error:
            raise as_sqlalchemy_error(connection, self.sql, error) from error
        if defer:
            return _DEFERRED
        return self._direct_result(connection, result)

    def _direct_result(self, connection: Connection, result: DirectResult) -> PreparedResult:
        if not self.processors_known and self.returns_rows:
            self._learn_processors(connection.dialect, [(None, oid) for oid in result.column_types])
        return self._result(result.rows, result.rowcount)

    def _result(self, rows: list[Any], rowcount: int) -> PreparedResult:
        if self.row_type is None:
            return PreparedResult([], rowcount)
        make = self.row_type._make
        processors = self.result_processors
        if processors is None:
            return PreparedResult([make(row) for row in rows], rowcount)
        converted = []
        for row in rows:
            values = list(row)
            for index, process in processors:
                values[index] = process(values[index])
            converted.append(make(values))
        return PreparedResult(converted, rowcount)

    def _learn_processors(self, dialect: Dialect, description: Any) -> None:
        processors = [
            column.type._cached_result_processor(dialect, described[1])
            for column, described in zip(self.columns, description, strict=True)
        ]
        # Only the columns that have a converter (most have none: integers, strings).
        self.result_processors = [(i, p) for i, p in enumerate(processors) if p is not None] or None
        self.processors_known = True


def cursor_events_observed(connection: Connection) -> bool:
    """Whether anything listens to SQLAlchemy's cursor events on this connection (then prebuilt
    statements send them too). Costly to ask (SQLAlchemy's joined event lists): once per transaction."""
    dispatch = connection.dispatch
    return bool(dispatch.before_cursor_execute or dispatch.after_cursor_execute)


class BulkInsertPlan:
    """An INSERT of many rows for ``executemany``: each row a tuple of values in the caller's column
    order, already in the driver's form (imports build them so, for speed). The rows are put in
    the statement's order with one C-level ``itemgetter`` call each, and the scope's client id, the
    statement's last parameter, is appended to each."""

    __slots__ = ("reorder", "sql")

    def __init__(self, statement: Executable, dialect: Dialect, columns: tuple[str, ...], scope_parameter: str) -> None:
        compiled = statement.compile(dialect=dialect, column_keys=[*columns, scope_parameter])
        if getattr(compiled, "insert_prefetch", None):
            raise NotPreparable("an INSERT whose Python-side column defaults are not all given")
        sql = str(compiled)
        if compiled.positiontup:
            names = list(compiled.positiontup)
        else:  # named placeholders (psycopg's pyformat): made positional, in their order of appearance
            names = _NAMED.findall(sql)
            sql = _NAMED.sub("%s", sql)
        if not names or names[-1] != scope_parameter or scope_parameter in names[:-1]:
            raise NotPreparable("the client id is not the statement's last parameter")
        index = {name: i for i, name in enumerate(columns)}
        self.reorder = itemgetter(*[index[name] for name in names[:-1]])
        self.sql = sql

    def execute(self, connection: Connection, rows: list[tuple[Any, ...]], client_id: int) -> int:
        reorder = self.reorder
        bound = [(*reorder(row), client_id) for row in rows]
        direct = direct_path.of(connection)
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        dispatch = connection.dispatch
        try:
            if direct is not None:  # the cursor must find the transaction begun, in its scope
                direct.send_waiting()
            dispatch.before_cursor_execute(connection, cursor, self.sql, bound, None, True)
            cursor.executemany(self.sql, bound)
            count = cursor.rowcount
            dispatch.after_cursor_execute(connection, cursor, self.sql, bound, None, True)
        except connection.dialect.loaded_dbapi.Error as error:
            raise as_sqlalchemy_error(connection, self.sql, error) from error
        finally:
            cursor.close()
        return count if count is not None and count >= 0 else len(rows)


_NAMED = re.compile(r"%\((\w+)\)s")


def as_sqlalchemy_error(connection: Connection, sql: str, error: Exception) -> sa_exc.DBAPIError:
    """A driver's error as SQLAlchemy raises it on the regular path (IntegrityError, ...), values hidden.
    (A plain try block at each call site: a context manager costs 8% of the queue's CPU here.)"""
    error_class = connection.dialect.loaded_dbapi.Error
    return sa_exc.DBAPIError.instance(sql, None, error, error_class, hide_parameters=True,  # type: ignore[return-value]
                                      dialect=connection.dialect)


def fetches_ahead(connection: Connection) -> bool:
    """Whether ``prefetch`` does anything here: PostgreSQL's direct path, in an open transaction."""
    direct = direct_path.of(connection)
    return direct is not None and direct.in_transaction()


def prefetch(connection: Connection, planned: list[tuple[Plan, dict[str, Any]]]) -> None:
    """PostgreSQL: run these reads in one round trip, their results kept for the executions that
    follow (``pg_direct.DirectConnection.prefetch``: only the very next ones, only if the same). Elsewhere
    (SQLite, no transaction open: see ``fetches_ahead``) nothing happens: the statements run when
    their turn comes. The cursor events are sent when a kept result is handed out, as for any
    statement."""
    direct = direct_path.of(connection)
    if direct is None or not direct.in_transaction() or any(plan.direct_sql is None for plan, _ in planned):
        return
    statements = [(plan.direct_sql, plan._bind_in_order(plan.direct_binds, parameters)) for plan, parameters in planned]
    try:
        direct.prefetch(statements)  # type: ignore[arg-type]
    except connection.dialect.loaded_dbapi.Error as error:
        raise as_sqlalchemy_error(connection, "; ".join(plan.sql for plan, _ in planned), error) from error


class NotPreparable(Exception):
    """This statement (with these columns) runs on the regular path."""


def can_prepare(statement: Executable) -> bool:
    return isinstance(statement, Select | Update | Delete | Insert)


class PlanCache:
    """Plans of one statement per dialect name (an install uses one; tests use two) and, for an
    INSERT, per set of columns given; None where the regular path must run it."""

    __slots__ = ("_plans",)

    def __init__(self) -> None:
        self._plans: dict[Any, Plan | BulkInsertPlan | None] = {}

    def bulk_insert(
        self, statement: Executable, dialect: Dialect, columns: tuple[str, ...], scope_parameter: str
    ) -> BulkInsertPlan:
        key = (dialect.name, "bulk", columns)
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plans[key] = BulkInsertPlan(statement, dialect, columns, scope_parameter)  # type: ignore[assignment]
        return plan  # type: ignore[return-value]

    def plan(self, statement: Executable, dialect: Dialect, parameters: dict[str, Any]) -> Plan | None:
        insert = isinstance(statement, Insert)
        key = (dialect.name, frozenset(parameters)) if insert else dialect.name
        try:
            return self._plans[key]
        except KeyError:
            pass
        try:
            plan: Plan | None = Plan(statement, dialect, sorted(parameters) if insert else None)
        except NotPreparable:
            plan = None
        self._plans[key] = plan
        return plan


__all__ = ["BulkInsertPlan", "Plan", "PlanCache", "PreparedResult", "can_prepare", "cursor_events_observed",
           "fetches_ahead", "prefetch"]
