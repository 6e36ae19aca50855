"""The one door to client data: every statement in a session is filtered by its scope.

A session opened for client C sees, updates and deletes only rows of client-owned tables whose
``client_id`` is C, and may only insert rows for C. A session opened without a client sees no
client-owned row at all, unless it was opened explicitly for all clients (operator work such as
offboarding or audit verification). Repositories and use cases therefore cannot forget a filter:
there is no filter to remember. On PostgreSQL, row-level security enforces the same rule below.

Two kinds of statement go through this door:

- ORM statements (``select(Task)``): the session adds the client criteria as it executes them.
- Prebuilt Core statements on the hot paths (the queue): ``scoped(statement)`` adds
  ``client_id = :scope_client_id`` for every client-owned table once, when the module is
  imported, and ``ScopedSql.run`` supplies the session's client on each execution. A Core
  statement costs a tenth of an ORM one per execution (no per-call criteria, no identity map),
  and ``ScopedSql`` runs nothing but statements built by ``scoped`` or on tables no client owns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BindParameter,
    Column,
    ColumnElement,
    Connection,
    CursorResult,
    Delete,
    Executable,
    Insert,
    Select,
    Table,
    Update,
    bindparam,
    event,
    false,
)
from sqlalchemy.orm import ORMExecuteState, Session, with_loader_criteria
from sqlalchemy.sql.elements import BinaryExpression
from sqlalchemy.sql.util import find_tables
from sqlalchemy.sql.visitors import iterate

from labelvault.storage.models import Base, ClientOwned
from labelvault.storage.prepared import (
    PlanCache,
    PreparedResult,
    can_prepare,
    cursor_events_observed,
    fetches_ahead,
    prefetch,
)

SCOPE_PARAMETER = "scope_client_id"


class ScopeViolation(RuntimeError):
    """A programming error: code tried to write another client's row."""


@dataclass(frozen=True, slots=True)
class Scope:
    client_id: int | None = None
    all_clients: bool = False

    def __post_init__(self) -> None:
        if self.client_id is not None and self.all_clients:
            raise ValueError("a scope is either one client or all clients")


class ScopedSession(Session):
    """A session that refuses to run without a scope in ``info["scope"]``."""

    @property
    def scope(self) -> Scope:
        scope = self.info.get("scope")
        if not isinstance(scope, Scope):
            raise ScopeViolation("session has no client scope")
        return scope


@event.listens_for(ScopedSession, "do_orm_execute")
def _filter_by_scope(state: ORMExecuteState) -> None:
    scope: Scope = state.session.scope  # type: ignore[attr-defined]
    if scope.all_clients:
        return
    if state.is_insert:
        _check_insert_rows(state, scope)
        return
    if state.is_column_load or state.is_relationship_load:
        return  # the parent statement carried the criteria already
    client_id = scope.client_id
    if client_id is None:
        criteria = with_loader_criteria(ClientOwned, lambda cls: false(), include_aliases=True)
    else:
        criteria = with_loader_criteria(
            ClientOwned, lambda cls: cls.client_id == client_id, include_aliases=True
        )
    state.statement = state.statement.options(criteria)


def _check_insert_rows(state: ORMExecuteState, scope: Scope) -> None:
    mapper = state.bind_mapper
    if mapper is None or not issubclass(mapper.class_, ClientOwned):
        return
    params: Any = state.parameters
    rows = params if isinstance(params, list) else [params] if params else []
    for row in rows:
        if row.get("client_id") != scope.client_id or scope.client_id is None:
            raise ScopeViolation(f"insert into {mapper.local_table.name} outside the client scope")


