"""Shared fixtures: real SQLite files and real PostgreSQL databases, created fresh per test.

PostgreSQL runs when ``LABELVAULT_TEST_POSTGRES_URL`` names a server we may create databases on
(e.g. ``postgresql+psycopg://postgres@127.0.0.1:5432/test``). Under ``CI=true`` it must be set:
the PostgreSQL half of the suite may not be skipped there.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from labelvault.bootstrap import Services, initialize
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
        if "postgresql" in item.keywords or "[postgresql" in item.nodeid:
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

    def create(self) -> tuple[str, str]:
        """(owner URL, app-role URL) of a new, empty database."""
        name = f"lv_test_{RUN_ID}_{uuid.uuid4().hex[:10]}"
        with self.admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
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
def database_urls(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_databases: PostgresDatabases | None
) -> Iterator[DatabaseUrls]:
    if request.param == "sqlite":
        yield DatabaseUrls(f"sqlite:///{tmp_path / 'labelvault.db'}")
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
def database_url(database_urls: DatabaseUrls) -> str:
    return database_urls.app


@pytest.fixture
def settings(tmp_path: Path, database_urls: DatabaseUrls) -> Settings:
    return Settings(home=tmp_path / "home", database_url=database_urls.app,
                    migration_database_url=database_urls.owner, sqlite_synchronous="NORMAL")


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    services = initialize(settings, "operator", OPERATOR_PASSWORD)
    yield services
    services.close()


@dataclass
class World:
    """An install with two clients, each with one person per role, and tokens for all."""

    services: Services
    operator: object
    client_a: int
    client_b: int
    tokens: dict[str, str]
    actors: dict[str, object]


ROLES = ("manager", "reviewer", "labeler", "viewer")


@pytest.fixture
def world(services: Services) -> World:
    accounts = services.accounts
    operator = accounts.first_operator()
    client_a = services.clients.create(operator, "acme", "Acme AI").id
    client_b = services.clients.create(operator, "globex", "Globex Labs").id
    tokens: dict[str, str] = {"operator": accounts.issue_token(operator, "test").token}
    actors: dict[str, object] = {"operator": operator}
    for client_slug, client_id in (("a", client_a), ("b", client_b)):
        for role in ROLES:
            username = f"{role}_{client_slug}"
            accounts.create_user(operator, username, None)
            accounts.grant_role(operator, client_id, username, role)
            actors[username] = accounts.actor_by_username(username)
            tokens[username] = accounts.issue_token(operator, "test", for_username=username).token
    return World(services, operator, client_a, client_b, tokens, actors)
