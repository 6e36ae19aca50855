"""Backup and restore of a whole install: database, files and a manifest of hashes. Never keys.

A backup alone reveals nothing: client content is sealed under keys that live in the key
directory, which is exported separately (``labelvault keys export``, sealed under a passphrase).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from labelvault.crypto.key_export import check_empty_keys_dir, export_keys, unseal_keys, write_keys
from labelvault.domain.access import Actor, UserPolicy
from labelvault.errors import Conflict, InvalidInput
from labelvault.settings import Settings
from labelvault.storage import backup as database_backup
from labelvault.storage.migrate import current_revision
from labelvault.storage.unit_of_work import UnitOfWorkFactory
from labelvault.workflow.manifests import ManifestChecker, file_sha256

MANIFEST = "manifest.json"
FILES = "files"  # the install's uploaded files, under this folder of the backup
FORMAT = "labelvault-backup/v1"
_MANIFEST = ManifestChecker(MANIFEST, "the backup")
_DATABASE_KINDS = ("sqlite", "postgresql")  # the engine's dialect name, as the backup writes it


@dataclass(frozen=True, slots=True)
class BackupResult:
    directory: Path
    database_file: str
    files: int
    revision: str | None


class BackupService:
    def __init__(self, uow_factory: UnitOfWorkFactory, settings: Settings) -> None:
        self.uow_factory = uow_factory
        self.settings = settings

    def backup(self, actor: Actor, directory: Path) -> BackupResult:
        UserPolicy.administer(actor)
        if directory.exists() and any(directory.iterdir()):
            raise Conflict(f"{directory} is not empty: back up into a new directory")
        directory.mkdir(parents=True, exist_ok=True)
        engine = self.uow_factory.engine
        revision = current_revision(engine)
        database_file = database_backup.dump(engine, self.settings.migration_database_url, directory)
        files_dir = self.settings.files_dir
        if files_dir.exists():
            shutil.copytree(files_dir, directory / FILES)
        entries = {p.relative_to(directory).as_posix(): file_sha256(p)
                   for p in sorted(directory.rglob("*")) if p.is_file()}
        manifest = {
            "format": FORMAT,
            "created_at": datetime.now(UTC).isoformat(),
            "database": engine.dialect.name,
            "database_file": database_file,
            "revision": revision,
            "keys_included": False,
            "files": entries,
        }
        (directory / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
        return BackupResult(directory, database_file, len(entries), revision)

    def export_keys(self, actor: Actor, target: Path, passphrase: str) -> int:
        """Seal the key directory under a passphrase into ``target``; returns the key files sealed."""
        UserPolicy.administer(actor)
        return export_keys(self.settings.resolved_keys_dir, target, passphrase)


def _checked_manifest(data: bytes) -> dict[str, Any]:
    """manifest.json, checked for what the restore reads of it (its format, the file index, the
    database file and kind): a malformed one is refused naming the file and the field."""
    manifest = _MANIFEST.load(data)
    if _MANIFEST.field(manifest, "format", str) != FORMAT:
        raise _MANIFEST.refuse("format", f"format is not {FORMAT}")
    files = _MANIFEST.files(manifest)
    database_file = _MANIFEST.field(manifest, "database_file", str)
    if database_file not in (database_backup.SQLITE_FILE, database_backup.PG_FILE):
        raise _MANIFEST.refuse("database_file", f"database_file: {database_file!r} is not "
                                                f"{database_backup.SQLITE_FILE} or {database_backup.PG_FILE}")
    if database_file not in files:
        raise _MANIFEST.refuse("database_file", f"database_file: {database_file} is not among the files")
    if _MANIFEST.field(manifest, "database", str) not in _DATABASE_KINDS:
        raise _MANIFEST.refuse("database", f"database is not {' or '.join(_DATABASE_KINDS)}")
    return manifest


def _unlisted_file(directory: Path, listed: dict[str, str]) -> str | None:
    """A file under the backup's files folder that the manifest does not list (a link too, to a
    file or a folder: links are not followed), as its path in the backup; None if there is none."""
    for folder, folders, names in os.walk(directory / FILES):
        here = Path(folder)
        for name in sorted([*names, *(n for n in folders if (here / n).is_symlink())]):
            path = (here / name).relative_to(directory).as_posix()
            if path not in listed:
                return path
    return None


def verify_backup(directory: Path) -> dict[str, Any]:
    """Check the manifest (``_checked_manifest``), every file's hash, and that the files folder holds
    nothing the manifest does not list (it would be restored unchecked); returns the manifest."""
    try:
        data = (directory / MANIFEST).read_bytes()
    except FileNotFoundError:
        raise InvalidInput(f"{directory} is not a LabelVault backup: no {MANIFEST}") from None
    manifest = _checked_manifest(data)
    for name, expected in manifest["files"].items():
        _MANIFEST.check_file(directory, name, expected)
    unlisted = _unlisted_file(directory, manifest["files"])
    if unlisted is not None:
        raise InvalidInput(f"{unlisted} in the backup is not listed in {MANIFEST}, so its hash cannot be checked: "
                           "remove it, or take the backup again", details={"file": unlisted, "field": None})
    return manifest


class _Written:
    """What a restore writes into the target's folders, to be taken back if a later step fails."""

    def __init__(self, paths: list[Path]) -> None:
        """``paths``: every file the restore may write; the folders on their way that do not exist
        yet are noted now, so that only those are removed again."""
        self.files: list[Path] = []
        missing = {folder for path in paths for folder in path.parents if not folder.exists()}
        self.folders = sorted(missing, key=lambda folder: len(folder.parts), reverse=True)  # deepest first

    def take_back(self) -> None:
        for path in reversed(self.files):
            path.unlink(missing_ok=True)
        for folder in self.folders:
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()


