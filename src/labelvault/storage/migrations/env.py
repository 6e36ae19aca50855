"""Alembic environment: the URL comes from the caller's config or LABELVAULT_DATABASE_URL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from alembic import context
from sqlalchemy import Column, Connection, create_engine, pool

from labelvault.settings import Settings
from labelvault.storage.models import NOT_IN_THE_MODEL, ONE_DATABASE_ONLY, Base

config = context.config
target_metadata = Base.metadata


def _include_object(connection: Connection) -> Callable[..., bool]:
    """For ``alembic check``: leave out what the models declare for the other database only, the
    columns the models leave out on purpose (storage/models.py), and, on SQLite, indexes with an
    ordered column (``DESC``): SQLAlchemy reflects their columns but not the order, so they would
    always look changed."""
    sqlite = connection.dialect.name == "sqlite"

    def include(item: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
        if type_ == "column" and (item.table.name, name) in NOT_IN_THE_MODEL:
            return False
        if sqlite and type_ == "index":
            declared = compare_to if reflected else item
            if declared is not None and any(not isinstance(e, Column) for e in declared.expressions):
                return False
        return ONE_DATABASE_ONLY.get(name or "", connection.dialect.name) == connection.dialect.name
    return include


def _url() -> str:
    return config.get_main_option("sqlalchemy.url") or Settings().resolved_database_url


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True,
                          include_object=_include_object(connection))
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(_url(), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True,
                          include_object=_include_object(connection))
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
