"""Backup and restore of a whole install: database, files and a manifest of hashes. Never keys.

A backup alone reveals nothing: client content is sealed under keys that live in the key
directory, which is exported separately (``labelvault keys export``, sealed under a passphrase).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy.engine import make_url

from labelvault.crypto.key_export import check_empty_keys_dir, export_keys, unseal_keys, write_keys
from labelvault.crypto.keyring import sync_to_disk
from labelvault.domain.access import Actor, UserPolicy
from labelvault.errors import Conflict, InvalidInput, NotFound
from labelvault.settings import Settings
from labelvault.storage import backup as database_backup
from labelvault.storage.files import FileStore, LocalFileStore, relative_key
from labelvault.storage.migrate import current_revision
from labelvault.storage.unit_of_work import UnitOfWorkFactory
from labelvault.workflow.files import file_store_for
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
    def __init__(self, uow_factory: UnitOfWorkFactory, settings: Settings, file_store: FileStore) -> None:
        self.uow_factory = uow_factory
        self.settings = settings
        self.file_store = file_store

    def backup(self, actor: Actor, directory: Path) -> BackupResult:
        UserPolicy.administer(actor)
        if directory.exists() and any(directory.iterdir()):
            raise Conflict(f"{directory} is not empty: back up into a new directory")
        directory.mkdir(parents=True, exist_ok=True)
        engine = self.uow_factory.engine
        revision = current_revision(engine)
        database_file = database_backup.dump(engine, self.settings.migration_database_url, directory)
        self._copy_files(directory / FILES)
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

    def _copy_files(self, folder: Path) -> None:
        """Every stored file into ``folder`` under its key, wherever the store keeps them (the local
        files folder or a bucket): after the database's dump, so every file it refers to is there."""
        for key in self.file_store.stored_keys():
            path = folder / relative_key(key)
            try:
                data = self.file_store.get(key)
            except NotFound:
                continue  # deleted since it was listed (its client offboarded): nothing refers to it now
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

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


STAGING_SUFFIX = ".restoring"  # keys.restoring, files.restoring: beside the folders they become


def staging_folder(destination: Path) -> Path:
    """Where a restore stages what becomes ``destination`` (its key directory, its files folder):
    beside it, under the folder it will be renamed to (links followed), so on the same file system."""
    real = destination.resolve()
    return real.with_name(f"{real.name}{STAGING_SUFFIX}")


def _check_renamable(destination: Path, what: str, instead: str) -> None:
    """A staged folder can be renamed onto ``destination``: it is absent, or an empty folder that is
    not a mount point (a rename cannot replace one: ``instead`` says what to do)."""
    real = destination.resolve()
    if real.is_mount():
        raise Conflict(f"{what} {destination} is a mount point: a restore stages it beside itself and renames it "
                       f"into place, which cannot replace a mount point; {instead}")
    if real.exists() and (not real.is_dir() or any(real.iterdir())):
        raise Conflict(f"{what} {destination} is not empty: restore into a new, empty install")


class _Staged:
    """What a restore writes, staged: each folder (keys, files) written under ``staging_folder`` of
    its destination, then renamed onto the destination once the database is loaded. Until then the
    install has none of it, so a restore stopped at any moment (even by SIGKILL) leaves no key in the
    key directory; a failure takes the staged folders back, with the folders made on their way."""

    def __init__(self, destinations: list[Path], database_target: Path | None) -> None:
        """``destinations``: the folders this restore will fill; ``database_target``: the SQLite
        file it will load (None: PostgreSQL). The folders on their way that do not exist yet are
        noted now, so that only those are removed again."""
        self.moves = {destination: staging_folder(destination) for destination in destinations}
        paths = [*self.moves.values(), *([database_target] if database_target is not None else [])]
        missing = {folder for path in paths for folder in path.parents if not folder.exists()}
        self.folders = sorted(missing, key=lambda folder: len(folder.parts), reverse=True)  # deepest first

    def stage_keys(self, destination: Path, keys: dict[str, bytes]) -> None:
        write_keys(keys, self.moves[destination])

    def stage_files(self, destination: Path, source: Path, files: dict[str, Path]) -> None:
        """Copy ``files`` (backup name -> path under ``destination``) into the staged folder."""
        staged = self.moves[destination]
        folders = {staged}
        for name, target in files.items():
            path = staged / target.relative_to(destination)
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            folders.update(folder for folder in path.parents if folder.is_relative_to(staged))
            shutil.copy2(source / name, path)
            sync_to_disk(path)
        staged.chmod(0o700)
        for folder in folders:
            sync_to_disk(folder)

    def take_back(self) -> None:
        for staged in self.moves.values():
            if staged.exists():
                shutil.rmtree(staged)
        for folder in self.folders:
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()

    def move_into_place(self) -> None:
        """Rename each staged folder onto its destination (absent or empty: checked before anything
        was staged), each rename atomic and synced."""
        for destination, staged in self.moves.items():
            real = destination.resolve()
            try:
                os.replace(staged, real)
                sync_to_disk(real.parent)
            except OSError as error:
                raise Conflict(f"the database was restored, but moving {staged} to {destination} failed "
                               f"({error.strerror or error}): move it there by hand") from None


