"""Backup and restore of a whole install: database, files and a manifest of hashes. Never keys.

A backup alone reveals nothing: client content is sealed under keys that live in the key
directory, which is exported separately (``labelvault keys export``, sealed under a passphrase).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from labelvault.crypto.key_export import export_keys, import_keys
from labelvault.domain.access import Actor, UserPolicy
from labelvault.errors import Conflict, InvalidInput
from labelvault.settings import Settings
from labelvault.storage import backup as database_backup
from labelvault.storage.migrate import current_revision
from labelvault.storage.unit_of_work import UnitOfWorkFactory
from labelvault.workflow.manifests import ManifestChecker

MANIFEST = "manifest.json"
FORMAT = "labelvault-backup/v1"
_MANIFEST = ManifestChecker(MANIFEST, "the backup")
_DATABASE_KINDS = ("sqlite", "postgresql")  # the engine's dialect name, as the backup writes it


@dataclass(frozen=True, slots=True)
class BackupResult:
    directory: Path
    database_file: str
    files: int
    revision: str | None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


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
            shutil.copytree(files_dir, directory / "files")
        entries = {p.relative_to(directory).as_posix(): _sha256(p) for p in sorted(directory.rglob("*")) if p.is_file()}
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


def verify_backup(directory: Path) -> dict[str, Any]:
    """Check the manifest (``_checked_manifest``) and every file's hash; returns the manifest."""
    try:
        data = (directory / MANIFEST).read_bytes()
    except FileNotFoundError:
        raise InvalidInput(f"{directory} is not a LabelVault backup: no {MANIFEST}") from None
    manifest = _checked_manifest(data)
    for name, expected in manifest["files"].items():
        path = directory / name
        if not path.is_file() or _sha256(path) != expected:
            raise InvalidInput(f"backup file {name} is missing or damaged (its hash does not match the manifest)")
    return manifest


def restore(
    settings: Settings, directory: Path, *, keys_file: Path | None = None, passphrase: str | None = None
) -> str:
    """Rebuild an empty install from a backup (and its keys); returns the database kind."""
    manifest = verify_backup(directory)
    database_file = directory / manifest["database_file"]
    # Everything that would refuse the restore is asked before the keys are written.
    database_backup.check_target(settings.resolved_database_url, settings.migration_database_url, database_file)
    keys_dir = settings.resolved_keys_dir
    if keys_file is not None:
        if passphrase is None:
            raise InvalidInput("restoring keys needs the passphrase they were exported with")
        import_keys(keys_file, keys_dir, passphrase)
    elif not (keys_dir / "master.key").exists() and not settings.master_key:
        raise InvalidInput("no keys: pass --keys with a key export, or restore the key directory first")
    database_backup.load(settings.resolved_database_url, settings.migration_database_url, database_file)
    if (directory / "files").is_dir():
        shutil.copytree(directory / "files", settings.files_dir, dirs_exist_ok=True)
    return str(manifest["database"])
