"""PostgreSQL: prebuilt statements through libpq's prepared-statement calls, and the pool's idle ping."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, bindparam, create_engine, insert, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from labelvault.storage import direct_path
from labelvault.storage.direct_path import numbered
from labelvault.storage.engine import ping_when_idle
from labelvault.storage.models import User, utcnow
from labelvault.storage.prepared import Plan
from labelvault.storage.scope import Unscoped
from labelvault.storage.unit_of_work import SHORT_LOCK_WAIT_MS
from tests.conftest import DatabaseUrls, World

_users = User.__table__
_USER_BY_NAME = select(_users.c.id, _users.c.username, _users.c.created_at).where(
    _users.c.username == bindparam("name")
)


def test_pyformat_places_become_numbered_ones_in_order_and_percent_signs_stay() -> None:
    sql, names = numbered("SELECT %(a)s, 'x%%y', %(b)s WHERE c = %(a)s")
    assert sql == b"SELECT $1, 'x%y', $2 WHERE c = $1"
    assert names == ("a", "b")


def test_an_engine_built_for_psycopg_takes_the_direct_path_with_one_state_per_pooled_connection(
    world: World
) -> None:
    engine = world.services.engine
    with engine.connect() as connection:
        state = direct_path.of(connection)
        if engine.dialect.driver == "psycopg":
            assert state is not None and direct_path.of(connection) is state
            assert direct_path.of_record(connection.connection.info) is state
        else:
            assert state is None and direct_path.of_record(connection.connection.info) is None
    # An engine that storage.engine.build_engine did not build (so without the hooks that send what
    # waits) never takes it.
    plain = create_engine(world.services.settings.resolved_database_url)
    try:
        with plain.connect() as connection:
            assert direct_path.of(connection) is None
    finally:
        plain.dispose()


@pytest.fixture
def pg_world(world: World) -> World:
    if world.services.engine.dialect.name != "postgresql":
        pytest.skip("libpq's prepared statements are PostgreSQL's")
    return world


def _prepared_names(connection: object, fragment: str) -> list[str]:
    return list(connection.execute(  # type: ignore[attr-defined]
        text("SELECT name FROM pg_prepared_statements WHERE statement LIKE :f ORDER BY name"), {"f": f"%{fragment}%"}
    ).scalars())


def test_a_statement_is_prepared_once_per_connection_and_survives_a_failed_transaction(pg_world: World) -> None:
    plan = Plan(_USER_BY_NAME, pg_world.services.engine.dialect)
    rename = Plan(update(_users).where(_users.c.username == bindparam("old")).values(username=bindparam("new")),
                  pg_world.services.engine.dialect)
    with pg_world.services.engine.connect() as connection:
        with connection.begin():
            # psycopg begins the transaction; the plan runs inside it. Statements run this often are
            # ones psycopg would prepare itself, and deallocate with ours at a rollback: not here.
            for _ in range(6):
                connection.execute(text("SELECT 1"))
            first = plan.execute(connection, {"name": "labeler_a"}).one()
            names = _prepared_names(connection, "FROM users")
        assert first.username == "labeler_a" and first.created_at.tzinfo is not None
        assert len(names) == 1 and names[0].startswith("lv_")
        transaction = connection.begin()
        connection.execute(text("SELECT 1"))
        with pytest.raises(IntegrityError):  # usernames are unique
            rename.execute(connection, {"old": "labeler_b", "new": "labeler_a"})
        transaction.rollback()
        with connection.begin():
            connection.execute(text("SELECT 1"))
            again = plan.execute(connection, {"name": "labeler_a"}).one()
            assert _prepared_names(connection, "FROM users") == names  # the same statement, not prepared again
    assert tuple(again) == tuple(first)


_SETTINGS = text("SELECT current_setting('app.client_id'), current_setting('app.all_clients'), "
                 "current_setting('lock_timeout')")


def test_a_unit_of_work_begins_with_its_scope_set_and_short_lock_waits_only_when_asked(pg_world: World) -> None:
    factory = pg_world.services.uow_factory
    with factory.for_client(pg_world.client_b) as uow:
        connection = uow.session.connection()
        settings = tuple(connection.execute(_SETTINGS).one())
        status = connection.connection.driver_connection.info.transaction_status.name
    assert settings == (str(pg_world.client_b), "", "0") and status == "INTRANS"
    with factory.short_lock_waits(), factory.for_client(pg_world.client_a) as uow:
        settings = tuple(uow.session.connection().execute(_SETTINGS).one())
    assert settings == (str(pg_world.client_a), "", f"{SHORT_LOCK_WAIT_MS}ms")
    with factory.all_clients() as uow:  # the setting was the transaction's own
        settings = tuple(uow.session.connection().execute(_SETTINGS).one())
    assert settings == ("", "on", "0")


@pytest.fixture
def pg_urls(database_urls: DatabaseUrls, backend: str) -> DatabaseUrls:
    if backend != "postgresql":
        pytest.skip("pings a PostgreSQL server")
    return database_urls


@pytest.fixture
def admin(pg_urls: DatabaseUrls) -> Iterator[Engine]:
    engine = create_engine(pg_urls.owner or pg_urls.app, isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


def _one_connection_engine(url: str, idle_seconds: float) -> Engine:
    engine = create_engine(url, pool_size=1, max_overflow=0)
    ping_when_idle(engine, idle_seconds)
    return engine


def _backend_pid(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


def test_a_pooled_connection_the_server_dropped_is_replaced_after_it_sat_idle(pg_urls: DatabaseUrls,
                                                                              admin: Engine) -> None:
    engine = _one_connection_engine(pg_urls.app, idle_seconds=0.0)
    try:
        dropped = _backend_pid(engine)
        with admin.connect() as connection:
            assert connection.execute(text("SELECT pg_terminate_backend(:p)"), {"p": dropped}).scalar()
        assert _backend_pid(engine) != dropped  # the ping found it gone: a new connection answered
    finally:
        engine.dispose()


def test_a_connection_used_within_the_idle_time_is_not_pinged(pg_urls: DatabaseUrls, admin: Engine) -> None:
    """The other side of the trade: a connection back in the pool for less than the idle time goes
    out unchecked, so a drop in that moment fails one request (and the pool is replaced)."""
    engine = _one_connection_engine(pg_urls.app, idle_seconds=3600.0)
    try:
        dropped = _backend_pid(engine)
        with admin.connect() as connection:
            connection.execute(text("SELECT pg_terminate_backend(:p)"), {"p": dropped})
        with pytest.raises(DBAPIError) as failed:
            _backend_pid(engine)
        assert failed.value.connection_invalidated
        assert _backend_pid(engine) != dropped
    finally:
        engine.dispose()


# Deferred writes (pg_direct.py): sent with the transaction's next statement or its commit.
_ADD_USER = Unscoped(insert(_users))
_USERS_LIKE = select(_users.c.username).where(_users.c.username.like(bindparam("pattern"))).order_by(_users.c.username)


def _new_user(name: str) -> dict[str, object]:
    return {"username": name, "display_name": "", "password_hash": None, "is_operator": False,
            "is_active": True, "created_at": utcnow()}


def _usernames(world: World, pattern: str) -> list[str]:
    with world.services.uow_factory.system() as uow:
        return list(uow.session.scalars(_USERS_LIKE, {"pattern": pattern}))


def test_deferred_writes_are_seen_by_the_statements_after_them_and_committed_with_the_commit(pg_world: World) -> None:
    with pg_world.services.uow_factory.system(write=True) as uow:
        uow.sql.run(_ADD_USER, _new_user("deferred_1"), defer=True)
        uow.sql.run(_ADD_USER, _new_user("deferred_2"), defer=True)
        # SQLAlchemy's own path (an ORM read) sends what waits before it runs
        assert list(uow.session.scalars(_USERS_LIKE, {"pattern": "deferred_%"})) == ["deferred_1", "deferred_2"]
        uow.sql.run(_ADD_USER, _new_user("deferred_3"), defer=True)
        uow.commit()  # deferred_3 goes with the COMMIT
    assert _usernames(pg_world, "deferred_%") == ["deferred_1", "deferred_2", "deferred_3"]


def test_a_deferred_write_that_fails_fails_the_next_statement_and_nothing_of_its_transaction_stays(
    pg_world: World,
) -> None:
    factory = pg_world.services.uow_factory
    with factory.system(write=True) as uow:
        uow.sql.run(_ADD_USER, _new_user("before_the_duplicate"), defer=True)
        uow.sql.run(_ADD_USER, _new_user("labeler_a"), defer=True)  # taken: usernames are unique
        with pytest.raises(IntegrityError):
            uow.session.execute(_USERS_LIKE, {"pattern": "%"})
    with factory.system(write=True) as uow:
        uow.sql.run(_ADD_USER, _new_user("labeler_b"), defer=True)
        with pytest.raises(IntegrityError):
            uow.commit()  # nothing after it: the commit sends it, and fails
    assert _usernames(pg_world, "before_the_duplicate") == []
    with factory.system(write=True) as uow:  # the connection and its prepared statements still serve
        uow.sql.run(_ADD_USER, _new_user("after_the_failures"), defer=True)
        uow.commit()
    assert _usernames(pg_world, "after_the_failures") == ["after_the_failures"]


def test_deferred_writes_of_a_transaction_left_without_a_commit_are_never_sent(pg_world: World) -> None:
    factory = pg_world.services.uow_factory
    with factory.system(write=True) as uow:
        # The statement's first use on this connection: its PREPARE waits with it, and is dropped too.
        uow.sql.run(_ADD_USER, _new_user("never_sent"), defer=True)
    assert _usernames(pg_world, "never_sent") == []
    with factory.system(write=True) as uow:  # prepared afresh, since the first PREPARE never went
        uow.sql.run(_ADD_USER, _new_user("sent_later"), defer=True)
        uow.commit()
    assert _usernames(pg_world, "sent_later") == ["sent_later"]


def test_a_transaction_that_runs_nothing_sends_nothing(pg_world: World) -> None:
    """Its BEGIN waits for a first statement that never comes; the connection stays idle."""
    factory = pg_world.services.uow_factory
    with factory.for_client(pg_world.client_a) as uow:
        connection = uow.session.connection()
        status = connection.connection.driver_connection.info.transaction_status.name
        uow.commit()
    assert status == "IDLE"

