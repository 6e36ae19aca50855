"""The scoped session is the one door to client data: these tests try to walk around it."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import func, select, update

from labelvault.storage.models import Project
from labelvault.storage.scope import ScopeViolation
from tests.conftest import World

SCHEMA = {"fields": [{"name": "text", "kind": "text"}], "questions": [{"name": "q", "type": "text"}]}


@pytest.fixture
def two_projects(world: World) -> tuple[int, int]:
    projects = world.services.projects
    a = projects.create(world.operator, world.client_a, slug="alpha", name="Alpha", schema=SCHEMA)
    b = projects.create(world.operator, world.client_b, slug="beta", name="Beta", schema=SCHEMA)
    return a.id, b.id


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
