"""PostgreSQL statements through libpq's prepared-statement calls, beneath psycopg's cursor.

On PostgreSQL a queue step is some thirty short statements, and psycopg's cursor cost about twice
what libpq itself does for each: per execute it builds a cursor, converts the query, looks up its
prepared-statement cache and drives a generator through its wait loop (89 µs of CPU against 38 µs
for ``PGconn.exec_prepared`` on the machine of docs/benchmarks.md). Here a prebuilt statement
(``prepared.Plan``) is prepared once per connection and then executed with one libpq call, which
releases the GIL while it waits for the server. Values go through psycopg's own ``Transformer``
(the same dumpers, loaders and parameter types as the cursor: results are the values the cursor
would give), and a failed statement raises psycopg's own exception for its SQLSTATE.

Fewer round trips: every round trip costs both processes CPU of their own (system calls, a
wake-up on each side; about 30 µs each on that machine, more than a short statement itself), so
what need not wait for the server does not:

* a transaction's ``BEGIN`` and its scope (``defer_begin``) go with its first statement;
* a write whose result nobody reads (``execute(..., defer=True)``: an audit entry, a ledger row)
  goes with the next statement, or with the ``COMMIT`` (``commit``);
* reads that a use case is about to run one after another, none needing the one before it
  (``prefetch``: a queue step's settings, locks and checks), go together, their results kept
  for the executions that follow;

sent together in libpq's pipeline mode, in order, so every statement still sees what the ones
before it wrote. A deferred statement's error is raised by whatever sends it: the next statement
or the commit. A rollback drops what was not sent (``discard``). ``storage.engine`` hooks the
engine so that anything else run on the connection (Core or ORM statements, savepoints) sends what
waits first, and a commit or rollback does the above.

psycopg stays in charge of the connection otherwise: the direct path runs only inside a
transaction that is open and healthy (``INTRANS``, or one whose BEGIN waits here); anything else
(no transaction, one that failed, psycopg's own pipeline) goes through the cursor as before.
Callers reach a connection's state through ``direct_path.of``, which imports this module only
for an engine that uses the path (SQLite installs never load psycopg).

Written here rather than taken from a library: psycopg offers these calls (``psycopg.pq``,
``psycopg.adapt.Transformer``) but no cheaper execute built on them, and its own pipeline sends
statements in a batch only where the caller reads no result in between.
"""

from __future__ import annotations

import itertools
import select
from collections import deque
from typing import Any

from psycopg import errors as pg_errors
from psycopg import pq
from psycopg.adapt import PyFormat, Transformer

from labelvault.storage.direct_path import DirectResult

_OK = (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK)
_SYNC = pq.ExecStatus.PIPELINE_SYNC
_ABORTED = pq.ExecStatus.PIPELINE_ABORTED

_NO_ROWS = DirectResult([], -1, [])

# What waits to be sent, in order: (name, values, formats) to run a prepared statement, or
# (None, name, sql, parameter types) to prepare one.
_Waiting = tuple[Any, ...]