@event.listens_for(ScopedSession, "before_flush")
def _stamp_new_rows(session: Session, _context: Any, _instances: Any) -> None:
    scope: Scope = session.scope  # type: ignore[attr-defined]
    for obj in session.new:
        if not isinstance(obj, ClientOwned) or scope.all_clients:
            continue
        if scope.client_id is None:
            raise ScopeViolation(f"{type(obj).__name__} created outside a client scope")
        if obj.client_id is None:
            obj.client_id = scope.client_id
        elif obj.client_id != scope.client_id:
            raise ScopeViolation(f"{type(obj).__name__} of another client created in this scope")
    for obj in session.dirty:
        if isinstance(obj, ClientOwned) and not scope.all_clients and obj.client_id != scope.client_id:
            raise ScopeViolation(f"{type(obj).__name__} moved to another client")


def _client_tables() -> frozenset[Table]:
    return frozenset(
        mapper.local_table  # type: ignore[misc]
        for mapper in Base.registry.mappers
        if issubclass(mapper.class_, ClientOwned)
    )


def in_scope(table: Table) -> ColumnElement[bool]:
    """The client criterion, for a subquery of a statement given to ``scoped``."""
    return table.c.client_id == bindparam(SCOPE_PARAMETER)


def _explicitly_scoped(statement: Executable) -> set[Table]:
    found: set[Table] = set()
    for element in iterate(statement):
        if (
            isinstance(element, BinaryExpression)
            and isinstance(element.left, Column)
            and element.left.key == "client_id"
            and isinstance(element.right, BindParameter)
            and element.right.key == SCOPE_PARAMETER
        ):
            found.add(element.left.table)  # type: ignore[arg-type]
    return found


class Scoped:
    """A Core statement restricted to one client (built by ``scoped``, run by ``ScopedSql``).

    ``unfiltered`` is the same statement without the criteria, for units of work opened for all
    clients (operator work), as the ORM path does.
    """

    __slots__ = ("plans", "statement", "unfiltered", "unfiltered_plans")

    def __init__(self, statement: Executable, unfiltered: Executable) -> None:
        self.statement = statement
        self.unfiltered = unfiltered
        self.plans = PlanCache() if can_prepare(statement) else None
        self.unfiltered_plans = PlanCache() if can_prepare(unfiltered) else None


class Unscoped:
    """A Core statement on tables no client owns (users, the audit log, walls): run as it is."""

    __slots__ = ("plans", "statement")

    def __init__(self, statement: Executable) -> None:
        self.statement = statement
        self.plans = PlanCache() if can_prepare(statement) else None


def scoped(statement: Select[Any] | Update | Delete | Insert) -> Scoped:
    """Restrict ``statement`` to the client of the session that will run it.

    SELECT, UPDATE and DELETE get ``<table>.client_id = :scope_client_id`` for every client-owned
    table of their FROM list (or DML target); INSERT gets ``client_id = :scope_client_id`` as a
    value. A client-owned table inside a subquery must carry ``in_scope(table)`` there, else the
    statement is refused: the check runs once, when the module that builds it is imported.
    """
    client_tables = _client_tables()
    if isinstance(statement, Insert):
        if statement.table not in client_tables:
            raise ValueError(f"{statement.table} is not client-owned: use Unscoped")
        return Scoped(statement.values({"client_id": bindparam(SCOPE_PARAMETER)}), statement)
    if isinstance(statement, Select):
        top_level = {t for f in statement.get_final_froms() for t in find_tables(f, include_joins=False)}
    else:
        top_level = {statement.table}  # type: ignore[arg-type]
    used = {t for t in find_tables(statement, include_crud=True) if t in client_tables}
    if not used:
        raise ValueError("statement reads no client-owned table: use Unscoped")
    unscoped_subquery_tables = used - top_level - _explicitly_scoped(statement)
    if unscoped_subquery_tables:
        names = ", ".join(sorted(str(t) for t in unscoped_subquery_tables))
        raise ValueError(f"client-owned tables in a subquery need in_scope(): {names}")
    filtered = statement
    for table in sorted(used & top_level, key=str):
        filtered = filtered.where(in_scope(table))  # type: ignore[union-attr]
    return Scoped(filtered, statement)


# A statement and its parameters, as ScopedSql.run takes them: what a repository's ``*_read``
# method returns for ``ScopedSql.prefetch``.
Read = tuple[Scoped | Unscoped, dict[str, Any]]


