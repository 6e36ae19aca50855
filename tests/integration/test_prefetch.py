"""Reads fetched ahead (``ScopedSql.prefetch``): on PostgreSQL sent in one round trip and handed to
the executions that follow, only while nothing else has run in between; elsewhere nothing happens.

A result that was handed out from the prefetch shows the database as it was when the prefetch ran:
a change committed by another connection after it is not in it. That is how these tests tell a
handed-out result from one fetched anew (which, under READ COMMITTED, sees the change)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, Integer, String, bindparam, cast, create_engine, select, text, update
from sqlalchemy.exc import DBAPIError

from labelvault.storage.models import User
from labelvault.storage.scope import ScopeViolation, Unscoped
from tests.conftest import World, owner_url

_users = User.__table__
_NAME = Unscoped(select(_users.c.display_name).where(_users.c.username == bindparam("username")))
_RENAME = Unscoped(update(_users).where(_users.c.username == bindparam("username"))
                   .values(display_name=bindparam("name")))
_NOT_A_NUMBER = Unscoped(select(cast(bindparam("value", type_=String), Integer)))


@pytest.fixture
def outside(world: World) -> Iterator[Engine]:
    """Another connection to the same database, committing on its own."""
    engine = create_engine(owner_url(world.services.settings), isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


def _rename(engine: Engine, username: str, name: str) -> None:
    with engine.connect() as connection:
        connection.execute(text("UPDATE users SET display_name = :n WHERE username = :u"), {"n": name, "u": username})


def _name(uow: object, username: str) -> str:
    return str(uow.sql.run(_NAME, {"username": username}).scalar())  # type: ignore[attr-defined]


def _postgresql(world: World) -> None:
    if world.services.engine.dialect.name != "postgresql":
        pytest.skip("reads are fetched ahead on PostgreSQL only (SQLite: the same statements run in turn)")


def test_reads_fetched_ahead_are_handed_to_the_same_statements_in_turn(world: World, outside: Engine) -> None:
    _postgresql(world)
    with world.services.uow_factory.system() as uow:
        uow.sql.prefetch((_NAME, {"username": "labeler_a"}), (_NAME, {"username": "labeler_b"}))
        _rename(outside, "labeler_a", "renamed a")
        _rename(outside, "labeler_b", "renamed b")
        before = (_name(uow, "labeler_a"), _name(uow, "labeler_b"))
        after = _name(uow, "labeler_a")  # its result was handed out: this one asks the server
    assert "renamed" not in before[0] and "renamed" not in before[1]
    assert after == "renamed a"


@pytest.mark.parametrize("in_between", ["another prepared read", "a core statement", "a deferred write"])
def test_anything_run_in_between_drops_what_was_fetched_ahead(world: World, outside: Engine, in_between: str) -> None:
    _postgresql(world)
    with world.services.uow_factory.system(write=True) as uow:
        uow.sql.prefetch(*[(_NAME, {"username": name}) for name in ("labeler_a", "reviewer_a", "labeler_b")])
        assert "renamed" not in _name(uow, "labeler_a")
        if in_between == "another prepared read":
            _name(uow, "manager_a")  # where reviewer_a's read was due
        elif in_between == "a core statement":
            uow.session.execute(text("SELECT 1"))
        else:
            uow.sql.run(_RENAME, {"username": "manager_a", "name": "Manager A"}, defer=True)
        _rename(outside, "reviewer_a", "renamed r")
        _rename(outside, "labeler_b", "renamed b")
        # Fetched anew: every read still ahead was dropped, not only the one whose turn was taken.
        assert (_name(uow, "labeler_b"), _name(uow, "reviewer_a")) == ("renamed b", "renamed r")


def test_a_read_with_other_values_is_not_handed_what_was_fetched_for_others(world: World, outside: Engine) -> None:
    _postgresql(world)
    with world.services.uow_factory.system() as uow:
        labeler_b = _name(uow, "labeler_b")
    with world.services.uow_factory.system() as uow:
        uow.sql.prefetch((_NAME, {"username": "labeler_a"}))
        _rename(outside, "labeler_a", "renamed a")
        assert (_name(uow, "labeler_b"), _name(uow, "labeler_a")) == (labeler_b, "renamed a")


def test_a_prefetch_after_the_commit_of_its_transaction_is_not_handed_to_the_next_one(
    world: World, outside: Engine
) -> None:
    _postgresql(world)
    with world.services.uow_factory.system(write=True) as uow:
        uow.sql.prefetch((_NAME, {"username": "labeler_a"}))
        uow.commit()
        _rename(outside, "labeler_a", "renamed a")
        assert _name(uow, "labeler_a") == "renamed a"


def test_a_failing_read_fetched_ahead_raises_sqlalchemys_error_there_and_the_next_unit_of_work_is_fine(
    world: World,
) -> None:
    _postgresql(world)
    factory = world.services.uow_factory
    with pytest.raises(DBAPIError), factory.system() as uow:
        uow.sql.prefetch((_NAME, {"username": "labeler_a"}), (_NOT_A_NUMBER, {"value": "seven"}))
    with factory.system() as uow:
        assert _name(uow, "labeler_a") and uow.sql.run(_NOT_A_NUMBER, {"value": "7"}).scalar() == 7


def test_only_reads_are_fetched_ahead(world: World) -> None:
    with world.services.uow_factory.system(write=True) as uow, pytest.raises(ScopeViolation, match="only reads"):
        uow.sql.prefetch((_RENAME, {"username": "labeler_a", "name": "x"}))


def test_reads_fetched_ahead_give_what_running_them_gives_on_either_database(world: World) -> None:
    with world.services.uow_factory.system() as uow:
        plain = [_name(uow, name) for name in ("labeler_a", "labeler_b", "nobody")]
    with world.services.uow_factory.system() as uow:
        uow.sql.prefetch(*[(_NAME, {"username": name}) for name in ("labeler_a", "labeler_b", "nobody")])
        fetched = [_name(uow, name) for name in ("labeler_a", "labeler_b", "nobody")]
    assert fetched == plain and plain[2] == "None"


def test_a_warm_next_and_submit_on_postgresql_take_few_round_trips(world: World) -> None:
    """What fetching ahead is for: a next's reads up to its pick go in one round trip, a submit's up
    to the lease in one. Counted by the direct path's own tally of the round trips it made."""
    from labelvault.storage.pg_direct import DirectConnection
    from tests.integration.queue_helpers import label_once, make_project

    _postgresql(world)
    project_id = make_project(world, tasks=4, overlap=2, rate_per_answer=5, budget_cap=100_000)
    labeler, labeling = world.actors["labeler_a"], world.services.labeling
    label_once(world, labeler, project_id)  # plans prepared, the wall touched
    before = DirectConnection.round_trips
    task = labeling.next_task(labeler, world.client_a, project_id)
    after_next = DirectConnection.round_trips
    labeling.submit(labeler, world.client_a, project_id, task.task_id, {"sentiment": "positive"})
    # next: settings to suspension; the pick; the commit with the lease, its slot and the audit entry.
    # submit: settings to the answer's id; the lease taken into the answer; the commit with the writes.
    assert (after_next - before, DirectConnection.round_trips - after_next) == (3, 3)
