"""The scoped session is the one door to client data: these tests try to walk around it."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from sqlalchemy import bindparam, event, exists, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from labelvault.storage.models import Answer, Lease, Membership, Project, Task, User
from labelvault.storage.scope import ScopeViolation, in_scope, scoped
from tests.conftest import World

SCHEMA = {"fields": [{"name": "text", "kind": "text"}], "questions": [{"name": "q", "type": "text"}]}


@pytest.fixture
def two_projects(world: World) -> tuple[int, int]:
    projects = world.services.projects
    a = projects.create(world.operator, world.client_a, slug="alpha", name="Alpha", schema=SCHEMA)
    b = projects.create(world.operator, world.client_b, slug="beta", name="Beta", schema=SCHEMA)
    return a.id, b.id


_RENAME_PROJECT = scoped(
    update(Project.__table__).where(Project.__table__.c.id == bindparam("project_id")).values(name=bindparam("name"))
)


def test_a_client_scope_sees_only_its_own_rows(world: World, two_projects: tuple[int, int]) -> None:
    a_id, b_id = two_projects
    with world.services.uow_factory.for_client(world.client_a) as uow:
        assert [p.id for p in uow.session.scalars(select(Project))] == [a_id]
        assert uow.session.scalar(select(func.count()).select_from(Project)) == 1
        assert uow.session.get(Project, b_id) is None
        assert uow.projects.by_slug("beta") is None


def test_an_update_without_a_filter_touches_only_the_scope(world: World, two_projects: tuple[int, int]) -> None:
    a_id, b_id = two_projects
    with world.services.uow_factory.for_client(world.client_a, write=True) as uow:
        uow.session.execute(update(Project).values(name="renamed"))
        uow.commit()
    with world.services.uow_factory.all_clients() as uow:
        names = {p.id: p.name for p in uow.session.scalars(select(Project))}
    assert names == {a_id: "renamed", b_id: "Beta"}


def test_the_system_scope_sees_no_client_rows(world: World, two_projects: tuple[int, int]) -> None:
    with world.services.uow_factory.system() as uow:
        assert uow.session.scalars(select(Project)).all() == []


def test_creating_a_row_for_another_client_is_refused(world: World) -> None:
    with world.services.uow_factory.for_client(world.client_a, write=True) as uow:
        uow.session.add(Project(client_id=world.client_b, slug="x", name="x", schema_json=json.dumps(SCHEMA)))
        with pytest.raises(ScopeViolation):
            uow.flush()


def test_a_unit_of_work_rolls_back_unless_committed(world: World) -> None:
    with world.services.uow_factory.for_client(world.client_a, write=True) as uow:
        uow.projects.add(Project(slug="temp", name="t", schema_json=json.dumps(SCHEMA)))
    with world.services.uow_factory.for_client(world.client_a) as uow:
        assert uow.projects.by_slug("temp") is None


# Prebuilt Core statements (the queue's hot path) go through the same door: scoped() adds the
# client criteria once, ScopedSql supplies the unit of work's client on every execution.

_projects_table = Project.__table__
_ALL_PROJECT_NAMES = scoped(select(_projects_table.c.id, _projects_table.c.name))
_RENAME_EVERY_PROJECT = scoped(update(_projects_table).values(name=bindparam("new_name")))


def test_a_scoped_core_statement_sees_and_changes_only_its_clients_rows(
    world: World, two_projects: tuple[int, int]
) -> None:
    a_id, b_id = two_projects
    factory = world.services.uow_factory
    with factory.for_client(world.client_a, write=True) as uow:
        assert [row.id for row in uow.sql.run(_ALL_PROJECT_NAMES)] == [a_id]
        assert uow.sql.run(_RENAME_EVERY_PROJECT, {"new_name": "renamed"}).rowcount == 1
        uow.commit()
    with factory.all_clients() as uow:  # operator work sees every client, as the ORM path does
        assert {row.id: row.name for row in uow.sql.run(_ALL_PROJECT_NAMES)} == {a_id: "renamed", b_id: "Beta"}
    with factory.system() as uow, pytest.raises(ScopeViolation):
        uow.sql.run(_ALL_PROJECT_NAMES)  # no client in scope: refused, not "every row"


def test_in_a_write_batch_a_unit_of_work_keeps_its_scope_on_both_paths(
    world: World, two_projects: tuple[int, int]
) -> None:
    """A unit of work of a write batch (SQLite's group commit) runs its statements on the batch's
    connection and makes its ORM session only on first use: the scope holds on both paths."""
    factory = world.services.uow_factory
    if not factory.serialize_writers:
        pytest.skip("write batches are SQLite's")
    a_id, b_id = two_projects

    def as_client_a() -> None:
        with factory.for_client(world.client_a, write=True) as uow:
            assert [row.id for row in uow.sql.run(_ALL_PROJECT_NAMES)] == [a_id]
            assert uow.sql.run(_RENAME_EVERY_PROJECT, {"new_name": "renamed"}).rowcount == 1
            assert uow.session.get(Project, b_id) is None  # the session, made now, is scoped too
            assert [p.id for p in uow.session.scalars(select(Project))] == [a_id]
            uow.session.add(Project(client_id=world.client_b, slug="x", name="x", schema_json=json.dumps(SCHEMA)))
            with pytest.raises(ScopeViolation):
                uow.flush()
        with factory.system() as uow:
            with pytest.raises(ScopeViolation):
                uow.sql.run(_ALL_PROJECT_NAMES)
            assert uow.session.scalars(select(Project)).all() == []

    batch = factory.begin_batch()
    batch.run(as_client_a)
    batch.commit()
    with factory.all_clients() as uow:  # the unit of work left without a commit: nothing renamed
        assert {row.id: row.name for row in uow.sql.run(_ALL_PROJECT_NAMES)} == {a_id: "Alpha", b_id: "Beta"}


def test_a_scoped_insert_takes_the_client_from_the_scope_and_refuses_another(world: World) -> None:
    insert_project = scoped(insert(_projects_table))
    with world.services.uow_factory.for_client(world.client_a, write=True) as uow:
        uow.sql.run(insert_project, {"id": 990001, "slug": "core", "name": "Core", "schema_json": json.dumps(SCHEMA)})
        with pytest.raises(ScopeViolation):
            uow.sql.run(insert_project, {"id": 990002, "slug": "x", "name": "x", "schema_json": "{}",
                                         "client_id": world.client_b})
        uow.commit()
    with world.services.uow_factory.all_clients() as uow:
        owner = uow.session.scalar(select(Project.client_id).where(Project.slug == "core"))
    assert owner == world.client_a


def test_statements_that_could_escape_the_scope_are_refused_when_built_or_run(world: World) -> None:
    answers, tasks = Answer.__table__, Task.__table__
    seen = exists().where(answers.c.task_id == tasks.c.id)
    with pytest.raises(ValueError, match="answers"):
        scoped(select(tasks.c.id).where(~seen))  # a client table in a subquery without in_scope()
    scoped(select(tasks.c.id).where(~seen.where(in_scope(answers))))  # with it, accepted
    with pytest.raises(ValueError):
        scoped(select(User.__table__.c.id))  # no client-owned table: nothing to scope, say Unscoped
    with world.services.uow_factory.for_client(world.client_a) as uow, pytest.raises(ScopeViolation):
        uow.sql.run(select(tasks.c.id))  # type: ignore[arg-type]  # a bare statement does not run


# The queue's statements run on the driver's cursor (storage/prepared.py): values must convert
# exactly as on SQLAlchemy's regular path, and driver errors must keep SQLAlchemy's classes.

_leases_table = Lease.__table__
_LEASE_ROWS = scoped(select(_leases_table).order_by(_leases_table.c.id))
_MOVE_LEASE = scoped(
    update(_leases_table).where(_leases_table.c.id == bindparam("lease_id")).values(user_id=bindparam("new_user"))
)


def test_a_prepared_statement_reads_what_the_regular_path_reads(world: World) -> None:
    services = world.services
    project = services.projects.create(world.operator, world.client_a, slug="prep", name="Prep", schema=SCHEMA)
    services.accounts.grant_role(world.operator, world.client_a, "manager_a", "labeler")
    services.imports.import_rows(world.operator, world.client_a, project.id,
                                 iter([{"data": {"text": "one"}}, {"data": {"text": "two"}}]))
    for labeler in ("labeler_a", "manager_a"):
        services.labeling.next_task(world.actors[labeler], world.client_a, project.id)
    with services.uow_factory.for_client(world.client_a) as uow:
        prepared = [tuple(row) for row in uow.sql.run(_LEASE_ROWS)]
        regular = [tuple(row) for row in uow.session.connection().execute(_LEASE_ROWS.statement,
                                                                            {"scope_client_id": world.client_a})]
        task = uow.tasks.row(uow.sql.run(_LEASE_ROWS).first().task_id)
    assert len(prepared) == 2 and prepared == regular
    assert prepared[0][4].tzinfo is not None  # started_at: an aware UTC datetime, as the ORM gives
    assert isinstance(task.uncertainty, float) and isinstance(task.payload, bytes)


def test_prepared_statements_are_seen_by_sqlalchemys_cursor_events(world: World) -> None:
    seen: list[tuple[str, str, object]] = []

    def before(_conn: object, _cursor: object, statement: str, parameters: object, *_: object) -> None:
        seen.append(("before", statement, parameters))

    def after(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        seen.append(("after", statement, None))

    engine = world.services.engine
    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    try:
        with world.services.uow_factory.for_client(world.client_a) as uow:
            uow.sql.run(_LEASE_ROWS).all()
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)
    lease_reads = [(when, parameters) for when, statement, parameters in seen if "FROM leases" in statement]
    assert [when for when, _ in lease_reads] == ["before", "after"]
    assert world.client_a in (lease_reads[0][1].values() if isinstance(lease_reads[0][1], dict)  # type: ignore[union-attr]
                              else lease_reads[0][1])


def test_prepared_statements_follow_the_session_into_its_next_transaction(world: World) -> None:
    """Statements keep the transaction's connection; after a commit they must take the next one's."""
    services = world.services
    project = services.projects.create(world.operator, world.client_a, slug="txn", name="Txn", schema=SCHEMA)
    with services.uow_factory.for_client(world.client_a, write=True) as uow:
        first = uow.projects.row_with_roles(project.id, world.operator.user_id)
        uow.commit()
        # a new transaction, maybe another pooled connection
        second = uow.projects.row_with_roles(project.id, world.operator.user_id)
        uow.sql.run(_RENAME_PROJECT, {"project_id": project.id, "name": "Renamed"})
        uow.commit()
    assert first.name == "Txn" and second.name == "Txn"
    assert services.projects.get(world.operator, world.client_a, project.id).name == "Renamed"


def test_a_prepared_statement_raises_sqlalchemys_errors(world: World) -> None:
    services = world.services
    project = services.projects.create(world.operator, world.client_a, slug="prep2", name="Prep", schema=SCHEMA,
                                       overlap=2)
    services.accounts.grant_role(world.operator, world.client_a, "manager_a", "labeler")
    services.imports.import_rows(world.operator, world.client_a, project.id, iter([{"data": {"text": "one"}}]))
    services.labeling.next_task(world.actors["labeler_a"], world.client_a, project.id)
    services.labeling.next_task(world.actors["manager_a"], world.client_a, project.id)
    with services.uow_factory.for_client(world.client_a, write=True) as uow:
        first, second = uow.sql.run(_LEASE_ROWS).all()
        with pytest.raises(IntegrityError):  # (task, user) is unique: two leases of one person on a task
            uow.sql.run(_MOVE_LEASE, {"lease_id": second.id, "new_user": first.user_id})


def test_many_rows_are_inserted_for_the_scopes_client_only(world: World) -> None:
    memberships = Membership.__table__
    insert_memberships = scoped(insert(memberships))
    user_id = world.actors["labeler_b"].user_id  # a member of client B only, so far
    columns = ("user_id", "role", "created_at")
    now = datetime.now(UTC).replace(tzinfo=None)  # the driver's form of a UTC timestamp
    factory = world.services.uow_factory
    with factory.for_client(world.client_a, write=True) as uow:
        rows = [(user_id, "labeler", now), (user_id, "reviewer", now)]
        assert uow.sql.insert_many(insert_memberships, columns, rows) == 2
        with pytest.raises(ScopeViolation):  # the caller may not name the client
            uow.sql.insert_many(insert_memberships, (*columns, "client_id"), [(*rows[0], world.client_b)])
        uow.commit()
    with factory.system(write=True) as uow, pytest.raises(ScopeViolation):
        uow.sql.insert_many(insert_memberships, columns, [(user_id, "manager", now)])
    with factory.all_clients() as uow:
        rows = uow.session.execute(select(Membership.client_id, Membership.role).where(Membership.user_id == user_id))
        assert sorted(rows.all()) == sorted([(world.client_a, "labeler"), (world.client_a, "reviewer"),
                                             (world.client_b, "labeler")])


def test_a_paid_next_and_submit_run_every_statement_prepared(world: World) -> None:
    """The queue's hot path never falls back to SQLAlchemy's regular statement path (an INSERT that
    leaves a Python-side default out cannot be prepared, and silently took it: 0.4 ms per answer),
    and reads the client's data key with the project's settings, not on its own."""
    from tests.integration.queue_helpers import label_once, make_project

    project_id = make_project(world, tasks=3, rate_per_answer=5)
    labeler = world.actors["labeler_a"]
    label_once(world, labeler, project_id)  # plans are made on first use
    regular: list[str] = []
    sent: list[str] = []

    def on_regular_path(_conn: object, clause: object, *_: object) -> None:
        regular.append(str(clause))

    def on_cursor(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        sent.append(statement)

    engine = world.services.engine
    event.listen(engine, "before_execute", on_regular_path)
    event.listen(engine, "before_cursor_execute", on_cursor)
    try:
        label_once(world, labeler, project_id)
    finally:
        event.remove(engine, "before_execute", on_regular_path)
        event.remove(engine, "before_cursor_execute", on_cursor)
    assert regular == []
    assert sent and not [s for s in sent if s.lstrip().startswith("SELECT data_keys.")]
    assert world.services.projects.get(world.operator, world.client_a, project_id).spent == 10
