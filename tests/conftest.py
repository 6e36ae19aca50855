"""Shared fixtures: real SQLite files and real PostgreSQL databases, created fresh per test.

PostgreSQL runs when ``LABELVAULT_TEST_POSTGRES_URL`` names a server we may create databases on
(e.g. ``postgresql+psycopg://postgres@127.0.0.1:5432/test``). Under ``CI=true`` it must be set:
the PostgreSQL half of the suite may not be skipped there.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from labelvault.bootstrap import Services, build_services, initialize
from labelvault.domain.access import Actor
from labelvault.settings import Settings

POSTGRES_URL = os.environ.get("LABELVAULT_TEST_POSTGRES_URL")
RUN_ID = uuid.uuid4().hex[:8]
OPERATOR_PASSWORD = "operator-password-1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if POSTGRES_URL:
        return
    if os.environ.get("CI") == "true":
        raise pytest.UsageError("CI=true but LABELVAULT_TEST_POSTGRES_URL is not set: PostgreSQL may not be skipped")
    skip = pytest.mark.skip(reason="LABELVAULT_TEST_POSTGRES_URL not set")
    for item in items:
        # The backend's PostgreSQL parameter carries the mark, whatever other parameters name the test.
        if item.get_closest_marker("postgres") or "postgresql" in item.keywords or "[postgresql" in item.nodeid:
            item.add_marker(skip)


class PostgresDatabases:
    """Creates uniquely named databases on the test server and drops them afterwards.

    The app connects as ``app_role``, neither owner nor superuser, so row-level security applies
    to every test; migrations run as the server's admin user (the owner).
    """

    def __init__(self, admin_url: str) -> None:
        self.admin_url = make_url(admin_url)
        self.admin = create_engine(self.admin_url, isolation_level="AUTOCOMMIT", poolclass=None)
        self.app_role = f"lv_app_{RUN_ID}"
        with self.admin.connect() as connection:
            connection.execute(text(f'CREATE ROLE "{self.app_role}" LOGIN NOSUPERUSER NOBYPASSRLS'))

    def create(self, template: str | None = None) -> tuple[str, str]:
        """(owner URL, app-role URL) of a new database: empty, or a copy of ``template``."""
        name = f"lv_test_{RUN_ID}_{uuid.uuid4().hex[:10]}"
        with self.admin.connect() as connection:
            copy = f' TEMPLATE "{template}"' if template else ""
            connection.execute(text(f'CREATE DATABASE "{name}"{copy}'))
        owner = self.admin_url.set(database=name)
        app = owner.set(username=self.app_role, password=None)
        return owner.render_as_string(hide_password=False), app.render_as_string(hide_password=False)

    def close(self) -> None:
        with self.admin.connect() as connection:
            connection.execute(text(f'DROP ROLE IF EXISTS "{self.app_role}"'))
        self.admin.dispose()

    def drop(self, url: str) -> None:
        name = make_url(url).database
        with self.admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def postgres_databases() -> Iterator[PostgresDatabases | None]:
    if not POSTGRES_URL:
        yield None
        return
    databases = PostgresDatabases(POSTGRES_URL)
    yield databases
    databases.close()


@dataclass(frozen=True)
class DatabaseUrls:
    app: str
    owner: str | None = None  # PostgreSQL: the migrations' owner connection


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_urls(
    backend: str, tmp_path: Path, postgres_databases: PostgresDatabases | None
) -> Iterator[DatabaseUrls]:
    """An empty database of the test's backend (for tests that build an install themselves)."""
    if backend == "sqlite":
        yield DatabaseUrls(f"sqlite:///{tmp_path / 'empty.db'}")
        return
    assert postgres_databases is not None
    owner, app = postgres_databases.create()
    yield DatabaseUrls(app, owner)
    postgres_databases.drop(owner)


def owner_url(settings: Settings) -> str:
    """A connection that sees every client's rows (the owner; RLS filters the app's role): for
    tests that inspect the database from outside the application."""
    return settings.migration_database_url or settings.resolved_database_url


@pytest.fixture
def database_url(settings: Settings) -> str:
    return settings.resolved_database_url


@dataclass
class World:
    """An install with two clients, each with one person per role, and tokens for all."""

    services: Services
    operator: Actor
    client_a: int
    client_b: int
    tokens: dict[str, str]
    actors: dict[str, Actor]


ROLES = ("manager", "reviewer", "labeler", "viewer")


@dataclass(frozen=True)
class WorldData:
    operator: Actor
    client_a: int
    client_b: int
    tokens: dict[str, str]
    actors: dict[str, Actor]


