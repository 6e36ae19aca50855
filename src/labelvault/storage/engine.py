"""Engines for SQLite (WAL, foreign keys, busy timeout) and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError

from labelvault.storage import direct_path
from labelvault.storage.prepared import as_sqlalchemy_error


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def build_engine(url: str, *, sqlite_synchronous: str = "FULL", pool_size: int = 10) -> Engine:
    """Create the engine; on SQLite, take transactions out of pysqlite's hands.

    pysqlite's own transaction handling starts transactions lazily and only before DML, which
    breaks "read then write" atomicity. We switch it off and emit BEGIN ourselves: writers use
    BEGIN IMMEDIATE (execution option ``sqlite_begin``), so a read-modify-write unit of work holds
    the single write lock from its first statement, which is how the queue stays correct.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = create_engine(
            url,
            # pysqlite's timeout is SQLite's busy timeout (PRAGMA busy_timeout), set on every connection.
            connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000},
            pool_size=pool_size,
            max_overflow=pool_size,
            # The connection used last first: each SQLite connection has its own page cache, which
            # is dropped when another connection has written since; handing out connections in
            # turn (FIFO) made nearly every transaction start on a cold cache.
            pool_use_lifo=True,
            hide_parameters=True,  # SQL errors must never carry values into logs
        )
        _configure_sqlite(engine, sqlite_synchronous)
        return engine
    # psycopg's own prepared statements are off: it deallocates all of a connection's prepared
    # statements, ours too (pg_direct.py), whenever a transaction that used one of its own rolls back.
    connect_args = {"prepare_threshold": None} if parsed.get_driver_name() == "psycopg" else {}
    engine = create_engine(url, pool_size=pool_size, max_overflow=pool_size, hide_parameters=True,
                           connect_args=connect_args)
    ping_when_idle(engine, PING_AFTER_IDLE_SECONDS)
    if parsed.get_driver_name() == "psycopg":
        _use_direct_path(engine)
    return engine


def _use_direct_path(engine: Engine) -> None:
    """Prebuilt statements through libpq, a transaction's BEGIN and its deferred writes sent with
    its next statement or its commit (pg_direct.py). These handlers keep the order: whatever else
    runs on the connection (a Core or ORM statement, a savepoint) sends what waits first; a commit
    sends it with the COMMIT; a rollback, or a connection going back to the pool, drops it.
    Registered before anything copies the engine (``execution_options``): copies take the
    engine's event flags as they are when made."""
    from labelvault.storage.pg_direct import DirectConnection  # psycopg engines only

    direct_path.enable(engine.dialect)

    def send(connection: Connection, send_waiting: Callable[[DirectConnection], None]) -> None:
        direct = direct_path.of_record(connection.connection.info)
        if direct is None:
            return
        try:
            send_waiting(direct)
        except connection.dialect.loaded_dbapi.Error as error:  # raised as SQLAlchemy would
            raise as_sqlalchemy_error(connection, "(statements deferred to this point)", error) from error

    @event.listens_for(engine, "before_execute")
    def _send_before(connection: Connection, *_: Any) -> None:
        send(connection, DirectConnection.send_waiting)

    @event.listens_for(engine, "commit")
    def _commit(connection: Connection) -> None:
        send(connection, DirectConnection.commit)

    def discard(record_info: dict[str, Any]) -> None:
        direct = direct_path.of_record(record_info)
        if direct is not None:
            direct.discard()

    @event.listens_for(engine, "rollback")
    def _rollback(connection: Connection) -> None:
        discard(connection.connection.info)

    @event.listens_for(engine, "checkin")
    def _drop_on_return(_dbapi_connection: Any, record: Any) -> None:
        discard(record.info)


PING_AFTER_IDLE_SECONDS = 1.0


