"""Group commit for the queue steps of a SQLite server: one commit, one fsync, for the steps that
arrive together.

A SQLite database has one writer at a time, and with ``synchronous=FULL`` (the default: an
acknowledged answer survives a power loss) every commit waits for the disk; on the event loop,
where the queue steps run (see ``deps.run_queue_step``), that wait held up every other request.
Here the steps an event loop runs back to back share one transaction (``WriteBatch``): the first
opens it, each runs in savepoints of its own (its failure rolls back only its writes), and the
batch commits once the loop has run every step that was ready: at its next turn, or after
``MAX_STEPS``. No step answers before the commit that makes it durable; if that commit fails,
every step of the batch fails with it, and none was reported done.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
import weakref
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from labelvault.errors import DatabaseBusy

T = TypeVar("T")


class WriteBatch(Protocol):
    """``storage.unit_of_work.WriteBatch``, as far as this module uses it (interfaces do not import storage)."""

    steps: int

    def run(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T: ...

    def commit(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    """``storage.unit_of_work.UnitOfWorkFactory``, as far as this module uses it."""

    write_lock_timeout: float

    def can_write_at_once(self) -> bool: ...

    def begin_batch(self) -> WriteBatch: ...

MAX_STEPS = 32  # steps per batch at most: its first step answers no later than its 32nd runs


class NoBatchNow(Exception):
    """No batch could start at once (another process is writing): nothing ran; run the step elsewhere."""


class GroupCommit:
    """The write batch of one event loop and one database (see the module's docstring)."""

    def __init__(self, factory: UnitOfWorkFactory, loop: asyncio.AbstractEventLoop) -> None:
        self._factory = factory
        self._loop = loop
        self._batch: WriteBatch | None = None  # the batch steps join now
        self._waiting: list[asyncio.Future[None]] = []  # one per step of that batch: done when it is committed
        self._commit_handle: asyncio.Handle | None = None
        self._committing: asyncio.Future[None] | None = None  # done when the batch being committed is
        # The commit of several steps (the disk's fsync: about 1 ms, a quarter of the loop's time
        # under load when it ran on the loop) runs in a thread of its own while the loop serves
        # requests; a lone step's commits on the loop, which costs less than the hand-over.
        self._committer = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="labelvault-commit")

    @classmethod
    def of(cls, factory: UnitOfWorkFactory) -> GroupCommit:
        """The running loop's group commit for ``factory`` (made on first use)."""
        loop = asyncio.get_running_loop()
        per_loop = _group_commits.get(factory)
        if per_loop is None:
            per_loop = _group_commits[factory] = weakref.WeakKeyDictionary()
        group = per_loop.get(loop)
        if group is None:
            group = per_loop[loop] = cls(factory, loop)
        return group

    async def run(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``function`` in the loop's batch; return (or raise) once the batch has committed.

        Before running anything, raises ``DatabaseBusy`` when another writer of this process held
        the lock for the unit of work's whole timeout, and ``NoBatchNow`` when another process is
        writing now (the caller may then run the step elsewhere, where it can wait)."""
        factory = self._factory
        pause, give_up_at = 0.0002, time.monotonic() + factory.write_lock_timeout
        while self._batch is None:
            if self._committing is not None:
                # The batch before is being committed (it holds the write lock): the next one
                # starts when it is done, with every step that arrived meanwhile.
                await asyncio.wait([self._committing])
            elif factory.can_write_at_once():
                try:
                    self._open()
                except DatabaseBusy:
                    raise NoBatchNow() from None
            else:
                # Another writer of this process (an import, a background thread) holds the lock:
                # wait without blocking the loop, polling with a growing pause, as long as a unit
                # of work would wait for it.
                if time.monotonic() >= give_up_at:
                    raise DatabaseBusy("the database is busy; try again")
                await asyncio.sleep(pause)
                pause = min(pause * 2, 0.005)
        batch = self._batch
        # A future of this step's own: a request whose client goes away cancels it, not the commit.
        committed: asyncio.Future[None] = self._loop.create_future()
        self._waiting.append(committed)
        failure: BaseException | None = None
        result: Any = None
        try:
            result = batch.run(function, *args, **kwargs)
        except Exception as error:  # its savepoints are rolled back; it fails after the commit
            failure = error
        if batch.steps >= MAX_STEPS:
            self._commit()
        await committed
        if failure is not None:
            raise failure
        return result  # type: ignore[no-any-return]

    def _open(self) -> None:
        self._batch = self._factory.begin_batch()
        # call_soon: after every callback ready now, i.e. after the steps of the requests that
        # arrived together, each of which joins this batch first.
        self._commit_handle = self._loop.call_soon(self._commit)

    def _commit(self) -> None:
        batch, waiting, handle = self._batch, self._waiting, self._commit_handle
        self._batch, self._waiting, self._commit_handle = None, [], None
        if batch is None:
            return
        if handle is not None:
            handle.cancel()  # committed early (MAX_STEPS): the scheduled commit has nothing to do
        if batch.steps == 1:
            commit: concurrent.futures.Future[None] = concurrent.futures.Future()
            try:
                batch.commit()
            except BaseException as error:
                commit.set_exception(error)
            else:
                commit.set_result(None)
            self._settle(waiting, commit)
            return
        self._committing = self._loop.create_future()
        loop = self._loop

        def finished(commit: concurrent.futures.Future[None]) -> None:  # in the committing thread
            loop.call_soon_threadsafe(self._settle, waiting, commit)

        self._committer.submit(batch.commit).add_done_callback(finished)

    def _settle(self, waiting: list[asyncio.Future[None]], commit: concurrent.futures.Future[None]) -> None:
        if self._committing is not None:
            self._committing.set_result(None)
            self._committing = None
        error = commit.exception()
        for committed in waiting:
            if committed.cancelled():
                continue  # its request went away; its step was committed (or failed) all the same
            if error is not None:
                committed.set_exception(error)
            else:
                committed.set_result(None)


_group_commits: weakref.WeakKeyDictionary[
    UnitOfWorkFactory, weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, GroupCommit]
] = weakref.WeakKeyDictionary()
