"""Group commit on SQLite: write batches (storage) and the event loop's group commit (API).

Units of work inside a batch are savepoints of its one transaction; nothing is written before the
batch commits, a failing step loses only its own writes, and a batch whose transaction the database
dropped fails its commit instead of pretending."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import bindparam, event, update
from sqlalchemy.exc import OperationalError

from labelvault.api import group_commit
from labelvault.api.group_commit import GroupCommit
from labelvault.audit import log as audit_log
from labelvault.domain.access import Actor
from labelvault.errors import DatabaseBusy, InvalidInput, WriteLost
from labelvault.storage.models import Project, Task
from labelvault.storage.scope import scoped
from tests.conftest import World
from tests.event_loops import run_on_a_new_loop
from tests.integration.queue_helpers import make_labelers, make_project
from tests.integration.test_writer_lock import held_by_another_process

SCHEMA = {"fields": [{"name": "text", "kind": "text"}], "questions": [{"name": "q", "type": "text"}]}
_RENAME = scoped(
    update(Project.__table__).where(Project.__table__.c.id == bindparam("project_id")).values(name=bindparam("name"))
)


class Failed(Exception):
    pass


@pytest.fixture
def projects(world: World) -> list[int]:
    if not world.services.uow_factory.serialize_writers:
        pytest.skip("write batches are SQLite's (PostgreSQL runs writers side by side)")
    service = world.services.projects
    return [
        service.create(world.operator, world.client_a, slug=f"p{i}", name=f"P{i}", schema=SCHEMA).id for i in range(3)
    ]


@pytest.fixture
def other_connection(world: World) -> Iterator[sqlite3.Connection]:
    """Another connection to the same file: sees only what is committed."""
    path = world.services.engine.url.database or ""
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)  # read from the loop's thread too
    yield connection
    connection.close()


def names(connection: sqlite3.Connection, project_ids: list[int]) -> list[str]:
    rows = dict(connection.execute("SELECT id, name FROM projects").fetchall())
    return [rows[i] for i in project_ids]


def rename(world: World, project_id: int, name: str, *, then_fail: bool = False) -> str:
    with world.services.uow_factory.for_client(world.client_a, write=True) as uow:
        uow.sql.run(_RENAME, {"project_id": project_id, "name": name})
        if then_fail:
            raise Failed(name)
        uow.commit()
    return name


def name_seen_inside(world: World, project_id: int) -> str:
    with world.services.uow_factory.for_client(world.client_a) as uow:
        project = uow.projects.get(project_id)
        assert project is not None
        return project.name


def test_units_of_work_of_a_batch_are_written_together_by_its_commit(
    world: World, projects: list[int], other_connection: sqlite3.Connection
) -> None:
    factory = world.services.uow_factory
    batch = factory.begin_batch()
    assert not factory.can_write_at_once()  # the batch holds the writer lock
    assert batch.run(rename, world, projects[0], "first") == "first"
    assert batch.run(rename, world, projects[1], "second") == "second"
    assert batch.run(name_seen_inside, world, projects[0]) == "first"  # later steps see earlier ones
    assert names(other_connection, projects) == ["P0", "P1", "P2"]  # nothing written yet
    batch.commit()
    assert names(other_connection, projects) == ["first", "second", "P2"]
    assert factory.can_write_at_once()
    with pytest.raises(RuntimeError, match="committed or rolled back"):
        batch.run(rename, world, projects[2], "late")


def test_a_failing_step_loses_only_its_own_writes(
    world: World, projects: list[int], other_connection: sqlite3.Connection
) -> None:
    batch = world.services.uow_factory.begin_batch()
    batch.run(rename, world, projects[0], "kept")
    with pytest.raises(Failed):
        batch.run(rename, world, projects[1], "lost", then_fail=True)
    batch.run(rename, world, projects[2], "kept too")
    batch.commit()
    assert names(other_connection, projects) == ["kept", "P1", "kept too"]


def test_a_rolled_back_batch_writes_nothing(
    world: World, projects: list[int], other_connection: sqlite3.Connection
) -> None:
    factory = world.services.uow_factory
    batch = factory.begin_batch()
    batch.run(rename, world, projects[0], "never")
    batch.rollback()
    assert names(other_connection, projects) == ["P0", "P1", "P2"]
    assert factory.can_write_at_once()


def rename_twice(world: World, project_id: int, other_id: int, name: str, *, then_fail: bool = False) -> None:
    """One project renamed by a prepared statement, another through the ORM session (which a unit
    of work of a batch makes only on first use), in one unit of work."""
    with world.services.uow_factory.for_client(world.client_a, write=True) as uow:
        uow.sql.run(_RENAME, {"project_id": project_id, "name": name})
        project = uow.projects.get(other_id)
        assert project is not None
        project.name = name + " (orm)"
        uow.flush()
        if then_fail:
            raise Failed(name)
        uow.commit()


def test_prepared_and_orm_writes_of_a_step_are_kept_or_lost_together(
    world: World, projects: list[int], other_connection: sqlite3.Connection
) -> None:
    batch = world.services.uow_factory.begin_batch()
    with pytest.raises(Failed):
        batch.run(rename_twice, world, projects[0], projects[1], "lost", then_fail=True)
    batch.run(rename_twice, world, projects[1], projects[2], "kept")
    batch.commit()
    assert names(other_connection, projects) == ["P0", "kept", "kept (orm)"]


def rename_then_more(world: World, project_id: int, other_id: int) -> None:
    with world.services.uow_factory.for_client(world.client_a, write=True) as uow:
        uow.sql.run(_RENAME, {"project_id": project_id, "name": "committed"})
        uow.commit()
        uow.sql.run(_RENAME, {"project_id": other_id, "name": "after the commit, never committed"})


def test_what_a_step_writes_after_its_commit_is_rolled_back_when_it_leaves(
    world: World, projects: list[int], other_connection: sqlite3.Connection
) -> None:
    """As outside a batch: leaving a unit of work rolls back what was not committed."""
    batch = world.services.uow_factory.begin_batch()
    batch.run(rename_then_more, world, projects[0], projects[1])
    batch.run(rename, world, projects[2], "next step")
    batch.commit()
    assert names(other_connection, projects) == ["committed", "P1", "next step"]


def commit_twice_then_more(world: World, first: int, second: int, third: int) -> None:
    with world.services.uow_factory.for_client(world.client_a, write=True) as uow:
        uow.sql.run(_RENAME, {"project_id": first, "name": "first commit"})
        uow.commit()
        uow.sql.run(_RENAME, {"project_id": second, "name": "second commit"})
        uow.commit()
        uow.sql.run(_RENAME, {"project_id": third, "name": "never committed"})


def commit_then_orm_and_prepared(world: World, project_id: int, other_id: int, *, orm_before: bool) -> None:
    """After its commit, the step first opens its ORM session (or had it open already), then writes
    through the session and the prepared path, and leaves without committing again."""
    with world.services.uow_factory.for_client(world.client_a, write=True) as uow:
        if orm_before:
            assert uow.projects.get(other_id) is not None  # the session exists before the commit
        uow.sql.run(_RENAME, {"project_id": project_id, "name": "committed"})
        uow.commit()
        project = uow.projects.get(other_id)
        assert project is not None
        project.name = "orm, after the commit"
        uow.flush()
        uow.sql.run(_RENAME, {"project_id": project_id, "name": "prepared, after the commit"})


def test_a_step_that_commits_twice_keeps_both_and_loses_what_came_after(
    world: World, projects: list[int], other_connection: sqlite3.Connection
) -> None:
    batch = world.services.uow_factory.begin_batch()
    batch.run(commit_twice_then_more, world, *projects)
    batch.commit()
    assert names(other_connection, projects) == ["first commit", "second commit", "P2"]


@pytest.mark.parametrize("orm_before", [False, True], ids=["session-made-after-commit", "session-open-at-commit"])
def test_orm_and_prepared_writes_after_a_commit_are_rolled_back_together(
    world: World, projects: list[int], other_connection: sqlite3.Connection, orm_before: bool
) -> None:
    batch = world.services.uow_factory.begin_batch()
    batch.run(commit_then_orm_and_prepared, world, projects[0], projects[1], orm_before=orm_before)
    batch.run(rename, world, projects[2], "next step")
    batch.commit()
    assert names(other_connection, projects) == ["committed", "P1", "next step"]


_REPRIORITIZE = scoped(update(Task.__table__).values(priority=Task.__table__.c.priority + 1))


def bytes_written_by_this_process() -> int:
    """What this process has handed to write calls so far (/proc/self/io's wchar)."""
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    raise AssertionError("no wchar in /proc/self/io")


def test_a_step_that_changes_many_pages_writes_nothing_before_the_commit(world: World, projects: list[int]) -> None:
    """A step's savepoint keeps the pages it changes as they were, to roll back to: in memory, not
    in a temporary file (each of those writes cost a system call; they were most of a queue step's)."""
    make_project(world, "many-pages", tasks=2000)
    batch = world.services.uow_factory.begin_batch()
    written: list[int] = []

    def reprioritize() -> None:
        before = bytes_written_by_this_process()
        with world.services.uow_factory.for_client(world.client_a, write=True) as uow:
            assert uow.sql.run(_REPRIORITIZE).rowcount == 2000  # every task's row and queue entry
            uow.commit()
        written.append(bytes_written_by_this_process() - before)

    batch.run(reprioritize)
    batch.commit()
    assert written[0] < 64 * 1024, f"{written[0]} bytes written by one step before its batch's commit"


def drop_the_transaction(world: World) -> None:
    """What SQLite does by itself on some errors (disk full, I/O error): the whole transaction goes."""
    with world.services.uow_factory.for_client(world.client_a, write=True) as uow:
        uow.session.connection().connection.driver_connection.execute("ROLLBACK")  # type: ignore[union-attr]


def test_a_batch_whose_transaction_the_database_dropped_fails_to_commit_and_writes_nothing(
    world: World, projects: list[int], other_connection: sqlite3.Connection
) -> None:
    factory = world.services.uow_factory
    batch = factory.begin_batch()
    batch.run(rename, world, projects[0], "acknowledged too early?")
    with pytest.raises(OperationalError, match="no such savepoint"):  # leaving its unit of work
        batch.run(drop_the_transaction, world)
    with pytest.raises(WriteLost, match="nothing of them was written"):
        batch.commit()
    assert names(other_connection, projects) == ["P0", "P1", "P2"]
    assert factory.can_write_at_once()


def test_no_batch_starts_while_another_process_writes(world: World, projects: list[int]) -> None:
    factory = world.services.uow_factory
    other = sqlite3.connect(world.services.engine.url.database or "", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(DatabaseBusy, match="another process"):
            factory.begin_batch()
        assert factory.can_write_at_once()  # the refused batch let go of the writer lock
    finally:
        other.execute("ROLLBACK")
        other.close()
    factory.begin_batch().rollback()


def test_a_batch_after_a_rolled_back_a_dropped_and_a_refused_one_writes_and_commits_alone(
    world: World, projects: list[int], other_connection: sqlite3.Connection
) -> None:
    """Batches take turns on one connection: however the one before ended, the next one starts clean."""
    factory = world.services.uow_factory
    rolled_back = factory.begin_batch()
    rolled_back.run(rename, world, projects[0], "rolled back")
    rolled_back.rollback()
    dropped = factory.begin_batch()
    dropped.run(rename, world, projects[1], "dropped")
    with pytest.raises(OperationalError, match="no such savepoint"):
        dropped.run(drop_the_transaction, world)
    with pytest.raises(WriteLost):
        dropped.commit()
    other_connection.execute("BEGIN IMMEDIATE")
    with pytest.raises(DatabaseBusy):
        factory.begin_batch()
    other_connection.execute("ROLLBACK")

    batch = factory.begin_batch()
    assert batch.run(name_seen_inside, world, projects[0]) == "P0"
    batch.run(rename, world, projects[2], "written")
    batch.commit()
    assert names(other_connection, projects) == ["P0", "P1", "written"]


def open_files_of(database: str) -> list[str]:
    """The files of this SQLite database (itself, its WAL) that this process holds open."""
    found = []
    for descriptor in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(descriptor)
        except OSError:  # closed meanwhile (the listing's own descriptor)
            continue
        if target in (database, f"{database}-wal"):
            found.append(target)
    return found


def test_closing_the_services_closes_the_connection_kept_between_batches(
    world: World, projects: list[int]
) -> None:
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("open files are read from /proc (Linux)")
    database = str(Path(world.services.engine.url.database or "").resolve())
    batch = world.services.uow_factory.begin_batch()
    batch.run(rename, world, projects[0], "written")
    batch.commit()
    assert open_files_of(database)
    world.services.close()
    assert open_files_of(database) == []


# The event loop's group commit -------------------------------------------------------------------


def count_commits(world: World) -> list[int]:
    commits: list[int] = []
    event.listen(world.services.engine, "commit", lambda _connection: commits.append(1))
    return commits


def run_together(world: World, steps: list[Callable[[], Any]]) -> list[Any]:
    """Start every step on one event loop at once (as requests that arrived together)."""

    async def main() -> list[Any]:
        group = GroupCommit.of(world.services.uow_factory)
        return await asyncio.gather(*(group.run(step) for step in steps), return_exceptions=True)

    return run_on_a_new_loop(main)[0]


def test_steps_that_arrive_together_share_one_commit_and_answer_after_it(
    world: World, projects: list[int], other_connection: sqlite3.Connection
) -> None:
    commits = count_commits(world)
    seen_when_answered: list[list[str]] = []

    async def main() -> None:
        group = GroupCommit.of(world.services.uow_factory)

        async def step(index: int) -> None:
            await group.run(rename, world, projects[index], f"renamed {index}")
            seen_when_answered.append(names(other_connection, projects))

        await asyncio.gather(*(step(i) for i in range(3)))

    run_on_a_new_loop(main)
    assert len(commits) == 1
    # Each step answered only once its write was committed, and so were the others'.
    assert seen_when_answered == [["renamed 0", "renamed 1", "renamed 2"]] * 3


def test_a_failing_step_fails_alone_and_the_others_are_committed(
    world: World, projects: list[int], other_connection: sqlite3.Connection
) -> None:
    results = run_together(world, [
        lambda: rename(world, projects[0], "one"),
        lambda: rename(world, projects[1], "two", then_fail=True),
        lambda: rename(world, projects[2], "three"),
    ])
    assert results[0] == "one" and results[2] == "three"
    assert isinstance(results[1], Failed)
    assert names(other_connection, projects) == ["one", "P1", "three"]


def test_when_the_batch_cannot_commit_every_step_of_it_fails(
    world: World, projects: list[int], other_connection: sqlite3.Connection
) -> None:
    results = run_together(world, [
        lambda: rename(world, projects[0], "one"),
        lambda: drop_the_transaction(world),
        lambda: rename(world, projects[2], "three"),
    ])
    assert isinstance(results[0], WriteLost) and isinstance(results[2], WriteLost)
    assert names(other_connection, projects) == ["P0", "P1", "P2"]
    assert run_together(world, [lambda: rename(world, projects[0], "again")]) == ["again"]  # the next batch works


def test_a_batch_commits_after_its_largest_number_of_steps(
    world: World, projects: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(group_commit, "MAX_STEPS", 4)
    commits = count_commits(world)
    results = run_together(world, [lambda i=i: rename(world, projects[i % 3], f"n{i}") for i in range(10)])
    assert results == [f"n{i}" for i in range(10)]
    assert len(commits) == 3  # 4 + 4 + 2


def test_a_step_whose_caller_went_away_is_committed_with_the_others(
    world: World, projects: list[int], other_connection: sqlite3.Connection
) -> None:
    async def main() -> str:
        group = GroupCommit.of(world.services.uow_factory)
        abandoned = asyncio.ensure_future(group.run(rename, world, projects[0], "abandoned"))
        kept = asyncio.ensure_future(group.run(rename, world, projects[1], "kept"))
        await asyncio.sleep(0)  # both steps run and wait for the commit
        abandoned.cancel()  # the client disconnected
        return await kept

    assert run_on_a_new_loop(main)[0] == "kept"
    assert names(other_connection, projects) == ["abandoned", "kept", "P2"]


def test_steps_wait_for_another_writer_of_the_process_and_then_run(world: World, projects: list[int]) -> None:
    factory = world.services.uow_factory
    held, order = threading.Event(), []

    def other_writer() -> None:  # an import in a thread: holds the writer lock
        with factory.for_client(world.client_a, write=True) as uow:
            held.set()
            uow.sql.run(_RENAME, {"project_id": projects[2], "name": "by the import"})
            threading.Event().wait(0.3)
            order.append("import committed")
            uow.commit()

    async def main() -> None:
        thread = threading.Thread(target=other_writer)
        thread.start()
        await asyncio.to_thread(held.wait)
        group = GroupCommit.of(factory)
        order.append(await group.run(lambda: name_seen_inside(world, projects[2])))
        await asyncio.to_thread(thread.join)

    run_on_a_new_loop(main)
    assert order == ["import committed", "by the import"]



def test_steps_wait_for_another_process_in_a_thread_while_the_loop_runs_on(
    world: World, projects: list[int], other_connection: sqlite3.Connection
) -> None:
    """A second server process on the same file (``serve --workers 2``) holds the writer lock: the
    steps wait for it without blocking the loop, and run together in one batch once it lets go."""
    factory = world.services.uow_factory
    with held_by_another_process(factory.write_lock.path) as other:

        async def main() -> tuple[list[str], int]:
            group = GroupCommit.of(factory)
            steps = [asyncio.ensure_future(group.run(rename, world, projects[i], f"after {i}")) for i in range(3)]
            ticks = 0
            while ticks < 20:  # the loop keeps turning while the steps wait
                await asyncio.sleep(0.01)
                ticks += 1
            assert not any(step.done() for step in steps)
            assert names(other_connection, projects) == ["P0", "P1", "P2"]
            await asyncio.to_thread(other.release)
            return list(await asyncio.gather(*steps)), ticks

        commits = count_commits(world)
        results, ticks = run_on_a_new_loop(main)[0]
    assert results == ["after 0", "after 1", "after 2"]
    assert ticks == 20
    assert len(commits) == 1  # the steps that waited share one batch
    assert names(other_connection, projects) == ["after 0", "after 1", "after 2"]


def test_a_step_gives_up_busy_when_another_process_writes_too_long(
    world: World, projects: list[int], other_connection: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    factory = world.services.uow_factory
    monkeypatch.setattr(factory, "write_lock_timeout", 0.3)
    with held_by_another_process(factory.write_lock.path) as other:
        refused = run_together(world, [lambda: rename(world, projects[0], "too late")])[0]
        assert isinstance(refused, DatabaseBusy) and "busy" in str(refused)
        other.release()
        # The thread that still waited for the file let go of what it got: the next step runs.
        assert run_together(world, [lambda: rename(world, projects[0], "next")]) == ["next"]
    assert names(other_connection, projects)[0] == "next"


def record(world: World, object_id: str, *, then_fail: bool = False) -> None:
    with world.services.uow_factory.for_client(world.client_a, write=True) as uow:
        audit_log.append(uow, "test.batched", actor=None, client_id=world.client_a, object_kind="test",
                         object_id=object_id)
        if then_fail:
            raise Failed(object_id)
        uow.commit()


def test_audit_entries_of_a_batch_share_one_head_and_a_rolled_back_one_leaves_no_gap(
    world: World, projects: list[int]
) -> None:
    """The batch keeps the log's head in its memo: read once, written once, at its commit; a unit
    of work that rolls back its entry puts the memo back as it found it, so the next entry takes
    its place, not a gap."""
    services = world.services
    head_statements: list[str] = []

    def count_head_statements(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "audit_head" in statement:
            head_statements.append(statement.lstrip().split(None, 1)[0].upper())

    event.listen(services.engine, "before_cursor_execute", count_head_statements)
    try:
        batch = services.uow_factory.begin_batch()
        batch.run(record, world, "first")
        batch.run(record, world, "second")
        with pytest.raises(Failed):
            batch.run(record, world, "rolled back", then_fail=True)
        batch.run(record, world, "third")
        assert head_statements == ["SELECT"]  # nothing written before the commit
        batch.commit()
    finally:
        event.remove(services.engine, "before_cursor_execute", count_head_statements)
    assert head_statements == ["SELECT", "UPDATE"]
    entries = [line for line in services.audit.trail(world.client_a) if b"test.batched" in line]
    assert [orjson.loads(line)["object_id"] for line in entries] == ["first", "second", "third"]
    assert services.audit.verify().ok  # contiguous, every running root right


def test_a_batch_whose_every_entry_rolled_back_leaves_the_head_as_it_was(world: World, projects: list[int]) -> None:
    services = world.services
    services.audit.record("test.before", actor=None)  # a head to leave alone
    before = services.audit.verify()
    batch = services.uow_factory.begin_batch()
    for name in ("lost", "lost too"):
        with pytest.raises(Failed):
            batch.run(record, world, name, then_fail=True)
    batch.commit()
    assert services.audit.verify().size == before.size
    batch = services.uow_factory.begin_batch()
    batch.run(record, world, "after")
    batch.commit()
    after = services.audit.verify()
    assert after.ok and after.size == before.size + 1
    entries = [orjson.loads(line) for line in services.audit.trail(world.client_a) if b"test.batched" in line]
    assert [(entry["object_id"], entry["seq"]) for entry in entries] == [("after", before.size)]


def test_the_answers_of_a_batch_take_their_ids_from_one_read_and_a_refused_submit_leaves_no_gap(
    world: World, projects: list[int]
) -> None:
    """Nothing else writes while a batch is open: the answers' largest id is read once and counted
    on; a submit that is refused rolls its step back, memo included, so its id goes to the next."""
    services = world.services
    project_id = make_project(world, "answer-ids", tasks=3, overlap=1)
    labelers = make_labelers(world, 3)
    leased = [services.labeling.next_task(actor, world.client_a, project_id) for actor in labelers]
    id_reads: list[str] = []

    def count_id_reads(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "max(answers.id)" in statement:
            id_reads.append(statement)

    def submit(actor: Actor, task_id: int, label: str) -> int:
        return services.labeling.submit(actor, world.client_a, project_id, task_id, {"sentiment": label}).answer_id

    event.listen(services.engine, "before_cursor_execute", count_id_reads)
    try:
        batch = services.uow_factory.begin_batch()
        first = batch.run(submit, labelers[0], leased[0].task_id, "positive")
        with pytest.raises(InvalidInput, match="sentiment"):
            batch.run(submit, labelers[1], leased[1].task_id, "not a label")
        second = batch.run(submit, labelers[1], leased[1].task_id, "negative")
        third = batch.run(submit, labelers[2], leased[2].task_id, "positive")
        batch.commit()
    finally:
        event.remove(services.engine, "before_cursor_execute", count_id_reads)
    assert len(id_reads) == 1
    assert [second, third] == [first + 1, first + 2]
    stored = services.answers.page(world.operator, world.client_a, project_id).items
    # Each value opens: it was sealed bound to the id its row has.
    assert {(a.id, a.value["sentiment"]) for a in stored} == {
        (first, "positive"), (second, "negative"), (third, "positive")}