class DirectConnection:
    """One psycopg connection's direct state: its value transformer, the statements prepared on it
    and what waits to be sent (kept in the pool record's ``info``, which SQLAlchemy clears when it
    replaces the connection)."""

    __slots__ = ("_ahead", "_begin", "_driver", "_names", "_pgconn", "_poll", "_prepared", "_transformer",
                 "_waiting")
    # Round trips made on this path by every connection of the process (a pipeline counts once):
    # what benchmarks and tests read to see how many a use case takes.
    round_trips = 0

    def __init__(self, driver_connection: Any) -> None:
        self._driver = driver_connection
        self._pgconn = driver_connection.pgconn
        self._transformer = Transformer(driver_connection)
        self._prepared: dict[tuple[bytes, tuple[int, ...]], bytes] = {}
        self._names = itertools.count()
        self._begin: list[bytes] | None = None  # BEGIN and the scope, until the first statement
        self._waiting: list[_Waiting] = []  # deferred writes, in order
        self._poll: Any = None
        self._ahead: deque[tuple[bytes, list[Any], DirectResult]] = deque()  # see prefetch

    def in_transaction(self) -> bool:
        pgconn = self._pgconn
        if pgconn.pipeline_status != 0:
            return False
        return self._begin is not None or pgconn.transaction_status == pq.TransactionStatus.INTRANS

    def execute(self, sql: bytes, parameters: list[Any], *, defer: bool = False) -> DirectResult:
        """Run a statement (prepared on this connection at its first use with these parameter types).
        With ``defer``, only queue it (it returns no rows): it is sent with the next statement or
        the commit, and its error, if any, is raised then. A result fetched ahead for exactly this
        execution (``prefetch``) is handed out without asking the server."""
        ahead = self._ahead
        if ahead:
            sql_ahead, parameters_ahead, result = ahead.popleft()
            if sql_ahead == sql and parameters_ahead == parameters:
                return _NO_ROWS if defer else result  # deferred: a row lock, which ran in its turn
            ahead.clear()
        name, values, formats = self._queue_prepared(sql, parameters)
        if defer:
            self._waiting.append((name, values, list(formats)))
            return _NO_ROWS
        if self._begin is None and not self._waiting:
            DirectConnection.round_trips += 1
            result = self._pgconn.exec_prepared(name, values, formats)
            self._check(result)
        else:
            self._waiting.append((name, values, formats))
            result = self._send_waiting()[-1]
        return self._loaded(result)

    def prefetch(self, statements: list[tuple[bytes, list[Any]]]) -> None:
        """Run reads that a use case is about to run one after another, in one round trip with
        what waits before them, and keep their results for those very executions (``execute``).

        The server runs each statement after the one before it has finished, as if they had been
        sent one by one. A kept result is handed out only to the next statement run on this
        connection, and only if it is the same statement with the same values; anything else run
        here (another statement, a deferred write, a Core or ORM statement, a commit or rollback)
        drops the results still kept. So the caller sees exactly what running the same statements
        one by one, in the same order with nothing in between, would have shown; the only
        difference is that they ran sooner. Reads and row locks only (``ScopedSql.prefetch``): a
        dropped one is run again when its turn comes, which must change nothing. An error is
        raised here, once all have come back (the server skips the statements after a failed one)."""
        positions = []
        self._ahead.clear()
        for sql, parameters in statements:
            name, values, formats = self._queue_prepared(sql, parameters)
            positions.append(len(self._begin or ()) + len(self._waiting))
            self._waiting.append((name, values, list(formats)))
        results = self._send_waiting()
        self._ahead.extend(
            (sql, parameters, self._loaded(results[position]))
            for (sql, parameters), position in zip(statements, positions, strict=True)
        )

    def _queue_prepared(self, sql: bytes, parameters: list[Any]) -> tuple[bytes, list[Any], Any]:
        """(the prepared statement's name, the values, their formats); a statement new to this
        connection is queued to be prepared in the same round trip as its first use."""
        transformer = self._transformer
        values = transformer.dump_sequence(parameters, [PyFormat.AUTO] * len(parameters))
        types = transformer.types
        key = (sql, types)
        name = self._prepared.get(key)
        if name is None:
            name = b"lv_%d" % next(self._names)
            self._waiting.append((None, name, sql, types))
            self._prepared[key] = name  # forgotten again if the PREPARE fails
        return name, values, transformer.formats

    def _loaded(self, result: Any) -> DirectResult:
        rowcount = -1 if result.command_tuples is None else result.command_tuples
        if result.status != pq.ExecStatus.TUPLES_OK:
            return DirectResult([], rowcount, [])
        transformer = self._transformer
        transformer.set_pgresult(result)
        rows = transformer.load_rows(0, result.ntuples, tuple)
        return DirectResult(rows, rowcount, [result.ftype(i) for i in range(result.nfields)])

    def defer_begin(self, scope_sql: bytes) -> bool:
        """Begin a transaction with ``scope_sql`` as its first statement, both sent with the
        transaction's next statement; False (nothing done) unless psycopg would begin with a plain
        BEGIN now (no transaction open, default characteristics)."""
        driver = self._driver
        if (self._pgconn.transaction_status != pq.TransactionStatus.IDLE or driver.autocommit
                or driver.isolation_level is not None or driver.read_only is not None
                or driver.deferrable is not None or self._pgconn.pipeline_status != 0
                or self._begin is not None):
            return False
        self._begin = [b"BEGIN", scope_sql]
        return True

    def send_waiting(self) -> None:
        """Send what waits (a deferred BEGIN, deferred writes), before something else runs; drop
        the results fetched ahead, as something else runs before them."""
        self._ahead.clear()
        if self._begin is not None or self._waiting:
            self._send_waiting()

    def commit(self) -> None:
        """Send what waits with the COMMIT, in one round trip; psycopg's own commit then finds the
        transaction closed and sends nothing. Nothing to do if nothing waits (psycopg commits).

        If a statement fails, the transaction is rolled back here before the error is raised:
        SQLAlchemy counts a commit that raised as the transaction's end, and returns the
        connection to its pool without a rollback."""
        self._ahead.clear()
        if not self._waiting:
            if self._begin is not None:
                self._begin = None  # a transaction that ran nothing: there is nothing to begin or end
            return
        try:
            self._send_waiting(b"COMMIT")
        except pg_errors.Error:
            if self._pgconn.transaction_status == pq.TransactionStatus.INERROR:
                self._pgconn.exec_(b"ROLLBACK")
            raise

    def discard(self) -> None:
        """Drop what was not sent: the transaction rolls back (a PREPARE not sent is forgotten)."""
        self._ahead.clear()
        self._begin = None
        for item in self._waiting:
            if item[0] is None:
                del self._prepared[item[2], item[3]]
        self._waiting.clear()

    def _send_waiting(self, last: bytes | None = None) -> list[Any]:
        """Send the deferred BEGIN and what waits, then ``last``, in one pipeline; return the
        result of each statement sent, in order (all succeeded, or this raised)."""
        pgconn = self._pgconn
        begin, waiting = self._begin, self._waiting
        self._begin, self._waiting = None, []
        # One entry per statement sent, in order: the prepared statement's key for a PREPARE (to
        # forget it if it did not happen), else None.
        sent: list[tuple[bytes, tuple[int, ...]] | None] = []
        pgconn.enter_pipeline_mode()
        try:
            for sql in begin or ():
                pgconn.send_query_params(sql, None)
                sent.append(None)
            for item in waiting:
                if item[0] is None:
                    _, name, sql, types = item
                    pgconn.send_prepare(name, sql, types)
                    sent.append((sql, types))
                else:
                    pgconn.send_query_prepared(*item)
                    sent.append(None)
            if last is not None:
                pgconn.send_query_params(last, None)
                sent.append(None)
            pgconn.pipeline_sync()
            DirectConnection.round_trips += 1
            failure, results = self._read_until_sync(sent)
        finally:
            if pgconn.pipeline_status != 0:
                pgconn.exit_pipeline_mode()
        if failure is not None:
            raise pg_errors.error_from_result(failure, encoding=self._driver.info.encoding)
        return results

    def _read_until_sync(self, sent: list[tuple[bytes, tuple[int, ...]] | None]) -> tuple[Any, list[Any]]:
        """The pipeline's results up to its sync: (the first failure or None, every statement's
        result in order). Once a statement fails the rest are skipped; a PREPARE that did not happen
        is forgotten, so its statement is prepared again at its next use."""
        pgconn = self._pgconn
        failure = None
        results: list[Any] = []
        index = 0
        while True:
            while pgconn.is_busy():
                self._wait_readable()
                pgconn.consume_input()
            result = pgconn.get_result()
            if result is None:
                continue  # the end of one statement's results
            status = result.status
            if status == _SYNC:
                return failure, results
            results.append(result)
            if status not in _OK:
                if failure is None and status != _ABORTED:
                    failure = result
                prepared = sent[index]
                if prepared is not None:
                    del self._prepared[prepared]
            index += 1

    def _wait_readable(self) -> None:
        poll = self._poll
        if poll is None:
            poll = self._poll = select.poll()
            poll.register(self._pgconn.socket, select.POLLIN)
        poll.poll()  # releases the GIL while it waits

    def _check(self, result: Any) -> None:
        if result.status not in _OK:
            raise pg_errors.error_from_result(result, encoding=self._driver.info.encoding)


__all__ = ["DirectConnection"]
