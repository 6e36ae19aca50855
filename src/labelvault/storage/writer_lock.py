"""One writer at a time on a SQLite database file: across the threads of a process and across the
processes that open it (server workers, a CLI import beside the server).

SQLite itself lets one connection write at a time, but a connection that finds the database
locked sleeps and retries (1, 2, 5, 10 ... 100 ms: SQLite's busy handler), so writers that
queue on SQLite's lock wait in no order and much longer than the writer before them took. So our
writers queue on this lock first and take SQLite's (BEGIN IMMEDIATE) only once they hold it:

- within a process, a ``threading.Lock`` (fair enough, and woken at once);
- across processes, an exclusive ``flock`` on a file beside the database (``<database>-writer``,
  as SQLite keeps ``-wal`` and ``-shm``). The kernel wakes a process blocked on it the moment
  the holder lets go. Each hold opens the file anew: ``flock`` belongs to an open file, and a
  descriptor shared by the process's threads would let one thread's unlock end another's hold.

A writer outside LabelVault (the ``sqlite3`` shell) does not know this lock; SQLite's own lock
and busy handler still keep it safe, only slower.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from pathlib import Path

_MAX_POLL_PAUSE = 0.002  # seconds between tries of a thread waiting for another process


class WriterLock:
    """The database's writer lock (see the module's docstring). ``path`` None (an in-memory
    database, which no other process can open): the threads of this process only."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._threads = threading.Lock()
        self._held: int | None = None  # the descriptor whose flock this process holds

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """As ``threading.Lock.acquire``: True once held, False if not within ``timeout`` seconds
        (-1: no limit) or, not ``blocking``, at once. A thread that waits for another process
        polls (threads are not the hot path; ``wait_for_other_process`` is)."""
        give_up_at = None if timeout < 0 else time.monotonic() + timeout
        if not self._threads.acquire(blocking, timeout):
            return False
        if self.path is None:
            return True
        pause = 0.0001
        while (descriptor := self._try_file()) is None:
            left = None if give_up_at is None else give_up_at - time.monotonic()
            if not blocking or (left is not None and left <= 0):
                self._threads.release()
                return False
            time.sleep(pause if left is None else min(pause, left))
            pause = min(pause * 2, _MAX_POLL_PAUSE)
        self._held = descriptor
        return True

    def release(self) -> None:
        descriptor, self._held = self._held, None
        if descriptor is not None:
            os.close(descriptor)  # closing the file ends its flock
        self._threads.release()

    def locked(self) -> bool:
        """Held by a thread of this process (another process's hold is not seen here)."""
        return self._threads.locked()

    def try_acquire(self) -> bool | None:
        """One try, never waiting: True if now held; False if a thread of this process holds it;
        None if another process does (``wait_for_other_process`` then waits without polling)."""
        if not self._threads.acquire(blocking=False):
            return False
        if self.path is None:
            return True
        descriptor = self._try_file()
        if descriptor is None:
            self._threads.release()
            return None
        self._held = descriptor
        return True

    def wait_for_other_process(self) -> int | None:
        """Block until no other process holds the file lock; return a descriptor holding it, for
        ``adopt`` (None without a file). Blocks a whole thread with no time limit: run it in a
        thread of its own, and ``abandon`` the descriptor if nobody wants it any more."""
        if self.path is None:
            return None
        descriptor = self._open()
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX)
        except BaseException:
            os.close(descriptor)
            raise
        return descriptor

    def adopt(self, descriptor: int | None) -> bool:
        """Take the lock with the file lock ``wait_for_other_process`` got: True if now held;
        False (the file lock let go) if a thread of this process holds the lock meanwhile."""
        if not self._threads.acquire(blocking=False):
            self.abandon(descriptor)
            return False
        self._held = descriptor
        return True

    @staticmethod
    def abandon(descriptor: int | None) -> None:
        if descriptor is not None:
            os.close(descriptor)

    def _open(self) -> int:
        assert self.path is not None
        return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def _try_file(self) -> int | None:
        descriptor = self._open()
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            return None
        except BaseException:
            os.close(descriptor)
            raise
        return descriptor


def lock_file_of(database: str | None) -> Path | None:
    """Where the writer lock of a SQLite database lives; None for an in-memory database."""
    if not database or database == ":memory:" or database.startswith("file::memory:"):
        return None
    return Path(f"{database}-writer")
