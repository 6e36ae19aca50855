"""PostgreSQL's audit sequencer: acts write their entries as pending rows in their own transaction,
and the sequencer numbers them into the Merkle log, once each, in the order they were written.

SQLite numbers every entry in the act's own transaction (one writer at a time), so these tests
run on PostgreSQL only; every other audit test runs on both, through the same public calls.
"""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import create_engine, text

from labelvault.audit.log import append, sequence_pending
from tests.conftest import World, owner_url
from tests.integration.queue_helpers import label_once, make_project


@pytest.fixture
def pg_world(world: World) -> World:
    if world.services.engine.dialect.name != "postgresql":
        pytest.skip("SQLite numbers each entry in its act's transaction: nothing is pending there")
    return world


def counts(world: World) -> tuple[int, int]:
    """(numbered entries, pending entries), seen from outside the application."""
    engine = create_engine(owner_url(world.services.settings))
    with engine.connect() as connection:
        numbered = connection.execute(text("SELECT count(*) FROM audit_entries")).scalar()
        pending = connection.execute(text("SELECT count(*) FROM audit_pending")).scalar()
    engine.dispose()
    return int(numbered or 0), int(pending or 0)


def numbered_entries(world: World) -> list[tuple[int, str, str]]:
    engine = create_engine(owner_url(world.services.settings))
    with engine.connect() as connection:
        rows = connection.execute(text("SELECT seq, action, object_id FROM audit_entries ORDER BY seq")).all()
    engine.dispose()
    return [(r[0], r[1], r[2]) for r in rows]


def test_an_acts_entry_waits_pending_then_is_numbered_after_the_log(pg_world: World) -> None:
    pg_world.services.audit.sequence()
    before, pending = counts(pg_world)
    assert pending == 0
    project_id = make_project(pg_world, "watched", tasks=2)
    label_once(pg_world, pg_world.actors["labeler_a"], project_id)
    numbered, pending = counts(pg_world)
    assert numbered == before and pending >= 3  # project created, task shown, answer submitted

    assert pg_world.services.audit.sequence() == pending
    entries = numbered_entries(pg_world)
    assert counts(pg_world) == (before + pending, 0)
    assert [seq for seq, _, _ in entries] == list(range(len(entries)))  # contiguous from 0
    actions = [action for _, action, _ in entries[before:]]
    assert actions.index("project.created") < actions.index("task.shown") < actions.index("answer.submitted")
    assert pg_world.services.audit.verify().ok


def test_a_rolled_back_act_leaves_no_pending_entry(pg_world: World) -> None:
    pg_world.services.audit.sequence()
    with pg_world.services.uow_factory.system(write=True) as uow:
        append(uow, "test.rolled_back", actor=None, object_kind="test", object_id="gone")
        # no commit: the unit of work rolls back, the act and its entry with it
    assert counts(pg_world)[1] == 0
    assert "gone" not in [object_id for _, _, object_id in numbered_entries(pg_world)]


def test_a_checkpoint_covers_the_entries_pending_when_it_was_asked_for(pg_world: World) -> None:
    pg_world.services.audit.record("test.before_checkpoint", actor=None, object_kind="test", object_id="x")
    assert counts(pg_world)[1] >= 1
    checkpoint = pg_world.services.audit.checkpoint()
    numbered, pending = counts(pg_world)
    assert pending == 0 and checkpoint.size == numbered
    assert numbered_entries(pg_world)[-1][1:] == ("test.before_checkpoint", "x")
    assert pg_world.services.audit.verify([checkpoint.text]).ok


def test_concurrent_writers_and_sequencers_number_every_entry_once_in_order(pg_world: World) -> None:
    services = pg_world.services
    services.audit.sequence()
    before = counts(pg_world)[0]
    writers, per_writer = 6, 40
    stop = threading.Event()
    failures: list[BaseException] = []

    def write(writer: int) -> None:
        try:
            for i in range(per_writer):
                services.audit.record("test.concurrent", actor=None, object_kind="test", object_id=f"{writer}-{i}")
        except BaseException as error:  # reported below: a thread's exception would vanish
            failures.append(error)

    def sequence() -> None:
        try:
            while not stop.is_set():
                sequence_pending(services.uow_factory, limit=7)  # small batches: many rounds race
        except BaseException as error:
            failures.append(error)

    sequencers = [threading.Thread(target=sequence) for _ in range(2)]
    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    for thread in sequencers + threads:
        thread.start()
    for thread in threads:
        thread.join()
    stop.set()
    for thread in sequencers:
        thread.join()
    assert failures == []
    services.audit.sequence()

    entries = numbered_entries(pg_world)
    assert [seq for seq, _, _ in entries] == list(range(before + writers * per_writer))
    written = [object_id for _, action, object_id in entries if action == "test.concurrent"]
    assert sorted(written) == sorted(f"{w}-{i}" for w in range(writers) for i in range(per_writer))
    for w in range(writers):  # each writer's entries keep the order it wrote them in
        assert [o for o in written if o.startswith(f"{w}-")] == [f"{w}-{i}" for i in range(per_writer)]
    assert counts(pg_world)[1] == 0
    assert services.audit.verify().ok