class _ObjectsRestored:
    """The files of a restore into an object store (S3), which has no folder to stage and rename:
    each file is put under its key (a put is atomic), before the database is loaded. Refused up front
    if the store holds any object this backup would not write byte for byte, so a restore never
    overwrites or deletes what is not its own; objects a stopped run of the same restore left are
    exactly such objects, so that restore simply runs again. A failure takes back what it put."""

    def __init__(self, store: FileStore, directory: Path, files: dict[str, str], hashes: dict[str, str]) -> None:
        """``files``: backup name -> key; ``hashes``: backup name -> SHA-256 hex (the manifest's)."""
        self.store, self.directory, self.files = store, directory, files
        wanted = {key: hashes[name] for name, key in files.items()}
        self.present: set[str] = set()
        for key in self.store.stored_keys():
            if wanted.get(key) != hashlib.sha256(self.store.get(key)).hexdigest():
                raise Conflict(f"{store.describe()} holds {key}, which this backup does not hold: restore into a new, "
                               "empty install (its own bucket prefix), or remove what is there",
                               details={"file": key}, code=database_backup.NOT_EMPTY)
            self.present.add(key)  # the same bytes, left by a stopped run of this restore
        self.put_now: list[str] = []

    def put(self) -> None:
        for name, key in self.files.items():
            if key not in self.present:
                self.store.put(key, (self.directory / name).read_bytes())
                self.put_now.append(key)

    def take_back(self) -> None:
        for key in self.put_now:
            self.store.delete(key)


def _lock_name(resource: str) -> Path:
    digest = hashlib.sha256(resource.encode()).hexdigest()[:24]
    return Path(tempfile.gettempdir()) / f"labelvault-restore-{digest}.lock"


@contextmanager
def _restoring_into(resources: list[str]) -> Iterator[None]:
    """Hold, for the restore's length, a lock on each place it writes (key directory, files, the
    SQLite file or PostgreSQL database): a second restore into any of them is refused at once, before
    it could take the first one's staged folders for leftovers of a stopped restore and remove them.
    ``flock`` locks die with their process, so a killed restore holds nothing. The lock files are in
    the temporary folder, not in the install: a refused restore writes nothing there."""
    with ExitStack() as held:
        for resource in sorted(set(resources)):
            descriptor = os.open(_lock_name(resource), os.O_RDWR | os.O_CREAT, 0o600)
            held.callback(os.close, descriptor)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise Conflict(f"another restore into {resource} is running: let it finish (or stop it) first",
                               details={"restoring": resource}) from None
        yield


def _restore_resources(settings: Settings, store: FileStore) -> list[str]:
    """What a restore into these settings writes, each named as its lock is (a path or a URL)."""
    database = database_backup.sqlite_file(settings.resolved_database_url)
    return [str(settings.resolved_keys_dir.resolve()),
            str(store.root.resolve()) if isinstance(store, LocalFileStore) else store.describe(),
            str(database.resolve()) if database is not None else  # PostgreSQL: server and database
            make_url(settings.migration_database_url or settings.resolved_database_url).set(
                username=None, password=None).render_as_string()]


def _interrupted(leftover: list[Path], staged: dict[Path, Path]) -> str:
    """What to say of folders staged by an earlier restore when the database is not empty."""
    moves = "; ".join(f"move {folder} to {destination}" for destination, folder in staged.items()
                      if folder in leftover)
    return (f"{' and '.join(map(str, leftover))}: left by a restore that was stopped (its keys or files, not "
            f"in place), and the target database is not empty. If that restore loaded it, finish it: {moves}; "
            "then run labelvault upgrade and labelvault audit verify. If not, empty the database, remove what it "
            "left and restore again")


