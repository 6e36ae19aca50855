"""Consistent online copies of the database: SQLite's VACUUM INTO, PostgreSQL's pg_dump."""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from labelvault.crypto.keyring import sync_to_disk
from labelvault.errors import Conflict, InvalidInput

SQLITE_FILE = "database.sqlite"
PG_FILE = "database.dump"
NOT_EMPTY = "target_not_empty"  # the code of check_target's Conflict when the target holds a database


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


# What of the public schema pg_restore could collide with, as "kind name": relations (tables,
# views, sequences, indexes, standalone composite types), other types (enums, domains, ranges; not
# the array and row types made with another object) and routines. Objects an extension made are
# left out: they are not an install's, and the dump makes no extension.
_PUBLIC_OBJECTS = text("""
SELECT kind || ' ' || name FROM (
    SELECT CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'table' WHEN 'v' THEN 'view'
                WHEN 'm' THEN 'materialized view' WHEN 'S' THEN 'sequence' WHEN 'f' THEN 'foreign table'
                WHEN 'c' THEN 'type' ELSE 'index' END AS kind,
           quote_ident(c.relname) AS name, 'pg_class'::regclass AS catalog, c.oid AS oid,
           CASE c.relkind WHEN 'r' THEN 0 WHEN 'p' THEN 0 WHEN 'S' THEN 2 WHEN 'c' THEN 3
                          WHEN 'i' THEN 5 WHEN 'I' THEN 5 ELSE 1 END AS rank
      FROM pg_class c WHERE c.relnamespace = to_regnamespace('public')
    UNION ALL
    SELECT 'type', quote_ident(t.typname), 'pg_type'::regclass, t.oid, 3
      FROM pg_type t
     WHERE t.typnamespace = to_regnamespace('public') AND t.typrelid = 0
       AND NOT EXISTS (SELECT 1 FROM pg_type e WHERE e.typarray = t.oid)
    UNION ALL
    SELECT CASE p.prokind WHEN 'a' THEN 'aggregate' WHEN 'p' THEN 'procedure' ELSE 'function' END,
           quote_ident(p.proname) || '(' || pg_get_function_identity_arguments(p.oid) || ')',
           'pg_proc'::regclass, p.oid, 4
      FROM pg_proc p WHERE p.pronamespace = to_regnamespace('public')
) AS found
WHERE NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = found.catalog AND d.objid = found.oid
                                              AND d.deptype = 'e')
ORDER BY rank, kind, name
""")
_NAMED = 5  # objects named in the refusal; the rest are counted


def _database_named(url: URL) -> str:
    """The database a URL names, and where: for messages (never the password)."""
    return f'"{url.database}" on {url.host or "localhost"}:{url.port or 5432}'


def _database_missing(url: URL) -> bool:
    """Whether the server answers, on its maintenance database, that the one ``url`` names does not
    exist (False when that cannot be asked either: the connection's failure is then the answer)."""
    for maintenance in ("postgres", "template1"):
        engine = create_engine(url.set(database=maintenance), poolclass=NullPool)
        try:
            with engine.connect() as connection:
                return connection.execute(text("SELECT NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = :name)"),
                                          {"name": url.database}).scalar_one()
        except OperationalError:
            continue
        finally:
            engine.dispose()
    return False


def _public_objects(database_url: str) -> list[str]:
    """What the target database's public schema holds (``_PUBLIC_OBJECTS``). A database that does
    not exist, or cannot be reached, is refused naming it."""
    url = make_url(database_url)
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return list(connection.execute(_PUBLIC_OBJECTS).scalars())
    except OperationalError as error:
        if _database_missing(url):
            owner = f' OWNER "{url.username}"' if url.username else ""
            raise InvalidInput(
                f"the target database {_database_named(url)} does not exist: create it first, empty "
                f'(CREATE DATABASE "{url.database}"{owner}), then restore again',
                details={"database": url.database},
            ) from None
        reason = str(error.orig).strip().splitlines()[0] if error.orig is not None else str(error)
        raise Conflict(f"cannot connect to the target database {_database_named(url)}: {reason}",
                       details={"database": url.database}) from None
    finally:
        engine.dispose()


def sqlite_file(database_url: str) -> Path | None:
    """The database file a SQLite URL names (None for PostgreSQL)."""
    url = make_url(database_url)
    return Path(url.database or "") if url.get_backend_name() == "sqlite" else None


def check_target(database_url: str, owner_url: str | None, backup_file: Path) -> None:
    """Refuse what ``load`` would refuse (a backup of the other kind of database, a target that is
    not empty or, on PostgreSQL, does not exist), without writing anything: a restore asks this
    before it writes the keys."""
    target = sqlite_file(database_url)
    if target is not None:
        if backup_file.name != SQLITE_FILE:
            raise InvalidInput("this backup is of a PostgreSQL install; restore it into PostgreSQL")
        if target.exists():
            raise Conflict(f"{target} exists: restore into a new, empty install", code=NOT_EMPTY)
        return
    if backup_file.name != PG_FILE:
        raise InvalidInput("this backup is of a SQLite install; restore it into SQLite")
    found = _public_objects(owner_url or database_url)
    if found:
        more = f" (and {len(found) - _NAMED} more)" if len(found) > _NAMED else ""
        raise Conflict(f"the target database is not empty: its public schema holds {', '.join(found[:_NAMED])}"
                       f"{more}: restore into a new, empty database", details={"found": found}, code=NOT_EMPTY)


def _dying_with_us() -> Callable[[], None] | None:
    """Linux: a child's set-up that has the kernel kill it when this process dies. A restore killed
    (SIGKILL, the OOM killer) while pg_restore runs must not leave pg_restore to commit the database
    after it, without the keys and files that the restore had staged: killed with it, its
    transaction rolls back and the target stays empty. None elsewhere (no such call)."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here: the child only calls it
    parent = os.getpid()
    set_parent_death_signal = 1  # PR_SET_PDEATHSIG, <linux/prctl.h>

    def set_up() -> None:
        prctl(set_parent_death_signal, signal.SIGKILL)
        if os.getppid() != parent:  # died before the call: no signal will come
            os.kill(os.getpid(), signal.SIGKILL)

    return set_up


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
                sync_to_disk(partial)
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
                            capture_output=True, text=True, check=False, preexec_fn=_dying_with_us())
    if result.returncode != 0:
        raise Conflict(f"pg_restore failed, nothing restored: {result.stderr.strip()[:500]}")