def restore(
    settings: Settings, directory: Path, *, keys_file: Path | None = None, passphrase: str | None = None
) -> str:
    """Rebuild an empty install from a backup (and its keys); returns the database kind.

    All or nothing: refused before anything is written (a bad backup, keys that do not open, a
    target that is not empty), and a step that fails once writing began takes back what was written.
    """
    manifest = verify_backup(directory)
    database_file = directory / manifest["database_file"]
    # Everything that would refuse the restore is asked before anything is written.
    database_backup.check_target(settings.resolved_database_url, settings.migration_database_url, database_file)
    keys_dir = settings.resolved_keys_dir
    keys: dict[str, bytes] = {}
    if keys_file is not None:
        if passphrase is None:
            raise InvalidInput("restoring keys needs the passphrase they were exported with")
        keys = unseal_keys(keys_file, passphrase)  # opened in memory: nothing written yet
        check_empty_keys_dir(keys_dir)
    elif not (keys_dir / "master.key").exists() and not settings.master_key:
        raise InvalidInput("no keys: pass --keys with a key export, or restore the key directory first")
    # Only what the manifest lists (and verify_backup checked) is restored.
    files = {name: settings.files_dir / Path(name).relative_to(FILES)
             for name in sorted(manifest["files"]) if name.startswith(f"{FILES}/")}
    for name, target in files.items():
        if target.exists() or target.is_symlink():
            raise Conflict(f"{target} exists: restore into a new, empty install (backup file {name})")
    database_target = database_backup.sqlite_file(settings.resolved_database_url)
    written = _Written([*(keys_dir / name for name in keys), *files.values(),
                        *([database_target] if database_target is not None else [])])
    # The order: keys and files first, the database last. The database load is all or nothing by
    # itself (SQLite: a copy renamed onto the target; PostgreSQL: pg_restore in one transaction), and
    # once it succeeded it cannot be taken back (dropping objects from a PostgreSQL database is not
    # for a restore to do); keys and files are ours, written into an empty key directory and to
    # paths that did not exist, so they can be removed exactly. So whichever step fails, the target
    # is left as it was, and the same restore can be run again once what made it fail is fixed.
    try:
        if keys:
            written.files.extend(keys_dir / name for name in keys)
            write_keys(keys, keys_dir)
        for name, target in files.items():
            target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            written.files.append(target)
            shutil.copy2(directory / name, target)
        database_backup.load(settings.resolved_database_url, settings.migration_database_url, database_file)
    except BaseException:
        written.take_back()
        raise
    return str(manifest["database"])