class ScopedSql:
    """Runs prebuilt Core statements in the session's transaction, in the session's scope (or, made by
    ``on_connection``, on one connection in a scope given once: a unit of work of a write batch)."""

    __slots__ = ("_before_next", "_connection", "_fixed_scope", "_observed", "_session", "_transaction")

    def __init__(self, session: Session | None, *, connection: Connection | None = None,
                 scope: Scope | None = None, observed: bool = False) -> None:
        self._session = session
        self._transaction: Any = None
        self._connection = connection
        self._fixed_scope = scope
        self._observed = observed
        self._before_next: Callable[[], None] | None = None

    @classmethod
    def on_connection(cls, connection: Connection, scope: Scope, *, observed: bool) -> ScopedSql:
        """A runner with no session: every statement on ``connection``, in whatever transaction or
        savepoint it is in (a unit of work of a write batch, which opens its savepoint itself).
        ``observed``: ``cursor_events_observed(connection)``, which the caller asked once."""
        return cls(None, connection=connection, scope=scope, observed=observed)

    def before_next_statement(self, prepare: Callable[[], None] | None) -> None:
        """Have ``prepare()`` run before the next statement on this runner's connection (one made by
        ``on_connection``), once: it must call this again with None first thing."""
        self._before_next = prepare

    @property
    def dialect_name(self) -> str:
        if self._session is None:
            return self._connection.dialect.name  # type: ignore[union-attr]
        return self._session.get_bind().dialect.name

    @property
    def scope(self) -> Scope:
        if self._fixed_scope is not None:
            return self._fixed_scope
        return self._session.scope  # type: ignore[union-attr]

    @classmethod
    def of(cls, session: Session) -> ScopedSql:
        """The session's one runner: the unit of work and every repository on the session share it,
        and with it the transaction's connection it keeps."""
        sql: ScopedSql | None = session.info.get("scoped_sql")
        if sql is None:
            sql = session.info["scoped_sql"] = cls(session)
        return sql

    def _transaction_connection(self) -> Connection:
        # A session's connection stays the same for the length of its transaction: kept here for it,
        # because asking the session on every statement cost more than the statement itself. So is
        # whether anything listens to the cursor events (statement counters, tracing): asking
        # SQLAlchemy's joined event lists cost 35 µs per statement.
        session = self._session
        if session is None:
            if self._before_next is not None:
                self._before_next()
            return self._connection  # type: ignore[return-value]
        transaction = session.get_transaction()
        if transaction is None or transaction is not self._transaction:
            connection = self._connection = self._session.connection()
            self._transaction = self._session.get_transaction()
            self._observed = cursor_events_observed(connection)
            return connection
        return self._connection  # type: ignore[return-value]

    def run(
        self,
        query: Scoped | Unscoped,
        parameters: dict[str, Any] | Sequence[dict[str, Any]] | None = None,
        *,
        defer: bool = False,
    ) -> CursorResult[Any] | PreparedResult:
        """Run the statement in the scope. ``defer``, for a write whose result nobody reads (an
        audit entry, a ledger row): on PostgreSQL it may be sent with the transaction's next
        statement or its commit, in one round trip, and an error it meets raised there (see
        ``pg_direct``); the statements after it see what it wrote, as always."""
        connection = self._transaction_connection()
        if parameters is not None and not isinstance(parameters, dict):
            return self._run_many(connection, query, parameters)
        statement, plans, bound = self._in_scope(query, parameters)
        return self._execute(connection, statement, plans, bound, defer)

    def _run_many(
        self, connection: Connection, query: Scoped | Unscoped, parameters: Sequence[dict[str, Any]]
    ) -> CursorResult[Any]:
        if type(query) is Unscoped:
            return connection.execute(query.statement, parameters)  # type: ignore[arg-type]
        if type(query) is not Scoped:
            raise ScopeViolation("only statements built by scoped() or marked Unscoped run here")
        scope = self.scope
        if scope.all_clients:
            return connection.execute(query.unfiltered, parameters)  # type: ignore[arg-type]
        if scope.client_id is None:
            raise ScopeViolation("a client-scoped statement needs a unit of work opened for a client")
        rows = [{**row, SCOPE_PARAMETER: scope.client_id} for row in parameters]
        if any("client_id" in row for row in rows):
            raise ScopeViolation("client_id comes from the scope, not from the caller")
        return connection.execute(query.statement, rows)

    @property
    def fetches_ahead(self) -> bool:
        """Whether ``prefetch`` does anything here (PostgreSQL's direct path, in a transaction): callers
        on the hot path ask first, and spare building the reads where it would not (SQLite)."""
        return fetches_ahead(self._transaction_connection())

    def prefetch(self, *reads: Read) -> None:
        """Reads (SELECTs, row locks included) that the caller is about to run one after another,
        in this order, with these parameters and nothing in between: on PostgreSQL sent together in
        one round trip, each result handed to its run (``DirectConnection.prefetch`` says why the
        caller still sees what running them one by one shows, and what drops a result unused).
        Elsewhere nothing happens. The caller then runs them as usual."""
        if not all(isinstance(query.statement, Select) for query, _ in reads):
            raise ScopeViolation("only reads are fetched ahead: a write dropped unused would not run again")
        connection = self._transaction_connection()
        if not fetches_ahead(connection):
            return
        planned = []
        for query, parameters in reads:
            statement, plans, bound = self._in_scope(query, parameters)
            plan = plans.plan(statement, connection.dialect, bound) if plans is not None else None
            if plan is None:
                return
            planned.append((plan, bound))
        prefetch(connection, planned)

    def _in_scope(
        self, query: Scoped | Unscoped, parameters: dict[str, Any] | None
    ) -> tuple[Executable, PlanCache | None, dict[str, Any]]:
        """The statement to run for the session's scope, its plans and its parameters."""
        if type(query) is Unscoped:
            return query.statement, query.plans, parameters or {}
        if type(query) is not Scoped:
            raise ScopeViolation("only statements built by scoped() or marked Unscoped run here")
        scope = self.scope
        if scope.all_clients:
            return query.unfiltered, query.unfiltered_plans, parameters or {}
        if scope.client_id is None:
            raise ScopeViolation("a client-scoped statement needs a unit of work opened for a client")
        if parameters is not None and "client_id" in parameters:
            raise ScopeViolation("client_id comes from the scope, not from the caller")
        return query.statement, query.plans, {**(parameters or {}), SCOPE_PARAMETER: scope.client_id}

    def insert_many(self, query: Scoped, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> int:
        """Insert many rows of a client-owned table in the scope's client (imports): each row a tuple
        of ``columns`` values in the driver's form; the client id is the scope's, never the caller's.
        Returns the number of rows inserted (a conflict clause may skip some)."""
        if type(query) is not Scoped or query.plans is None or not isinstance(query.unfiltered, Insert):
            raise ScopeViolation("insert_many runs INSERTs built by scoped()")
        if "client_id" in columns:
            raise ScopeViolation("client_id comes from the scope, not from the caller")
        client_id = self.scope.client_id
        if client_id is None:
            raise ScopeViolation("rows of a client are inserted in a unit of work opened for that client")
        connection = self._transaction_connection()
        plan = query.plans.bulk_insert(query.statement, connection.dialect, columns, SCOPE_PARAMETER)
        return plan.execute(connection, rows, client_id)


    def _execute(
        self,
        connection: Connection,
        statement: Executable,
        plans: PlanCache | None,
        parameters: dict[str, Any] | Sequence[dict[str, Any]] | None,
        defer: bool,
    ) -> CursorResult[Any] | PreparedResult:
        if plans is not None and (parameters is None or isinstance(parameters, dict)):
            single = parameters or {}
            plan = plans.plan(statement, connection.dialect, single)
            if plan is not None:
                return plan.execute(connection, single, defer=defer, observed=self._observed)
        return connection.execute(statement, parameters)  # type: ignore[arg-type]
