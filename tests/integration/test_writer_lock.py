"""The writer lock of a SQLite database: one writer at a time across threads and processes.

The other process is a real one (a Python child that takes the same lock file), not a thread
pretending: ``flock`` belongs to an open file, and only another process shows that a hold of ours
is seen there and that the kernel hands the lock over when that process lets go."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from labelvault.storage.writer_lock import WriterLock, lock_file_of

HOLDER = """
import sys
from pathlib import Path
from labelvault.storage.writer_lock import WriterLock
lock = WriterLock(Path(sys.argv[1]))
if not lock.acquire(timeout=30):
    sys.exit("could not take the lock")
print("held", flush=True)
sys.stdin.readline()  # until the test says so
lock.release()
print("released", flush=True)
sys.stdin.readline()
"""


class OtherProcess:
    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process

    def release(self) -> None:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("\n")
        self.process.stdin.flush()
        assert self.process.stdout.readline().strip() == "released"


@contextmanager
def held_by_another_process(path: Path) -> Iterator[OtherProcess]:
    process = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "held"
        yield OtherProcess(process)
    finally:
        process.kill()
        process.wait(timeout=10)


def test_a_hold_in_another_process_is_seen_and_nobody_here_is_left_holding(tmp_path: Path) -> None:
    lock = WriterLock(tmp_path / "db.sqlite-writer")
    with held_by_another_process(lock.path) as other:  # type: ignore[arg-type]
        assert lock.try_acquire() is None  # another process: not a writer of ours
        started = time.monotonic()
        assert lock.acquire(timeout=0.2) is False
        assert time.monotonic() - started >= 0.2
        assert not lock.locked()  # the failed tries let go of the threads' lock
        other.release()
        assert lock.acquire(timeout=5) is True
        lock.release()


def test_a_hold_here_keeps_another_process_out_until_released(tmp_path: Path) -> None:
    lock = WriterLock(tmp_path / "db.sqlite-writer")
    assert lock.try_acquire() is True
    taker = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock.path)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.3)
        assert taker.poll() is None  # still waiting for us
        lock.release()
        assert taker.stdout is not None and taker.stdout.readline().strip() == "held"
    finally:
        taker.kill()
        taker.wait(timeout=10)


def test_a_thread_blocked_on_the_file_gets_the_lock_when_the_other_process_lets_go(tmp_path: Path) -> None:
    lock = WriterLock(tmp_path / "db.sqlite-writer")
    with held_by_another_process(lock.path) as other:  # type: ignore[arg-type]
        got: list[int | None] = []
        waiter = threading.Thread(target=lambda: got.append(lock.wait_for_other_process()))
        waiter.start()
        waiter.join(timeout=0.3)
        assert waiter.is_alive() and got == []  # blocked while the other process holds it
        other.release()
        waiter.join(timeout=10)
        assert len(got) == 1 and got[0] is not None
        assert lock.adopt(got[0]) is True
        assert lock.locked()
        lock.release()
    assert lock.try_acquire() is True
    lock.release()


def test_threads_of_one_process_take_turns(tmp_path: Path) -> None:
    lock = WriterLock(tmp_path / "db.sqlite-writer")
    assert lock.acquire(timeout=1)
    assert lock.try_acquire() is False  # a writer of this process holds it
    assert lock.acquire(blocking=False) is False
    assert WriterLock(lock.path).try_acquire() is None  # another open of the file, as another process's
    lock.release()
    assert lock.try_acquire() is True
    lock.release()


def test_a_file_lock_handed_over_while_a_thread_of_ours_waits_goes_to_that_thread(tmp_path: Path) -> None:
    lock = WriterLock(tmp_path / "db.sqlite-writer")
    elsewhere = WriterLock(lock.path)  # stands for another process: its own open of the file
    assert elsewhere.try_acquire() is True
    handed: list[int | None] = []
    waiter = threading.Thread(target=lambda: handed.append(lock.wait_for_other_process()))
    waiter.start()
    elsewhere.release()
    waiter.join(timeout=10)
    # Meanwhile a thread of ours (a background job) took the threads' lock and waits for the file.
    taken: list[bool] = []
    writer = threading.Thread(target=lambda: taken.append(lock.acquire(timeout=10)))
    writer.start()
    deadline = time.monotonic() + 10
    while not lock.locked() and time.monotonic() < deadline:
        time.sleep(0.001)
    assert lock.adopt(handed[0]) is False  # not kept twice: the file lock is let go ...
    writer.join(timeout=10)
    assert taken == [True]  # ... and the waiting thread gets it
    assert elsewhere.try_acquire() is None
    lock.release()


@pytest.mark.parametrize(("database", "expected"), [
    ("/data/labelvault.db", Path("/data/labelvault.db-writer")),
    (":memory:", None),
    ("", None),
    (None, None),
])
def test_the_lock_file_sits_beside_the_database(database: str | None, expected: Path | None) -> None:
    assert lock_file_of(database) == expected


def test_an_in_memory_database_has_only_the_threads_lock() -> None:
    lock = WriterLock(None)
    assert lock.try_acquire() is True
    assert lock.try_acquire() is False
    lock.release()
    assert lock.wait_for_other_process() is None
    assert lock.adopt(None) is True
    lock.release()
