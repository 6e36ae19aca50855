"""Consistent online copies of the database: SQLite's VACUUM INTO, PostgreSQL's pg_dump."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from sqlalchemy import Engine, create_engine, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from labelvault.errors import Conflict, InvalidInput

SQLITE_FILE = "database.sqlite"
PG_FILE = "database.dump"


def _libpq_url(url: str) -> str:
    """postgresql+psycopg://... -> postgresql://... (what pg_dump understands)."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise Conflict(f"{name} is not installed: install the PostgreSQL client tools (Debian: postgresql-client)")
    return path


def dump(engine: Engine, owner_url: str | None, directory: Path) -> str:
    """Write a consistent copy of the live database into ``directory``; returns the file name.

    SQLite: VACUUM INTO reads one snapshot while writers go on. PostgreSQL: pg_dump in the custom
    format, as the owner (row-level security would hide rows from the application's role).
    """
    if engine.dialect.name == "sqlite":
        raw = engine.raw_connection()  # VACUUM may not run inside a transaction
        try:
            raw.cursor().execute("VACUUM INTO ?", (str(directory / SQLITE_FILE),))
        finally:
            raw.close()
        return SQLITE_FILE
    url = _libpq_url(owner_url or engine.url.render_as_string(hide_password=False))
    result = subprocess.run([_tool("pg_dump"), "--format=custom", f"--file={directory / PG_FILE}", url],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise Conflict(f"pg_dump failed: {result.stderr.strip()[:500]}")
    return PG_FILE


def _is_empty(url: str) -> bool:
    engine = create_engine(url, poolclass=NullPool)
    try:
        return not inspect(engine).get_table_names()
    finally:
        engine.dispose()


def sqlite_file(database_url: str) -> Path | None:
    """The database file a SQLite URL names (None for PostgreSQL)."""
    url = make_url(database_url)
    return Path(url.database or "") if url.get_backend_name() == "sqlite" else None


def check_target(database_url: str, owner_url: str | None, backup_file: Path) -> None:
    """Refuse what ``load`` would refuse (a backup of the other kind of database, a target that is
    not empty), without writing anything: a restore asks this before it writes the keys."""
    target = sqlite_file(database_url)
    if target is not None:
        if backup_file.name != SQLITE_FILE:
            raise InvalidInput("this backup is of a PostgreSQL install; restore it into PostgreSQL")
        if target.exists():
            raise Conflict(f"{target} exists: restore into a new, empty install")
        return
    if backup_file.name != PG_FILE:
        raise InvalidInput("this backup is of a SQLite install; restore it into SQLite")
    if not _is_empty(owner_url or database_url):
        raise Conflict("the target database has tables: restore into a new, empty database")


def load(database_url: str, owner_url: str | None, backup_file: Path) -> None:
    """Restore a dump into an empty database (never over an existing install), all or nothing: a
    load that fails leaves the target as it was (no SQLite file, no PostgreSQL object)."""
    check_target(database_url, owner_url, backup_file)
    target = sqlite_file(database_url)
    if target is not None:
        # Copied beside the target, then renamed onto it: the target appears whole or not at all.
        partial = target.with_name(f"{target.name}.restoring")
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                shutil.copyfile(backup_file, partial)
                with partial.open("rb+") as handle:
                    os.fsync(handle.fileno())
                os.replace(partial, target)
            finally:
                partial.unlink(missing_ok=True)
        except OSError as error:
            raise Conflict(f"restoring the database into {target} failed: {error.strerror or error}") from None
        return
    url = owner_url or database_url
    # One transaction: an object that cannot be made (say, a name the target already uses for
    # something that is not a table) rolls back every table made before it.
    result = subprocess.run([_tool("pg_restore"), "--no-owner", "--single-transaction", "--exit-on-error",
                             f"--dbname={_libpq_url(url)}", str(backup_file)],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise Conflict(f"pg_restore failed, nothing restored: {result.stderr.strip()[:500]}")
