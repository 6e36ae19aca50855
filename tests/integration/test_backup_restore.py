"""A backup taken while labelers work restores into a new home with every answer acknowledged
before it began; the restored install verifies its audit log and serves the queue."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from labelvault.bootstrap import build_services, migrate
from labelvault.errors import Conflict, CryptoError, InvalidInput, QueueRefused
from labelvault.settings import Settings
from labelvault.workflow.backup import restore
from tests.conftest import DatabaseUrls, PostgresDatabases, World, owner_url
from tests.integration.queue_helpers import make_labelers, make_project

PASSPHRASE = "correct horse battery staple"


def test_an_online_backup_restores_every_acknowledged_answer(
    world: World, tmp_path: Path, postgres_databases: PostgresDatabases | None
) -> None:
    services = world.services
    project_id = make_project(world, "backed", tasks=400, overlap=1)
    labelers = make_labelers(world, 4)
    acknowledged: list[int] = []
    stop = threading.Event()

    def work(actor) -> None:  # type: ignore[no-untyped-def]
        while not stop.is_set():
            try:
                task = services.labeling.next_task(actor, world.client_a, project_id)
                receipt = services.labeling.submit(actor, world.client_a, project_id, task.task_id,
                                                   {"sentiment": "positive"})
                acknowledged.append(receipt.answer_id)
            except QueueRefused:
                return

    threads = [threading.Thread(target=work, args=(actor,)) for actor in labelers]
    for thread in threads:
        thread.start()
    while len(acknowledged) < 40:
        threading.Event().wait(0.01)
    before_backup = list(acknowledged)
    result = services.backups.backup(world.operator, tmp_path / "backup")  # labelers keep going
    stop.set()
    for thread in threads:
        thread.join()
    services.backups.export_keys(world.operator, tmp_path / "keys.sealed", PASSPHRASE)
    assert not (tmp_path / "backup" / "keys").exists() and result.files >= 1

    if services.engine.dialect.name == "sqlite":
        target = Settings(home=tmp_path / "restored", database_url=f"sqlite:///{tmp_path / 'restored.db'}")
        cleanup = None
    else:
        assert postgres_databases is not None
        owner, app = postgres_databases.create()
        target = Settings(home=tmp_path / "restored", database_url=app, migration_database_url=owner)
        cleanup = owner
    try:
        with pytest.raises(CryptoError):
            restore(target, tmp_path / "backup", keys_file=tmp_path / "keys.sealed", passphrase="not the passphrase")
        restore(target, tmp_path / "backup", keys_file=tmp_path / "keys.sealed", passphrase=PASSPHRASE)
        restored = build_services(target)
        try:
            migrate(restored)
            with restored.uow_factory.for_client(world.client_a) as uow:
                present = {a.id for a in uow.answers.iterate(project_id)}
            assert set(before_backup) <= present
            assert restored.audit.verify().ok
            fresh = labelers[0]
            task = restored.labeling.next_task(fresh, world.client_a, project_id)
            assert task.payload["text"].startswith("text number")
        finally:
            restored.close()
    finally:
        if cleanup and postgres_databases is not None:
            postgres_databases.drop(cleanup)


def test_a_damaged_backup_is_refused(world: World, tmp_path: Path) -> None:
    world.services.backups.backup(world.operator, tmp_path / "backup")
    database = next(p for p in (tmp_path / "backup").iterdir() if p.name.startswith("database"))
    with database.open("r+b") as handle:
        handle.seek(200)
        handle.write(b"\x00" * 16 if handle.read(16) != b"\x00" * 16 else b"\x01" * 16)
    target = Settings(home=tmp_path / "r", database_url=f"sqlite:///{tmp_path / f'{uuid.uuid4().hex}.db'}")
    with pytest.raises(InvalidInput, match="damaged"):
        restore(target, tmp_path / "backup", keys_file=None)


# --- A malformed manifest.json: refused naming it and the field, before anything is restored.


def _restore_writes(target: Settings) -> tuple[list[str], object]:
    """What a restore writes into ``target``: the files under its home (keys, files, a SQLite
    database) and its database (a SQLite file there or not; PostgreSQL's tables)."""
    written = sorted(p.relative_to(target.home).as_posix() for p in target.home.rglob("*")) \
        if target.home.exists() else []
    url = make_url(owner_url(target))
    if url.get_backend_name() == "sqlite":
        return written, Path(url.database or "").exists()
    engine = create_engine(url, poolclass=NullPool)
    try:
        return written, sorted(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _refused_leaving_nothing(target: Settings, backup: Path, keys: Path, pattern: str) -> InvalidInput:
    """Restore ``backup`` (with a good key export) into ``target``: refused with a message matching
    ``pattern``, and nothing written, neither keys nor database nor files."""
    before = _restore_writes(target)
    assert before in (([], False), ([], []))
    with pytest.raises(InvalidInput, match=pattern) as refused:
        restore(target, backup, keys_file=keys, passphrase=PASSPHRASE)
    assert _restore_writes(target) == before
    return refused.value


def _without_key(document: dict[str, object], key: str) -> dict[str, object]:
    return {k: v for k, v in document.items() if k != key}


def _with_file(document: dict[str, object], name: str, digest: object) -> dict[str, object]:
    return document | {"files": dict(document["files"]) | {name: digest}}  # type: ignore[call-overload]


_OTHER_FILE = {"database.sqlite": "database.dump", "database.dump": "database.sqlite"}


def _sha256_hex(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# manifest.json spoiled (None: not JSON) as (manifest, a file outside the backup, whose hash is right)
# -> manifest; what the refusal says ({db}: the backup's database file, {other}: the other kind's,
# {outside}: that file's path) and the field it names.
@pytest.mark.parametrize(("spoil", "message", "field"), [
    (None, "not a JSON object", None),
    (lambda manifest, outside: [manifest], "not a JSON object", None),
    (lambda manifest, outside: _without_key(manifest, "format"), "format is missing", "format"),
    (lambda manifest, outside: manifest | {"format": "labelvault-backup/v2"},
     "format is not labelvault-backup/v1", "format"),
    (lambda manifest, outside: _without_key(manifest, "files"), "files is missing", "files"),
    (lambda manifest, outside: manifest | {"files": sorted(manifest["files"])}, "files is not an object", "files"),
    (lambda manifest, outside: _with_file(manifest, "../outside.sqlite", _sha256_hex(outside)),
     "files: '../outside.sqlite' is not a path inside the backup", "files"),
    (lambda manifest, outside: _with_file(manifest, str(outside), _sha256_hex(outside)),
     "files: '{outside}' is not a path inside the backup", "files"),
    (lambda manifest, outside: _with_file(manifest, manifest["database_file"], 7),
     "files: the hash of {db} is not a SHA-256 in hex", "files.{db}"),
    (lambda manifest, outside: _without_key(manifest, "database_file"), "database_file is missing", "database_file"),
    (lambda manifest, outside: manifest | {"database_file": 7}, "database_file is not a text", "database_file"),
    (lambda manifest, outside: manifest | {"database_file": "../outside.sqlite"},
     "database_file: '../outside.sqlite' is not database.sqlite or database.dump", "database_file"),
    (lambda manifest, outside: manifest | {"database_file": str(outside)},
     "database_file: '{outside}' is not database.sqlite or database.dump", "database_file"),
    (lambda manifest, outside: manifest | {"database_file": _OTHER_FILE[manifest["database_file"]]},
     "database_file: {other} is not among the files", "database_file"),
    (lambda manifest, outside: _without_key(manifest, "database"), "database is missing", "database"),
    (lambda manifest, outside: manifest | {"database": "oracle"}, "database is not sqlite or postgresql", "database"),
])
def test_a_bad_manifest_is_refused_naming_it_and_the_field_before_anything_is_restored(
    world: World, tmp_path: Path, database_urls: DatabaseUrls,
    spoil: Callable[[dict[str, object], Path], object] | None, message: str, field: str | None,
) -> None:
    backup = tmp_path / "backup"
    world.services.backups.backup(world.operator, backup)
    world.services.backups.export_keys(world.operator, tmp_path / "keys.sealed", PASSPHRASE)
    manifest = json.loads((backup / "manifest.json").read_bytes())
    database_file = manifest["database_file"]
    outside = tmp_path / "outside.sqlite"  # a database file beside the backup, not of it
    shutil.copyfile(backup / database_file, outside)
    spoiled = b'{"files": {' if spoil is None else json.dumps(spoil(manifest, outside), indent=2).encode()
    (backup / "manifest.json").write_bytes(spoiled)
    target = Settings(home=tmp_path / "restored", database_url=database_urls.app,
                      migration_database_url=database_urls.owner)
    said = message.format(db=database_file, other=_OTHER_FILE[database_file], outside=outside)
    refused = _refused_leaving_nothing(target, backup, tmp_path / "keys.sealed",
                                       rf"^manifest\.json: {re.escape(said)}$")
    assert refused.details == {"file": "manifest.json",
                               "field": None if field is None else field.format(db=database_file)}


def test_a_backup_of_the_other_kind_of_database_is_refused_before_the_keys_are_written(
    world: World, tmp_path: Path
) -> None:
    """The database kind is asked before the key export is unsealed into the key directory: a
    refused restore can be run again as it should have been."""
    backup = tmp_path / "backup"
    world.services.backups.backup(world.operator, backup)
    world.services.backups.export_keys(world.operator, tmp_path / "keys.sealed", PASSPHRASE)
    if world.services.engine.dialect.name == "sqlite":  # never connected to: refused by its kind
        other, kind = "postgresql+psycopg://nobody@127.0.0.1:9/nothing", "SQLite"
    else:
        other, kind = f"sqlite:///{tmp_path / 'restored.db'}", "PostgreSQL"
    target = Settings(home=tmp_path / "restored", database_url=other)
    with pytest.raises(InvalidInput, match=f"^this backup is of a {kind} install"):
        restore(target, backup, keys_file=tmp_path / "keys.sealed", passphrase=PASSPHRASE)
    assert not target.home.exists() and not (tmp_path / "restored.db").exists()


# --- Only listed, hash-checked files are restored; a failed restore leaves nothing behind.


def _backup_with_a_file(world: World, tmp_path: Path) -> tuple[Path, Path, int, str]:
    """A backup (and its key export) of the world with an uploaded file: (backup, key export,
    project id, the file's id)."""
    project_id = make_project(world, "with-file", tasks=1)
    uploaded = world.services.files.upload(world.operator, world.client_a, project_id, "notes.txt", "text/plain",
                                           b"private notes")
    backup = tmp_path / "backup"
    world.services.backups.backup(world.operator, backup)
    world.services.backups.export_keys(world.operator, tmp_path / "keys.sealed", PASSPHRASE)
    return backup, tmp_path / "keys.sealed", project_id, uploaded.id


def _restored_file(target: Settings, world: World, project_id: int, file_id: str) -> bytes:
    """The file, downloaded from the restored install (migrated, its audit log verified)."""
    restored = build_services(target)
    try:
        migrate(restored)
        assert restored.audit.verify().ok
        return restored.files.download(world.operator, world.client_a, project_id, file_id)[1]
    finally:
        restored.close()


def test_a_file_the_manifest_does_not_list_is_refused_naming_it_before_anything_is_restored(
    world: World, tmp_path: Path, database_urls: DatabaseUrls
) -> None:
    backup, keys, project_id, file_id = _backup_with_a_file(world, tmp_path)
    listed = sorted(p.relative_to(backup).as_posix() for p in (backup / "files").rglob("*") if p.is_file())
    stray = backup / "files" / "planted" / "stray.bin"  # beside the listed ones, never hashed
    stray.parent.mkdir()
    stray.write_bytes(b"not from this install")
    target = Settings(home=tmp_path / "restored", database_url=database_urls.app,
                      migration_database_url=database_urls.owner)
    refused = _refused_leaving_nothing(
        target, backup, keys, r"^files/planted/stray\.bin in the backup is not listed in manifest\.json")
    assert refused.details == {"file": "files/planted/stray.bin", "field": None}

    stray.unlink()  # without it, the same restore goes through, and restores exactly the listed files
    restore(target, backup, keys_file=keys, passphrase=PASSPHRASE)
    assert sorted(f"files/{p.relative_to(target.files_dir).as_posix()}"
                  for p in target.files_dir.rglob("*") if p.is_file()) == listed
    assert _restored_file(target, world, project_id, file_id) == b"private notes"


def _a_database_step_that_fails(world: World, tmp_path: Path, database_urls: DatabaseUrls) -> tuple[Settings, Path]:
    """A target whose database step fails after its checks passed, and what to remove so that it
    does not: (target, obstacle). SQLite: the database's folder is a plain file. PostgreSQL: an
    empty database (no table), with a sequence named as one of the backup's indexes, which
    pg_restore makes after every table and its rows."""
    home = tmp_path / "restored"
    if database_urls.owner is None:
        obstacle = tmp_path / "taken"
        obstacle.write_text("a file where the database's folder should be")
        return Settings(home=home, database_url=f"sqlite:///{obstacle / 'restored.db'}"), obstacle
    source = create_engine(owner_url(world.services.settings), poolclass=NullPool)
    try:
        with source.connect() as connection:
            index = connection.exec_driver_sql(
                "SELECT indexname FROM pg_indexes WHERE schemaname = 'public' AND indexname NOT IN "
                "(SELECT conname FROM pg_constraint) ORDER BY indexname DESC LIMIT 1").scalar_one()
    finally:
        source.dispose()
    _run_as_owner(database_urls.owner, f'CREATE SEQUENCE "{index}"')
    return Settings(home=home, database_url=database_urls.app, migration_database_url=database_urls.owner), \
        Path(index)


def _run_as_owner(url: str, sql: str) -> None:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql(sql)
    finally:
        engine.dispose()


def test_a_restore_whose_database_step_fails_leaves_nothing_behind_and_can_run_again(
    world: World, tmp_path: Path, database_urls: DatabaseUrls
) -> None:
    """The keys and files are written before the database is loaded; when the load fails they are
    taken back, and the database is as it was (no SQLite file; no PostgreSQL table of a half load)."""
    backup, keys, project_id, file_id = _backup_with_a_file(world, tmp_path)
    target, obstacle = _a_database_step_that_fails(world, tmp_path, database_urls)
    before = _restore_writes(target)
    assert before in (([], False), ([], []))
    pattern = "^restoring the database into .* failed" if database_urls.owner is None else "^pg_restore failed"
    with pytest.raises(Conflict, match=pattern):
        restore(target, backup, keys_file=keys, passphrase=PASSPHRASE)
    assert _restore_writes(target) == before
    assert not target.home.exists()

    if database_urls.owner is None:
        obstacle.unlink()
    else:
        _run_as_owner(database_urls.owner, f'DROP SEQUENCE "{obstacle}"')
    restore(target, backup, keys_file=keys, passphrase=PASSPHRASE)  # the same restore, run again
    assert _restored_file(target, world, project_id, file_id) == b"private notes"