def restore(
    settings: Settings, directory: Path, *, keys_file: Path | None = None, passphrase: str | None = None
) -> str:
    """Rebuild an empty install from a backup (and its keys); returns the database kind.

    All or nothing: refused before anything is written (a bad backup, keys that do not open, a
    target that is not empty, another restore into it running), and a step that fails once writing
    began takes back what was written. Crash-safe: the keys and files are staged beside their folders
    and renamed into place only once the database is loaded, so a restore killed before then leaves
    no key or file in the install; the next restore into it clears what it staged (the database is
    empty: the load is all or nothing, so it never happened) and runs. Files go where the settings
    keep them: the files folder, or an S3 bucket (``_ObjectsRestored``).
    """
    manifest = verify_backup(directory)
    store = file_store_for(settings)
    with _restoring_into(_restore_resources(settings, store)):
        return _restore(settings, directory, manifest, store, keys_file, passphrase)


def _restore(settings: Settings, directory: Path, manifest: dict[str, Any], store: FileStore,
             keys_file: Path | None, passphrase: str | None) -> str:
    database_file = directory / manifest["database_file"]
    keys_dir = settings.resolved_keys_dir
    files_dir = store.root if isinstance(store, LocalFileStore) else None  # else an object store
    # What an earlier restore, stopped before it finished, staged and left.
    staged_before = {destination: staging_folder(destination)
                     for destination in (keys_dir, *([files_dir] if files_dir else []))}
    leftover = [staged for staged in staged_before.values() if staged.exists() or staged.is_symlink()]
    # Everything that would refuse the restore is asked before anything is written.
    try:
        database_backup.check_target(settings.resolved_database_url, settings.migration_database_url,
                                     database_file)
    except Conflict as error:
        if leftover and error.code == database_backup.NOT_EMPTY:
            raise Conflict(_interrupted(leftover, staged_before), details={"staged": [str(p) for p in leftover]},
                           code=database_backup.NOT_EMPTY) from None
        raise
    keys: dict[str, bytes] = {}
    if keys_file is not None:
        if passphrase is None:
            raise InvalidInput("restoring keys needs the passphrase they were exported with")
        keys = unseal_keys(keys_file, passphrase)  # opened in memory: nothing written yet
        check_empty_keys_dir(keys_dir)
        _check_renamable(keys_dir, "the key directory", "set LABELVAULT_KEYS_DIR to a folder inside it")
    elif not (keys_dir / "master.key").exists() and not settings.master_key:
        raise InvalidInput("no keys: pass --keys with a key export, or restore the key directory first")
    # Only what the manifest lists (and verify_backup checked) is restored, each under its store key.
    keys_of_files = {name: PurePosixPath(name).relative_to(FILES).as_posix()  # names checked by verify_backup
                     for name in sorted(manifest["files"]) if name.startswith(f"{FILES}/")}
    objects = None
    if files_dir is None:
        objects = _ObjectsRestored(store, directory, keys_of_files, manifest["files"])
    elif keys_of_files:
        _check_renamable(files_dir, "the files folder", "mount the volume on the home folder instead")
    # From here on the target changes. A leftover of a killed restore goes first: the database is
    # empty (checked above), so that restore never loaded it, and what it staged is of no install.
    for staged in leftover:
        if staged.is_dir() and not staged.is_symlink():
            shutil.rmtree(staged)
        else:
            staged.unlink()
    staged_files = files_dir if files_dir is not None and keys_of_files else None
    staging = _Staged([*([keys_dir] if keys else []), *([staged_files] if staged_files else [])],
                      database_backup.sqlite_file(settings.resolved_database_url))
    # The order: keys and files staged first, the database loaded, then the staged folders renamed
    # into place. The load is all or nothing by itself (SQLite: a copy renamed onto the target;
    # PostgreSQL: pg_restore in one transaction, killed with this process) and is the restore's
    # commit point: it cannot be taken back (dropping objects from a PostgreSQL database is not for a
    # restore to do), while the staged folders are ours and are removed whole. So whichever step
    # fails, or if the process dies before the load, the install has no key, file or database of
    # this restore, and the same restore can be run again once what made it fail is fixed.
    try:
        if keys:
            staging.stage_keys(keys_dir, keys)
        if staged_files is not None:
            staging.stage_files(staged_files, directory,
                                {name: staged_files / key for name, key in keys_of_files.items()})
        if objects is not None:
            objects.put()
        database_backup.load(settings.resolved_database_url, settings.migration_database_url, database_file)
    except BaseException:
        staging.take_back()
        if objects is not None:
            objects.take_back()
        raise
    staging.move_into_place()
    return str(manifest["database"])
