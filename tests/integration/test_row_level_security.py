"""PostgreSQL row-level security: the database itself keeps clients apart, under the ORM's scope.

The app connects as a role that is neither owner nor superuser (tests/conftest.py), so these tests
talk to the database as the application does, with raw SQL that "forgets" every filter.
"""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from labelvault.storage.models import CLIENT_OWNED_TABLES
from tests.conftest import World, owner_url
from tests.integration.queue_helpers import make_project


@pytest.fixture
def pg_world(world: World) -> World:
    if world.services.engine.dialect.name != "postgresql":
        pytest.skip("row-level security is a PostgreSQL feature")
    return world


def test_every_client_owned_table_has_forced_row_level_security(pg_world: World) -> None:
    with pg_world.services.engine.connect() as connection:
        rows = connection.execute(
            text("SELECT relname, relrowsecurity, relforcerowsecurity FROM pg_class WHERE relname = ANY(:t)"),
            {"t": list(CLIENT_OWNED_TABLES)},
        ).all()
    assert {r[0] for r in rows} == set(CLIENT_OWNED_TABLES)
    assert all(r[1] and r[2] for r in rows), rows


def test_the_app_role_is_neither_owner_nor_superuser(pg_world: World) -> None:
    with pg_world.services.engine.connect() as connection:
        superuser, bypass = connection.execute(
            text("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
        ).one()
        owner = connection.execute(text("SELECT tableowner FROM pg_tables WHERE tablename = 'tasks'")).scalar()
        me = connection.execute(text("SELECT current_user")).scalar()
    assert not superuser and not bypass
    assert owner != me


def test_a_query_that_forgets_the_scope_sees_no_row_of_another_client(pg_world: World) -> None:
    make_project(pg_world, "mine", tasks=3)
    other = pg_world.services.projects.create(
        pg_world.operator,
        pg_world.client_b,
        slug="theirs",
        name="t",
        schema={"fields": [{"name": "text", "kind": "text"}], "questions": [{"name": "q", "type": "text"}]},
    )
    pg_world.services.imports.import_rows(
        pg_world.operator, pg_world.client_b, other.id, [{"data": {"text": "secret"}}] * 2
    )
    with pg_world.services.engine.connect() as connection:
        with connection.begin():
            connection.execute(text("SELECT set_config('app.client_id', :c, true)"), {"c": str(pg_world.client_a)})
            clients = connection.execute(text("SELECT DISTINCT client_id FROM tasks")).scalars().all()
            assert clients == [pg_world.client_a]
            assert connection.execute(text("SELECT count(*) FROM projects")).scalar() == 1
        with connection.begin():  # a transaction that set no scope at all sees nothing
            assert connection.execute(text("SELECT count(*) FROM tasks")).scalar() == 0
    # The owner (outside the app) sees both clients' tasks: the rows are there.
    owner = create_engine(owner_url(pg_world.services.settings))
    with owner.connect() as connection:
        assert connection.execute(text("SELECT count(DISTINCT client_id) FROM tasks")).scalar() == 2
    owner.dispose()


def test_a_write_into_another_client_is_refused_by_the_database(pg_world: World) -> None:
    make_project(pg_world, "mine", tasks=1)
    with pg_world.services.engine.connect() as connection, connection.begin():
        connection.execute(text("SELECT set_config('app.client_id', :c, true)"), {"c": str(pg_world.client_a)})
        with pytest.raises(DBAPIError, match="row-level security"):
            connection.execute(text("UPDATE projects SET client_id = :b"), {"b": pg_world.client_b})


def test_the_app_role_cannot_update_or_delete_audit_entries(pg_world: World) -> None:
    assert pg_world.services.audit.verify().size > 0
    for statement in ("UPDATE audit_entries SET outcome = 'ok'", "DELETE FROM audit_entries"):
        with (
            pg_world.services.engine.connect() as connection,
            connection.begin(),
            pytest.raises(DBAPIError, match="permission denied"),
        ):
            connection.execute(text(statement))