def populate_world(services: Services) -> WorldData:
    accounts = services.accounts
    operator = accounts.first_operator()
    client_a = services.clients.create(operator, "acme", "Acme AI").id
    client_b = services.clients.create(operator, "globex", "Globex Labs").id
    tokens: dict[str, str] = {"operator": accounts.issue_token(operator, "test").token}
    actors: dict[str, Actor] = {"operator": operator}
    for client_slug, client_id in (("a", client_a), ("b", client_b)):
        for role in ROLES:
            username = f"{role}_{client_slug}"
            accounts.create_user(operator, username, None)
            accounts.grant_role(operator, client_id, username, role)
            actors[username] = accounts.actor_by_username(username)
            tokens[username] = accounts.issue_token(operator, "test", for_username=username).token
    return WorldData(operator, client_a, client_b, tokens, actors)


@dataclass
class Template:
    home: Path
    database: str  # SQLite file path, or the PostgreSQL template database's name
    world: WorldData | None


class Templates:
    """Installs built once per test process and copied for each test: migrating, hashing the
    operator's password and creating the world's users and keys would otherwise dominate the suite.
    Each test still gets its own database and key directory (a file copy, or CREATE DATABASE ...
    TEMPLATE on PostgreSQL)."""

    def __init__(self, root: Path, postgres: PostgresDatabases | None) -> None:
        self.root = root
        self.postgres = postgres
        self.built: dict[tuple[str, str], Template] = {}

    def get(self, backend: str, kind: str) -> Template:
        key = (backend, kind)
        if key not in self.built:
            self.built[key] = self._build(backend, kind)
        return self.built[key]

    def _build(self, backend: str, kind: str) -> Template:
        folder = self.root / f"{backend}-{kind}"
        folder.mkdir()
        if backend == "sqlite":
            database = str(folder / "labelvault.db")
            settings = Settings(home=folder / "home", database_url=f"sqlite:///{database}", sqlite_synchronous="NORMAL")
        else:
            assert self.postgres is not None
            owner, app = self.postgres.create()
            database = str(make_url(owner).database)
            settings = Settings(home=folder / "home", database_url=app, migration_database_url=owner)
        services = initialize(settings, "operator", OPERATOR_PASSWORD)
        try:
            world = populate_world(services) if kind == "world" else None
            if backend == "sqlite":
                with services.engine.connect() as connection:
                    connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            services.close()
        return Template(folder / "home", database, world)

    def copy(self, template: Template, backend: str, target: Path) -> Settings:
        shutil.copytree(template.home, target / "home")
        if backend == "sqlite":
            shutil.copyfile(template.database, target / "labelvault.db")
            return Settings(home=target / "home", database_url=f"sqlite:///{target / 'labelvault.db'}",
                            sqlite_synchronous="NORMAL")
        assert self.postgres is not None
        owner, app = self.postgres.create(template=template.database)
        return Settings(home=target / "home", database_url=app, migration_database_url=owner)


@pytest.fixture(scope="session")
def templates(
    tmp_path_factory: pytest.TempPathFactory, postgres_databases: PostgresDatabases | None
) -> Iterator[Templates]:
    built = Templates(tmp_path_factory.mktemp("templates"), postgres_databases)
    yield built
    if postgres_databases is not None:
        for (backend, _kind), template in built.built.items():
            if backend == "postgresql":
                postgres_databases.drop(postgres_databases.admin_url.set(database=template.database)
                                        .render_as_string(hide_password=False))


@pytest.fixture
def settings(
    request: pytest.FixtureRequest, backend: str, tmp_path: Path, templates: Templates,
    postgres_databases: PostgresDatabases | None,
) -> Iterator[Settings]:
    """A ready install (migrated, with an operator; with the world if the test asks for it)."""
    kind = "world" if "world" in request.fixturenames else "bare"
    copied = templates.copy(templates.get(backend, kind), backend, tmp_path)
    request.node.stash[_WORLD] = templates.get(backend, kind).world
    yield copied
    if copied.migration_database_url and postgres_databases is not None:
        postgres_databases.drop(copied.migration_database_url)


_WORLD = pytest.StashKey[WorldData | None]()


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    services = build_services(settings)
    yield services
    services.close()


@pytest.fixture
def world(request: pytest.FixtureRequest, services: Services) -> World:
    data = request.node.stash[_WORLD]
    assert data is not None
    return World(services, data.operator, data.client_a, data.client_b, dict(data.tokens), dict(data.actors))