def ping_when_idle(engine: Engine, idle_seconds: float) -> None:
    """Check a pooled connection that sat unused for ``idle_seconds`` before handing it out.

    A connection the server dropped (a restart, an idle timeout, a network cut) is found by a
    ping and replaced, so a request does not fail on it. SQLAlchemy's ``pool_pre_ping`` pings on
    every checkout: a round trip per transaction, two per answer of the queue; a connection back in
    the pool for less than a second was working then. If the server goes away within that second,
    the request using such a connection fails once and SQLAlchemy replaces the whole pool.
    """
    dialect = engine.dialect

    @event.listens_for(engine, "checkin")
    def _note_idle(_dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get(_IDLE_SINCE)  # None: a new connection (the record's info is cleared then)
        if idle_since is None or time.monotonic() - idle_since < idle_seconds:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as error:
            if dialect.is_disconnect(error, dbapi_connection, None):
                raise DisconnectionError("the database dropped this pooled connection") from error  # pool retries
            raise


_IDLE_SINCE = "labelvault.idle_since"


_BEGIN = {mode: f"BEGIN {mode}" for mode in ("DEFERRED", "IMMEDIATE", "EXCLUSIVE")}
BUSY_TIMEOUT_MS = 30_000  # how long a statement waits for another connection's write lock
_SQLITE_BUSY = 5


def _configure_sqlite(engine: Engine, synchronous: str) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves, see build_engine
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        # Temporary storage in memory: above all the savepoints' sub-journals (the page images a
        # savepoint rolls back to), which SQLite otherwise spills to a temporary file past 64 KiB;
        # a queue step's savepoint passed that, and its writes were 50 of the 58 pwrite calls per
        # answer (docs/benchmarks.md). Sorts and temporary tables then live in memory too.
        cursor.execute("PRAGMA temp_store=MEMORY")
        cursor.close()

    # Savepoints (the units of work of a write batch, see unit_of_work.WriteBatch) on the driver's
    # connection too: SQLAlchemy compiles each SAVEPOINT and RELEASE afresh (they are not cached),
    # which cost a quarter to half a ms apiece here, more than the unit of work's statements.
    def savepoint(statement: str) -> Callable[[Any, str], None]:
        def run(connection: Any, name: str) -> None:
            sql = f'{statement} "{name}"'
            try:
                connection.connection.driver_connection.execute(sql)
            except connection.dialect.loaded_dbapi.Error as error:  # raised as SQLAlchemy would
                raise as_sqlalchemy_error(connection, sql, error) from error

        return run

    dialect: Any = engine.dialect  # this engine's own dialect instance
    dialect.do_savepoint = savepoint("SAVEPOINT")
    dialect.do_release_savepoint = savepoint("RELEASE SAVEPOINT")
    dialect.do_rollback_to_savepoint = savepoint("ROLLBACK TO SAVEPOINT")

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        options = connection.get_execution_options()
        begin = _BEGIN[options.get("sqlite_begin", "DEFERRED")]
        # On the driver's connection: every transaction starts here, and SQLAlchemy's statement
        # execution around one BEGIN cost more than the BEGIN.
        driver = connection.connection.driver_connection
        if not options.get("sqlite_no_wait"):
            driver.execute(begin)
            return
        driver.execute("PRAGMA busy_timeout=0")  # another process holds the write lock: fail at once
        try:
            driver.execute(begin)
        finally:
            driver.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")


def writer(engine: Engine) -> Engine:
    """The same pool, but transactions take SQLite's write lock at once (no-op elsewhere)."""
    return engine.execution_options(sqlite_begin="IMMEDIATE")


def writer_without_waiting(engine: Engine) -> Engine:
    """As ``writer``, but the BEGIN fails at once (SQLITE_BUSY) while another process writes."""
    return engine.execution_options(sqlite_begin="IMMEDIATE", sqlite_no_wait=True)


def is_busy(error: BaseException) -> bool:
    """SQLite's "database is locked": another connection holds the write lock (SQLITE_BUSY)."""
    return getattr(getattr(error, "orig", error), "sqlite_errorcode", None) == _SQLITE_BUSY


def checkpoint_wal(engine: Engine) -> None:
    """Copy SQLite's write-ahead log into the database file (the server does it every 0.2 s).

    PASSIVE checkpoints never wait for, nor block, readers or the writer. Without them the commit
    that crosses SQLite's automatic threshold (1000 pages) runs the checkpoint itself, with its
    fsync, while holding the write lock: one request in a few hundred waits tens of ms.
    """
    connection = engine.raw_connection()  # no transaction: a checkpoint cannot run inside one
    try:
        connection.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)")  # type: ignore[union-attr]
    finally:
        connection.close()
