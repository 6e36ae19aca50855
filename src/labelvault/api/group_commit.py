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

Several server processes may serve one SQLite file (``serve --workers N``): their batches take
turns through the database's writer lock (``storage/writer_lock.py``). A process that finds
another one writing waits for the lock in a thread, blocked in the kernel, while its loop goes on
reading requests; the lock is handed over the moment the other process lets go, and the batch
that opens then takes every step that arrived meanwhile. So one process's CPU is not the limit:
while one writes, the others parse, authenticate and answer.
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


class WriterLock(Protocol):
    """``storage.writer_lock.WriterLock``, as far as this module uses it."""

    def try_acquire(self) -> bool | None: ...

    def wait_for_other_process(self) -> int | None: ...

    def adopt(self, descriptor: int | None) -> bool: ...

    def abandon(self, descriptor: int | None) -> None: ...


class UnitOfWorkFactory(Protocol):
    """``storage.unit_of_work.UnitOfWorkFactory``, as far as this module uses it."""

    write_lock: WriterLock
    write_lock_timeout: float

    def begin_batch(self, *, lock_held: bool = False) -> WriteBatch: ...

# Steps per batch at most: its first step answers no later than its 64th runs. Under load every
# batch fills up; its commit (the fsync, 1.5-2.5 ms) is a tenth of its time at 64 steps, and 64
# rather than 32 gave 10% more answers per second with two server processes (docs/benchmarks.md).
MAX_STEPS = 64


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
        self._joining: list[asyncio.Future[None]] | None = None  # steps waiting for the batch a step is opening
        # Waits, blocked in the kernel, for another process to let go of the writer lock.
        self._lock_waiter = concurrent.futures.ThreadPoolExecutor(max_workers=1,
                                                                  thread_name_prefix="labelvault-lock-wait")

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

        Before running anything, raises ``DatabaseBusy`` when other writers held the database for
        the unit of work's whole timeout, and ``NoBatchNow`` when a writer that does not take our
        writer lock (another program) is writing now (the caller may then run the step elsewhere,
        where it can wait)."""
        give_up_at = time.monotonic() + self._factory.write_lock_timeout
        while self._batch is None:
            if self._committing is not None:
                # The batch before is being committed (it holds the write lock): the next one
                # starts when it is done, with every step that arrived meanwhile.
                await asyncio.wait([self._committing])
            elif self._joining is not None:
                # Another step is waiting for the lock: join the batch it opens (a future of this
                # step's own: cancelling it, when its request goes away, touches no other step).
                joined: asyncio.Future[None] = self._loop.create_future()
                self._joining.append(joined)
                await joined
            else:
                await self._open(give_up_at)
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

    async def _open(self, give_up_at: float) -> None:
        """Take the writer lock without blocking the loop, then open the batch."""
        joining: list[asyncio.Future[None]] = []
        self._joining = joining
        try:
            lock, pause = self._factory.write_lock, 0.0002
            while not (taken := lock.try_acquire()):
                if time.monotonic() >= give_up_at:
                    raise DatabaseBusy("the database is busy; try again")
                if taken is None:
                    # Another process writes: a thread of ours blocks on the lock's file, and the
                    # kernel hands it over the moment that process lets go.
                    if await self._wait_for_other_process(give_up_at):
                        break
                else:
                    # Another writer of this process (an import, a background thread): poll with a
                    # growing pause, as long as a unit of work would wait for it.
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, 0.005)
            try:
                self._batch = self._factory.begin_batch(lock_held=True)
            except DatabaseBusy:
                raise NoBatchNow() from None
        finally:
            self._joining = None
            for joined in joining:  # into the batch, or, if none opened, to try again themselves
                if not joined.done():
                    joined.set_result(None)
        # call_soon: after every callback ready now, i.e. after the steps of the requests that
        # arrived together (and those that waited for the lock), each of which joins this batch first.
        self._commit_handle = self._loop.call_soon(self._commit)

    async def _wait_for_other_process(self, give_up_at: float) -> bool:
        """True once this process holds the writer lock; False if a writer of this process took
        it meanwhile. Raises ``DatabaseBusy`` at ``give_up_at``."""
        lock = self._factory.write_lock
        waiting = self._lock_waiter.submit(lock.wait_for_other_process)
        try:
            descriptor = await asyncio.wait_for(asyncio.wrap_future(waiting), give_up_at - time.monotonic())
        except BaseException as stopped:
            # Timed out or cancelled (its request went away): the thread still waits; whatever it
            # gets later is let go at once.
            waiting.add_done_callback(
                lambda done: None if done.cancelled() or done.exception() else lock.abandon(done.result()))
            if isinstance(stopped, TimeoutError):
                raise DatabaseBusy("the database is busy; try again") from None
            raise
        return lock.adopt(descriptor)

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
