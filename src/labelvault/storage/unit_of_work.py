"""The unit of work owns the transaction and carries the client scope.

    with uow_factory.for_client(client_id, write=True) as uow:
        project = uow.projects.get(project_id)
        ...
        uow.commit()

Leaving without ``commit()`` rolls back. Repositories exist only inside a unit of work, so
nothing can reach client data without a scope. On PostgreSQL the scope is also set as
``app.client_id`` for the transaction (``set_config(..., true)``), which row-level security uses.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from types import TracebackType
from typing import Any, Generic, Self, TypeVar

from sqlalchemy import Connection, Engine, event, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from labelvault.crypto.keyring import DataCipher, Keyring
from labelvault.errors import CryptoError, DatabaseBusy, LockWaitTooLong, WriteLost
from labelvault.storage import direct_path
from labelvault.storage.engine import is_busy, writer, writer_without_waiting
from labelvault.storage.prepared import as_sqlalchemy_error, cursor_events_observed
from labelvault.storage.queue_cursors import QueueCursors, QueuePosition, ReviewPosition
from labelvault.storage.repositories import (
    AnswerRepository,
    ClientRepository,
    DataKeyRepository,
    GoldRepository,
    LeaseRepository,
    LedgerRepository,
    LoginFailureRepository,
    MembershipRepository,
    ProjectRepository,
    QualificationRepository,
    QualityCacheRepository,
    ReviewRepository,
    SkipRepository,
    SuspensionRepository,
    TaskRepository,
    TokenRepository,
    UserRepository,
    WebSessionRepository,
)
from labelvault.storage.scope import Scope, ScopedSession, ScopedSql
from labelvault.storage.writer_lock import WriterLock, lock_file_of

T = TypeVar("T")
R = TypeVar("R")


class _RepositoryOnFirstUse(Generic[R]):
    """A unit of work's repository, made on first use: a step uses a few of the eighteen, and
    making all of them at every unit of work cost more than some of its statements."""

    def __init__(self, make: Callable[[Session], R]) -> None:
        self._make = make
        self._name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    def __get__(self, uow: UnitOfWork | None, owner: type) -> R:
        if uow is None:
            return self  # type: ignore[return-value]
        repository = self._make(uow)
        uow.__dict__[self._name] = repository  # the instance's own attribute from now on
        return repository


class UnitOfWork:
    # System-level repositories (not client-owned tables).
    clients = _RepositoryOnFirstUse(ClientRepository)
    users = _RepositoryOnFirstUse(UserRepository)
    tokens = _RepositoryOnFirstUse(TokenRepository)
    login_failures = _RepositoryOnFirstUse(LoginFailureRepository)
    web_sessions = _RepositoryOnFirstUse(WebSessionRepository)
    # Client-owned repositories: the scoped session filters them.
    memberships = _RepositoryOnFirstUse(MembershipRepository)
    data_keys = _RepositoryOnFirstUse(DataKeyRepository)
    projects = _RepositoryOnFirstUse(ProjectRepository)
    tasks = _RepositoryOnFirstUse(TaskRepository)
    leases = _RepositoryOnFirstUse(LeaseRepository)
    ledger = _RepositoryOnFirstUse(LedgerRepository)
    answers = _RepositoryOnFirstUse(AnswerRepository)
    skips = _RepositoryOnFirstUse(SkipRepository)
    reviews = _RepositoryOnFirstUse(ReviewRepository)
    gold = _RepositoryOnFirstUse(GoldRepository)
    suspensions = _RepositoryOnFirstUse(SuspensionRepository)
    qualifications = _RepositoryOnFirstUse(QualificationRepository)
    quality_cache = _RepositoryOnFirstUse(QualityCacheRepository)

    def __init__(self, factory: UnitOfWorkFactory, scope: Scope, *, write: bool) -> None:
        self._factory = factory
        self.scope = scope
        self._write = write
        self._committed = False
        self._spend: dict[tuple[int, int], int] = {}
        self._session: Session | None = None
        self.info: dict[str, Any] = {}  # what the use cases note for the rest of this unit of work

    def __enter__(self) -> Self:
        batch = self._batch = _current_batch.get()
        if batch is not None:
            # In a write batch (group commit): a savepoint of the batch's transaction, which holds
            # the writer lock already. The statements run on the batch's connection, and the ORM
            # session is made only if something asks for it: SQLAlchemy's session and savepoint
            # machinery cost 60 µs per unit of work, more than a queue step's Python and SQL.
            self._holds_write_lock = False
            batch.check_transaction()
            self.sql = ScopedSql.on_connection(batch.connection, self.scope, observed=batch.observed)
            self._savepoint = batch.open_savepoint()
            self._release_pending = False
            self._memo_at_savepoint = dict(batch.memo)
            if self.scope.client_id is not None:
                # No queue step writes a data key: the batch's units of work of one client share the rows.
                self.data_keys.remember_in(batch.memo.setdefault(("data_keys", self.scope.client_id), {}))
            return self
        bind = self._factory.write_engine if self._write else self._factory.engine
        self._holds_write_lock = self._write and self._factory.serialize_writers
        # SQLite has one writer at a time. Queueing our own writers on a lock is fair and
        # cheap; leaving it to SQLite's busy handler (sleep and retry) starves some threads.
        factory = self._factory
        if self._holds_write_lock and not factory.write_lock.acquire(timeout=factory.write_lock_timeout):
            raise DatabaseBusy("the database is busy; try again")
        session = self._session = self._factory.sessionmaker(bind=bind)
        session.info["scope"] = self.scope
        self.sql = ScopedSql.of(session)
        return self

    @property
    def session(self) -> Session:
        """The ORM session of this unit of work (in a write batch made on first use, as a savepoint
        inside the unit of work's own, sharing its statement runner)."""
        session = self._session
        if session is None:
            assert self._batch is not None
            if self._release_pending:
                self._reopen_savepoint()  # before the session's savepoint nests inside it
            session = self._session = self._factory.sessionmaker(
                bind=self._batch.connection, join_transaction_mode="create_savepoint")
            session.info["scope"] = self.scope
            session.info["scoped_sql"] = self.sql
        return session

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # close() rolls back whatever was not committed; unlike rollback() it leaves loaded objects
        # readable (detached), so use cases can return what they read.
        try:
            if self._session is not None:
                self._session.close()
        finally:
            if self._batch is not None:
                self._leave_savepoint(self._batch)
            if self._holds_write_lock:
                self._factory.write_lock.release()
        if exc is not None and _short_lock_waits.get() and _is_lock_timeout(exc):
            raise LockWaitTooLong("a row this step needs is held by another transaction; nothing was written") from exc

    def _leave_savepoint(self, batch: WriteBatch) -> None:
        """Roll back what was written since the last commit (as the session's close does) and what
        was noted of it in the batch's memo."""
        memo = batch.memo
        if memo != self._memo_at_savepoint:
            memo.clear()
            memo.update(self._memo_at_savepoint)
        if self._release_pending:  # committed, and nothing ran since: keep what it wrote
            batch.release_savepoint_if_open(self._savepoint)
        else:
            batch.end_savepoint(self._savepoint)

    @property
    def batch_memo(self) -> dict[Hashable, Any] | None:
        """In a write batch, what its units of work noted for the next ones (see ``WriteBatch``);
        None outside one."""
        return self._batch.memo if self._batch is not None else None

    def before_batch_commit(self, key: Hashable, write: Callable[[ScopedSql, dict[Hashable, Any]], None]) -> None:
        """In a write batch: have ``write(sql, memo)`` run just before the batch commits (once per
        ``key``), to write what the batch's units of work noted in the memo (see ``WriteBatch``)."""
        if self._batch is None:
            raise RuntimeError("not in a write batch")
        self._batch.before_commit[key] = write

    @property
    def client_id(self) -> int:
        if self.scope.client_id is None:
            raise CryptoError("no client in scope")
        return self.scope.client_id

    def commit(self) -> None:
        self.write_spend()
        batch = self._batch
        if batch is None:
            self.session.commit()
        else:
            # What this unit of work does after its commit is in a savepoint of its own again. Most
            # do nothing more: the savepoint is released, and the next one opened, only when a
            # statement runs (three statements fewer per step), or at once while an ORM session is
            # open (its own savepoint, opened by SQLAlchemy, must nest in the new one).
            if self._session is not None:
                self._session.commit()  # its savepoint, inside this unit of work's
                self._reopen_savepoint()
            else:
                self._release_pending = True
                self.sql.before_next_statement(self._reopen_savepoint)
            self._memo_at_savepoint = dict(batch.memo)
        self._committed = True

    def _reopen_savepoint(self) -> None:
        batch = self._batch
        assert batch is not None
        self.sql.before_next_statement(None)
        batch.release_savepoint(self._savepoint)
        self._savepoint = batch.open_savepoint()
        self._release_pending = False

    def add_spend(self, project_id: int, user_id: int, amount: int) -> None:
        """Add to the project's running total late (see ``write_spend``); the ledger row is written now."""
        key = (project_id, user_id)
        self._spend[key] = self._spend.get(key, 0) + amount

    def write_spend(self) -> None:
        """Write the running spend totals added so far.

        A stripe of the total is a row that other paid acts may update too, and its lock lasts until
        the commit: so it is written as late as possible, at commit (on SQLite by the audit append,
        whose entry must follow the act's writes).
        """
        for (project_id, user_id), amount in self._spend.items():
            if amount:
                self.ledger.add_to_spent(project_id, user_id, amount)
        self._spend.clear()

    def flush(self) -> None:
        if self._session is not None:  # (none yet in a write batch: no ORM change to write)
            self._session.flush()

    # Encryption: the client's data keys are rows of this client, wrapped by its key outside the DB.
    def cipher(self, data_key_id: int) -> DataCipher:
        key = self.data_keys.get(data_key_id)
        if key is None:
            raise CryptoError(f"data key {data_key_id} is not a key of client {self.client_id}")
        return self._factory.keyring.data_cipher(self.client_id, key.wrapped_key)

    def active_cipher(self) -> tuple[int, DataCipher]:
        key = self.data_keys.active()
        if key is None:
            raise CryptoError(f"client {self.client_id} has no active data key")
        return key.id, self._factory.keyring.data_cipher(self.client_id, key.wrapped_key)


_SET_SCOPE = text("SELECT set_config('app.client_id', :c, true), set_config('app.all_clients', :a, true)")
_SET_SCOPE_LITERAL = "SELECT set_config('app.client_id', '{}', true), set_config('app.all_clients', '{}', true)"
_SET_SHORT_LOCK_WAITS = text("SELECT set_config('lock_timeout', :t, true)")
SHORT_LOCK_WAIT_MS = 100
_SHORT_LOCK_WAITS_LITERAL = f", set_config('lock_timeout', '{SHORT_LOCK_WAIT_MS}ms', true)"
_short_lock_waits: ContextVar[bool] = ContextVar("labelvault_short_lock_waits", default=False)
_LOCK_NOT_AVAILABLE = "55P03"  # PostgreSQL's SQLSTATE for lock_timeout


def _is_lock_timeout(error: BaseException) -> bool:
    return getattr(getattr(error, "orig", None), "sqlstate", None) == _LOCK_NOT_AVAILABLE


@event.listens_for(ScopedSession, "after_begin")
def _scope_each_transaction(session: ScopedSession, _transaction: Any, connection: Connection) -> None:
    """PostgreSQL: row-level security reads the unit of work's scope from the transaction, so every
    transaction of the session gets it, a unit of work's second one (after a commit) included.
    Transaction-local (is_local=true): it never leaks to the next user of a pooled connection."""
    scope: Scope | None = session.info.get("scope")
    if scope is None or connection.dialect.name != "postgresql":
        return
    value = "" if scope.client_id is None else str(scope.client_id)
    all_clients = "on" if scope.all_clients else ""
    short_waits = _short_lock_waits.get()
    direct = direct_path.of(connection)
    # With the BEGIN psycopg would send on its own, both sent with the transaction's first statement
    # (the values are an integer's digits and "on" or nothing: written into the SQL as they are).
    sql = _SET_SCOPE_LITERAL.format(value, all_clients) + (_SHORT_LOCK_WAITS_LITERAL if short_waits else "")
    if direct is not None and direct.defer_begin(sql.encode()):
        return
    connection.execute(_SET_SCOPE, {"c": value, "a": all_clients})
    if short_waits:
        connection.execute(_SET_SHORT_LOCK_WAITS, {"t": f"{SHORT_LOCK_WAIT_MS}ms"})


class WriteBatch:
    """Group commit on SQLite: several short writing steps in one transaction, made durable by one
    commit (one fsync) instead of one each.

        batch = factory.begin_batch()          # DatabaseBusy at once if another process writes
        first = batch.run(step, ...)           # every unit of work inside is a savepoint of the batch
        second = batch.run(other_step, ...)
        batch.commit()                         # now, and only now, both are written

    A unit of work opened while ``run`` calls its function, reading or writing, joins the batch's
    transaction as a savepoint: its ``commit()`` releases the savepoint, leaving without it rolls
    back only its own writes, and it sees what the steps before it wrote. Nothing a step did is
    durable before ``commit`` returns, so its result must not be reported before then. The batch
    holds the database's writer lock (writer_lock.py) from ``begin_batch`` to ``commit`` or ``rollback``.

    Since nothing else writes while a batch is open, its units of work may note in ``memo`` what
    the next ones would otherwise read again, or write only once for the whole batch: a value one
    of them wrote (the audit log's head, written by ``before_commit``), rows no step writes (a
    client's data keys), work done for the whole batch (expired leases collected). A unit of work
    that rolls back puts the memo back as it was when its savepoint opened, so a value noted is
    replaced, never changed in place (only a cache of rows that no step writes, such as the data
    keys read, may grow in place: what it holds stays true whatever rolls back).

    A unit of work in a batch runs its statements on the batch's connection, in a savepoint it
    opens itself on the driver's connection (``open_savepoint``), and makes an ORM session only if
    something asks for one (see ``UnitOfWork``).
    """

    def __init__(self, factory: UnitOfWorkFactory, *, lock_held: bool = False) -> None:
        if not lock_held and not factory.write_lock.acquire(blocking=False):
            raise DatabaseBusy("another writer holds the database")
        try:
            connection = factory.batch_connection()
            try:
                connection.begin()  # BEGIN IMMEDIATE, failing at once while another process writes
            except (OperationalError, factory.engine.dialect.loaded_dbapi.OperationalError) as error:
                # (the driver's own class: raised in the "begin" event, SQLAlchemy does not wrap it)
                factory.keep_batch_connection(connection)
                if is_busy(error):
                    raise DatabaseBusy("another process is writing to the database") from None
                raise
        except BaseException:
            factory.write_lock.release()
            raise
        self._factory = factory
        self.connection = connection
        self._driver = connection.connection.driver_connection
        self.observed = cursor_events_observed(connection)  # asked once: costly (prepared.py)
        self.steps = 0
        self.open = True
        self.memo: dict[Hashable, Any] = {}
        # Writes for the whole batch, made just before its commit from what the memo holds then
        # (one per key, added again by each step that needs it: the last one added runs).
        self.before_commit: dict[Hashable, Callable[[ScopedSql, dict[Hashable, Any]], None]] = {}
        self._savepoints = 0

    def open_savepoint(self) -> str:
        self._savepoints += 1
        name = f"lv{self._savepoints}"
        self._savepoint_statement("SAVEPOINT", name)
        return name

    def release_savepoint(self, name: str) -> None:
        self._savepoint_statement("RELEASE", name)

    def release_savepoint_if_open(self, name: str) -> None:
        """Keep what was written since savepoint ``name`` opened, and close it (nothing to do if the
        database dropped the batch's transaction: ``commit`` raises then)."""
        if self._driver.in_transaction:
            self._savepoint_statement("RELEASE", name)

    def end_savepoint(self, name: str) -> None:
        """Roll back what was written since savepoint ``name`` opened, and close it. Nothing is
        done if the database dropped the batch's transaction (``check_transaction`` says so)."""
        if self._driver.in_transaction:
            self._savepoint_statement("ROLLBACK TO", name)
            self._savepoint_statement("RELEASE", name)

    def _savepoint_statement(self, statement: str, name: str) -> None:
        sql = f"{statement} {name}"
        try:
            self._driver.execute(sql)
        except self.connection.dialect.loaded_dbapi.Error as error:  # raised as SQLAlchemy would
            raise as_sqlalchemy_error(self.connection, sql, error) from error

    def run(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Call ``function`` with its units of work in this batch's transaction."""
        if not self.open:
            raise RuntimeError("this write batch is committed or rolled back already")
        self.steps += 1
        self.check_transaction()
        token = _current_batch.set(self)
        try:
            return function(*args, **kwargs)
        finally:
            _current_batch.reset(token)

    def check_transaction(self) -> None:
        """Raise ``WriteLost`` if the database dropped the batch's transaction.

        SQLite rolls a whole transaction back on some errors (disk full, I/O error). Without this
        check the driver's commit would then do nothing and say nothing, and a later step's
        SAVEPOINT would open a transaction of its own that its RELEASE commits, alone."""
        if not self._driver.in_transaction:
            raise WriteLost("the database rolled these writes back; nothing of them was written")

    def commit(self) -> None:
        """Make every step's released savepoints durable (one commit); releases the write lock."""
        committed = False
        try:
            self.check_transaction()
            if self.before_commit:
                sql = ScopedSql.on_connection(self.connection, Scope(), observed=self.observed)
                for write in self.before_commit.values():
                    write(sql, self.memo)
            self.connection.commit()
            committed = True
        finally:
            if not committed:
                self._factory.queue_cursors.forget_all()
                self._factory.review_cursors.forget_all()
            self._close()

    def rollback(self) -> None:
        # Its steps' queue walks may have passed tasks that its writes filled (queue_cursors.py).
        self._factory.queue_cursors.forget_all()
        self._factory.review_cursors.forget_all()
        self._close()  # closing the connection rolls its transaction back

    def _close(self) -> None:
        if self.open:
            self.open = False
            try:
                self._factory.keep_batch_connection(self.connection)  # rolls back what is not committed
            finally:
                self._factory.write_lock.release()


# The write batch whose ``run`` is calling (a context variable: no other thread or asyncio task sees it).
_current_batch: ContextVar[WriteBatch | None] = ContextVar("current_write_batch", default=None)


class UnitOfWorkFactory:
    """Built once by the bootstrap; hands out units of work, each with an explicit scope."""

    def __init__(self, engine: Engine, keyring: Keyring) -> None:
        self.engine = engine
        self.write_engine = writer(engine)
        self.write_engine_without_waiting = writer_without_waiting(engine)
        self.keyring = keyring
        self.serialize_writers = engine.dialect.name == "sqlite"
        # SQLite: every writer of the database file queues here before BEGIN IMMEDIATE (writer_lock.py).
        self.write_lock = WriterLock(lock_file_of(engine.url.database) if self.serialize_writers else None)
        self.write_lock_timeout = 60.0  # seconds a writer waits for the other writers
        self.sessionmaker = sessionmaker(class_=ScopedSession, expire_on_commit=False, autoflush=False)
        self.queue_cursors = QueueCursors[QueuePosition]()  # where each labeler's next queue walk may start
        self.review_cursors = QueueCursors[ReviewPosition]()  # and each reviewer's next review walk
        # SQLite: the connection of the last write batch, kept for the next one (see batch_connection).
        self._idle_batch_connection: Connection | None = None

    def batch_connection(self) -> Connection:
        """A connection for a write batch: the one the last batch used, if it is still sound. Write
        batches take turns (the writer lock, held by the caller), and checking a connection out of
        the pool and back in cost about 80 µs of a batch that often holds one step of 1-2 ms."""
        connection, self._idle_batch_connection = self._idle_batch_connection, None
        if connection is None or connection.closed or connection.invalidated:
            connection = self.write_engine_without_waiting.connect()
        return connection

    def keep_batch_connection(self, connection: Connection) -> None:
        """Take back a write batch's connection, its transaction ended (rolled back if not)."""
        try:
            if connection.in_transaction():
                connection.rollback()
        except BaseException:
            connection.close()
            raise
        if connection.invalidated:
            connection.close()
        else:
            self._idle_batch_connection = connection

    def close(self) -> None:
        """Give back the connection kept between write batches (before the engine is disposed)."""
        connection, self._idle_batch_connection = self._idle_batch_connection, None
        if connection is not None:
            connection.close()

    def can_write_at_once(self) -> bool:
        """True when no writer of this process holds the database (a writer of another process is
        not seen here; always false where writers are not serialised, i.e. PostgreSQL)."""
        return self.serialize_writers and not self.write_lock.locked()

    @contextmanager
    def short_lock_waits(self) -> Iterator[None]:
        """Inside: on PostgreSQL, a statement of a unit of work that waits more than
        ``SHORT_LOCK_WAIT_MS`` for a row lock fails, and the unit of work raises ``LockWaitTooLong``
        (its transaction rolled back). For work that runs on an event loop, which a long wait would
        hold up (see ``api.deps.run_queue_step``)."""
        token = _short_lock_waits.set(True)
        try:
            yield
        finally:
            _short_lock_waits.reset(token)

    def begin_batch(self, *, lock_held: bool = False) -> WriteBatch:
        """A write batch (group commit, see ``WriteBatch``); SQLite only. Raises ``DatabaseBusy`` at
        once, without waiting, while another writer holds the database (in this process or another).
        ``lock_held``: the caller took ``write_lock`` already; the batch releases it when it ends
        (on a refusal too)."""
        if not self.serialize_writers:
            raise RuntimeError("write batches are for SQLite, where writers take turns")
        return WriteBatch(self, lock_held=lock_held)

    def for_client(self, client_id: int, *, write: bool = False) -> UnitOfWork:
        return UnitOfWork(self, Scope(client_id=client_id), write=write)

    def system(self, *, write: bool = False) -> UnitOfWork:
        """Install-level work (clients, users, tokens); sees no client-owned rows."""
        return UnitOfWork(self, Scope(), write=write)

    def all_clients(self, *, write: bool = False) -> UnitOfWork:
        """Operator work across clients (offboarding, audit); use sparingly and say why."""
        return UnitOfWork(self, Scope(all_clients=True), write=write)
