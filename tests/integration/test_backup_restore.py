"""A backup taken while labelers work restores into a new home with every answer acknowledged
before it began; the restored install verifies its audit log and serves the queue."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from labelvault.bootstrap import build_services, migrate
from labelvault.errors import Conflict, CryptoError, InvalidInput, QueueRefused
from labelvault.settings import Settings
from labelvault.storage.files import S3FileStore
from labelvault.workflow.backup import restore, staging_folder
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


def test_a_files_folder_that_is_not_empty_is_refused_naming_it_before_anything_is_restored(
    world: World, tmp_path: Path, database_urls: DatabaseUrls
) -> None:
    """The backup's files are staged beside the files folder and renamed onto it: it must be empty
    (as the key directory must), which is asked before anything is written."""
    backup, keys, project_id, file_id = _backup_with_a_file(world, tmp_path)
    target = Settings(home=tmp_path / "restored", database_url=database_urls.app,
                      migration_database_url=database_urls.owner)
    stray = target.files_dir / "stray.bin"
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"of no install")
    written = _restore_writes(target)
    with pytest.raises(Conflict, match=rf"^the files folder {re.escape(str(target.files_dir))} is not empty: "
                                       "restore into a new, empty install$"):
        restore(target, backup, keys_file=keys, passphrase=PASSPHRASE)
    assert _restore_writes(target) == written

    stray.unlink()  # an empty one is taken
    restore(target, backup, keys_file=keys, passphrase=PASSPHRASE)
    assert _restored_file(target, world, project_id, file_id) == b"private notes"


# A restore in a mount namespace of its own (``unshare``: no root needed where user namespaces are
# allowed, and the mount goes away with the process), with a tmpfs mounted on one of its folders.
_RESTORE_ONTO_A_MOUNT = """
import sys
from pathlib import Path
from labelvault.errors import Conflict
from labelvault.settings import Settings
from labelvault.workflow.backup import restore

backup, keys, passphrase = sys.argv[1:]
try:
    restore(Settings(), Path(backup), keys_file=Path(keys), passphrase=passphrase)
except Conflict as error:
    print(error)
    sys.exit(3)
"""


@pytest.mark.parametrize(("folder", "what", "instead"), [
    ("keys", "the key directory", "set LABELVAULT_KEYS_DIR to a folder inside it"),
    ("files", "the files folder", "mount the volume on the home folder instead"),
])
def test_a_key_directory_or_files_folder_that_is_a_mount_point_is_refused_before_anything_is_restored(
    world: World, tmp_path: Path, database_urls: DatabaseUrls, folder: str, what: str, instead: str
) -> None:
    """A staged folder is renamed into place, which cannot replace a mount point: asked up front."""
    unshare = shutil.which("unshare")
    if unshare is None or subprocess.run([unshare, "-rm", "true"], capture_output=True).returncode != 0:
        pytest.skip("needs unshare with user and mount namespaces (util-linux; allowed on CI)")
    backup, keys, _, _ = _backup_with_a_file(world, tmp_path)
    target = Settings(home=tmp_path / "restored", database_url=database_urls.app,
                      migration_database_url=database_urls.owner)
    mount_point = target.home / folder
    mount_point.mkdir(parents=True)
    script = f'mount -t tmpfs none "{mount_point}" && exec "$0" "$@"'
    before = _restore_writes(target)
    done = subprocess.run([unshare, "-rm", "sh", "-c", script, sys.executable, "-c", _RESTORE_ONTO_A_MOUNT,
                           str(backup), str(keys), PASSPHRASE], env=_environment(target), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 3, done.stderr
    assert done.stdout.strip() == (f"{what} {mount_point} is a mount point: a restore stages it beside itself and "
                                   f"renames it into place, which cannot replace a mount point; {instead}")
    assert _restore_writes(target) == before  # nothing staged beside it, no database


def _a_database_step_that_fails(world: World, tmp_path: Path, database_urls: DatabaseUrls) -> tuple[Settings, Path]:
    """A target whose database step fails after its checks passed, and what to remove so that it
    does not: (target, obstacle). SQLite: the database's folder is a plain file. PostgreSQL: an
    empty public schema, and an event trigger (its function in a schema of its own) that refuses the
    indexes, which pg_restore makes after every table and its rows."""
    home = tmp_path / "restored"
    if database_urls.owner is None:
        obstacle = tmp_path / "taken"
        obstacle.write_text("a file where the database's folder should be")
        return Settings(home=home, database_url=f"sqlite:///{obstacle / 'restored.db'}"), obstacle
    _run_as_owner(database_urls.owner, """
        CREATE SCHEMA obstacle;
        CREATE FUNCTION obstacle.no_index() RETURNS event_trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'no index in this database'; END $$;
        CREATE EVENT TRIGGER obstacle ON ddl_command_start WHEN TAG IN ('CREATE INDEX')
            EXECUTE FUNCTION obstacle.no_index();
    """)
    return Settings(home=home, database_url=database_urls.app, migration_database_url=database_urls.owner), \
        Path("obstacle")


def _remove_obstacle(database_urls: DatabaseUrls, obstacle: Path) -> None:
    """Take away what ``_a_database_step_that_fails`` put in the database step's way."""
    if database_urls.owner is None:
        obstacle.unlink()
    else:
        _run_as_owner(database_urls.owner, f"DROP EVENT TRIGGER {obstacle}; DROP SCHEMA {obstacle} CASCADE")


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
    """The keys and files are staged before the database is loaded; when the load fails they are
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

    _remove_obstacle(database_urls, obstacle)
    restore(target, backup, keys_file=keys, passphrase=PASSPHRASE)  # the same restore, run again
    assert _restored_file(target, world, project_id, file_id) == b"private notes"


# --- Crash safety: a restore killed at any moment leaves no key in the install, and runs again.

# A restore in a process of its own (the target from LABELVAULT_* in its environment), paused just
# before its database load ("before-load": the keys and files are staged by then) or just after it
# ("after-load"), where it writes the checkpoint file and sleeps for the test to SIGKILL it. The
# pause wraps the real load: nothing of the restore is replaced.
_PAUSED_RESTORE = """
import sys, time
from pathlib import Path
from labelvault.settings import Settings
from labelvault.storage.files import S3FileStore
from labelvault.storage import backup as database_backup
from labelvault.workflow.backup import restore

checkpoint, backup, keys, passphrase, when = sys.argv[1:]
real_load = database_backup.load

def paused_load(*args):
    if when == "after-load":
        real_load(*args)
    Path(checkpoint).write_text(when)
    time.sleep(600)
    if when == "before-load":
        real_load(*args)

database_backup.load = paused_load
restore(Settings(), Path(backup), keys_file=Path(keys), passphrase=passphrase)
"""


_TARGET_SETTINGS = ("migration_database_url", "file_store", "s3_bucket", "s3_prefix", "s3_endpoint_url", "s3_region",
                    "s3_access_key_id", "s3_secret_access_key")


def _environment(target: Settings) -> dict[str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("LABELVAULT_")}
    environment.update(LABELVAULT_HOME=str(target.home), LABELVAULT_DATABASE_URL=target.resolved_database_url)
    for name in _TARGET_SETTINGS:
        if (value := getattr(target, name)) is not None:
            environment[f"LABELVAULT_{name.upper()}"] = str(value)
    return environment


@contextmanager
def _paused_restore(target: Settings, backup: Path, keys: Path, checkpoint: Path, when: str) -> Iterator[None]:
    """Run ``_PAUSED_RESTORE`` into ``target``; once it is at its pause, hand over, then SIGKILL it."""
    process = subprocess.Popen([sys.executable, "-c", _PAUSED_RESTORE, str(checkpoint), str(backup), str(keys),
                                PASSPHRASE, when], env=_environment(target), stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not checkpoint.exists():
            assert process.poll() is None, f"the restore ended before its pause:\n{process.stderr.read().decode()}"
            assert time.monotonic() < deadline, "the restore never reached its pause"
            time.sleep(0.02)
        yield
    finally:
        process.kill()  # SIGKILL: no handler, no clean-up of its own
        process.wait()
        assert process.stderr is not None
        process.stderr.close()


def _killed_restore(target: Settings, backup: Path, keys: Path, checkpoint: Path, when: str) -> None:
    """Run ``_PAUSED_RESTORE`` into ``target`` and SIGKILL it at its pause."""
    with _paused_restore(target, backup, keys, checkpoint, when):
        pass


def _keys_in(keys_dir: Path) -> list[str]:
    return sorted(p.relative_to(keys_dir).as_posix() for p in keys_dir.rglob("*")) if keys_dir.exists() else []


def test_a_restore_killed_after_staging_its_keys_leaves_none_in_the_key_directory_and_runs_again(
    world: World, tmp_path: Path, database_urls: DatabaseUrls
) -> None:
    backup, keys, project_id, file_id = _backup_with_a_file(world, tmp_path)
    target = Settings(home=tmp_path / "restored", database_url=database_urls.app,
                      migration_database_url=database_urls.owner)
    _killed_restore(target, backup, keys, tmp_path / "paused", "before-load")

    # Killed with the keys and files staged, before the database: the install has none of them.
    assert _keys_in(target.resolved_keys_dir) == []
    assert not target.files_dir.exists()
    assert _restore_writes(target)[1] in (False, [])
    staged = staging_folder(target.resolved_keys_dir)
    assert (staged / "master.key").exists()  # where the keys were when it died: not a live key directory
    with pytest.raises(InvalidInput, match=r"^no keys: pass --keys"):  # nor taken for one by a restore
        restore(target, backup)

    restore(target, backup, keys_file=keys, passphrase=PASSPHRASE)  # the same restore, run again
    assert not staged.exists() and not staging_folder(target.files_dir).exists()
    assert "master.key" in _keys_in(target.resolved_keys_dir)
    assert _restored_file(target, world, project_id, file_id) == b"private notes"


def test_a_restore_killed_after_loading_the_database_is_reported_and_can_be_finished_by_hand(
    world: World, tmp_path: Path, database_urls: DatabaseUrls
) -> None:
    """Between the load and the renames that put the staged keys and files in place, the install has
    a database and no keys: a later restore refuses it, naming what was left and how to finish."""
    backup, keys, project_id, file_id = _backup_with_a_file(world, tmp_path)
    target = Settings(home=tmp_path / "restored", database_url=database_urls.app,
                      migration_database_url=database_urls.owner)
    _killed_restore(target, backup, keys, tmp_path / "paused", "after-load")
    assert _keys_in(target.resolved_keys_dir) == []
    staged_keys, staged_files = staging_folder(target.resolved_keys_dir), staging_folder(target.files_dir)
    left = _restore_writes(target)

    with pytest.raises(Conflict, match=rf"^{re.escape(f'{staged_keys} and {staged_files}')}: left by a restore "
                                       r"that was stopped .* the target database is not empty\. If that restore "
                                       rf"loaded it, finish it: move {re.escape(str(staged_keys))} to ") as refused:
        restore(target, backup, keys_file=keys, passphrase=PASSPHRASE)
    assert refused.value.details == {"staged": [str(staged_keys), str(staged_files)]}
    assert _restore_writes(target) == left  # refused: nothing cleared, nothing written

    staged_keys.rename(target.resolved_keys_dir)  # finished as the refusal says
    staged_files.rename(target.files_dir)
    assert _restored_file(target, world, project_id, file_id) == b"private notes"


def test_a_second_restore_into_an_install_while_one_runs_is_refused_and_takes_nothing_of_the_first(
    world: World, tmp_path: Path, database_urls: DatabaseUrls
) -> None:
    """Without a lock the second restore would take the first one's staged keys for the leftovers of a
    stopped restore (its database is still empty) and remove them under it."""
    backup, keys, project_id, file_id = _backup_with_a_file(world, tmp_path)
    target = Settings(home=tmp_path / "restored", database_url=database_urls.app,
                      migration_database_url=database_urls.owner)
    staged = staging_folder(target.resolved_keys_dir)
    with _paused_restore(target, backup, keys, tmp_path / "paused", "before-load"):
        first_keys = _keys_in(staged)
        assert "master.key" in first_keys
        with pytest.raises(Conflict, match=r"^another restore into .+ is running: let it finish \(or stop it\) first$"):
            restore(target, backup, keys_file=keys, passphrase=PASSPHRASE)
        assert _keys_in(staged) == first_keys  # the running restore's staging, untouched
        assert _keys_in(target.resolved_keys_dir) == []
    # The first one was killed at its pause: its locks went with it, and a restore runs again.
    restore(target, backup, keys_file=keys, passphrase=PASSPHRASE)
    assert _restored_file(target, world, project_id, file_id) == b"private notes"


def _children(pid: int) -> dict[int, str]:
    """The processes whose parent is ``pid``, with their command names (Linux /proc)."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)
            name = fields[0].split("(", 1)[1]
            if int(fields[1].split()[1]) == pid:
                found[int(stat.parent.name)] = name
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_a_restore_killed_while_pg_restore_runs_takes_pg_restore_with_it(
    world: World, tmp_path: Path, database_urls: DatabaseUrls
) -> None:
    """pg_restore runs in a process of its own: left running after the restore died, it would commit
    the database later, without the keys the restore had staged. It dies with the restore, and its
    transaction with it."""
    if database_urls.owner is None:
        pytest.skip("pg_restore is PostgreSQL's")
    if not sys.platform.startswith("linux"):
        pytest.skip("the parent-death signal is Linux's")
    backup, keys, project_id, file_id = _backup_with_a_file(world, tmp_path)
    target = Settings(home=tmp_path / "restored", database_url=database_urls.app,
                      migration_database_url=database_urls.owner)
    # An open transaction that made a table of the backup's name holds pg_restore up when it makes
    # that table, until the transaction ends: the restore is then surely killed during pg_restore.
    blocker = create_engine(database_urls.owner, poolclass=NullPool)
    try:
        with blocker.connect() as connection:
            held = connection.begin()
            connection.exec_driver_sql("CREATE TABLE public.alembic_version (held integer)")
            script = ("import sys; from pathlib import Path; from labelvault.settings import Settings; "
                      "from labelvault.workflow.backup import restore; "
                      "restore(Settings(), Path(sys.argv[1]), keys_file=Path(sys.argv[2]), passphrase=sys.argv[3])")
            process = subprocess.Popen([sys.executable, "-c", script, str(backup), str(keys), PASSPHRASE],
                                       env=_environment(target), stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + 120
            while not (loading := [pid for pid, name in _children(process.pid).items() if name == "pg_restore"]):
                assert process.poll() is None and time.monotonic() < deadline, "pg_restore never ran"
                time.sleep(0.02)
            process.kill()
            process.wait()
            deadline = time.monotonic() + 30
            while _alive(loading[0]):
                assert time.monotonic() < deadline, "pg_restore outlived the restore that ran it"
                time.sleep(0.02)
            held.rollback()
    finally:
        blocker.dispose()
    engine = create_engine(database_urls.owner, poolclass=NullPool)
    try:
        deadline = time.monotonic() + 30  # its server process ends once it finds its client gone
        while True:
            with engine.connect() as connection:
                loaders = connection.exec_driver_sql(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'pg_restore'").scalar_one()
            if not loaders:
                break
            assert time.monotonic() < deadline, "pg_restore's session outlived it"
            time.sleep(0.05)
    finally:
        engine.dispose()
    assert _restore_writes(target)[1] == []  # its transaction rolled back: the database is empty
    assert _keys_in(target.resolved_keys_dir) == []

    restore(target, backup, keys_file=keys, passphrase=PASSPHRASE)
    assert _restored_file(target, world, project_id, file_id) == b"private notes"


# --- A PostgreSQL target is checked before anything is written: it exists, and is empty.


# What the target's public schema holds (SQL run as its owner), and how the refusal names it.
@pytest.mark.parametrize(("made", "named"), [
    ("CREATE SEQUENCE invoice_numbers", "sequence invoice_numbers"),
    ("CREATE TYPE mood AS ENUM ('happy', 'sad')", "type mood"),
    ("CREATE VIEW answers AS SELECT 1 AS id", "view answers"),
    ("CREATE FUNCTION tasks_requeued() RETURNS integer LANGUAGE sql AS 'SELECT 1'", "function tasks_requeued()"),
    ("CREATE TYPE point2 AS (x integer, y integer)", "type point2"),
    ("CREATE DOMAIN positive AS integer CHECK (VALUE > 0)", "type positive"),
    # Named as one of the backup's indexes, which pg_restore would make last, after every table.
    ('CREATE SEQUENCE "ix_webhook_endpoints_project_id"', "sequence ix_webhook_endpoints_project_id"),
    ("CREATE TABLE notes (id integer); CREATE SEQUENCE s1; CREATE SEQUENCE s2; CREATE SEQUENCE s3; "
     "CREATE SEQUENCE s4; CREATE SEQUENCE s5",
     "table notes, sequence s1, sequence s2, sequence s3, sequence s4 (and 1 more)"),
])
def test_a_postgresql_target_whose_public_schema_is_not_empty_is_refused_naming_what_it_holds(
    world: World, tmp_path: Path, database_urls: DatabaseUrls, made: str, named: str
) -> None:
    """Not only tables: any object pg_restore could collide with is refused, before anything is
    written (the keys neither), where it would have failed halfway."""
    if database_urls.owner is None:
        pytest.skip("a PostgreSQL database's schema")
    backup = tmp_path / "backup"
    world.services.backups.backup(world.operator, backup)
    world.services.backups.export_keys(world.operator, tmp_path / "keys.sealed", PASSPHRASE)
    _run_as_owner(database_urls.owner, made)
    target = Settings(home=tmp_path / "restored", database_url=database_urls.app,
                      migration_database_url=database_urls.owner)
    with pytest.raises(Conflict, match=rf"^the target database is not empty: its public schema holds "
                                       rf"{re.escape(named)}: restore into a new, empty database$"):
        restore(target, backup, keys_file=tmp_path / "keys.sealed", passphrase=PASSPHRASE)
    assert not target.home.exists()


def test_a_postgresql_target_with_an_extension_only_is_empty_enough(
    world: World, tmp_path: Path, database_urls: DatabaseUrls
) -> None:
    """What an extension made in the public schema is not an install's, and the backup makes none."""
    if database_urls.owner is None:
        pytest.skip("a PostgreSQL database's schema")
    backup, keys, project_id, file_id = _backup_with_a_file(world, tmp_path)
    _run_as_owner(database_urls.owner, "CREATE EXTENSION IF NOT EXISTS pgcrypto SCHEMA public")
    target = Settings(home=tmp_path / "restored", database_url=database_urls.app,
                      migration_database_url=database_urls.owner)
    restore(target, backup, keys_file=keys, passphrase=PASSPHRASE)
    assert _restored_file(target, world, project_id, file_id) == b"private notes"


def test_a_postgresql_target_database_that_does_not_exist_is_refused_naming_it_and_saying_to_create_it(
    world: World, tmp_path: Path, database_urls: DatabaseUrls
) -> None:
    if database_urls.owner is None:
        pytest.skip("a PostgreSQL server's databases")
    backup = tmp_path / "backup"
    world.services.backups.backup(world.operator, backup)
    world.services.backups.export_keys(world.operator, tmp_path / "keys.sealed", PASSPHRASE)
    missing = f"lv_missing_{uuid.uuid4().hex[:10]}"
    owner, app = (make_url(url).set(database=missing).render_as_string(hide_password=False)
                  for url in (database_urls.owner, database_urls.app))
    target = Settings(home=tmp_path / "restored", database_url=app, migration_database_url=owner)
    url = make_url(owner)
    said = (f'the target database "{missing}" on {url.host}:{url.port}'
            f' does not exist: create it first, empty (CREATE DATABASE "{missing}" OWNER "{url.username}"), '
            "then restore again")
    with pytest.raises(InvalidInput, match=f"^{re.escape(said)}$") as refused:
        restore(target, backup, keys_file=tmp_path / "keys.sealed", passphrase=PASSPHRASE)
    assert refused.value.details == {"database": missing}
    assert not target.home.exists()

    # The command says it in one line, exits 1, and writes nothing either.
    passphrase = tmp_path / "passphrase"
    passphrase.write_text(PASSPHRASE + "\n")
    command = subprocess.run(
        [sys.executable, "-m", "labelvault.cli.main", "restore", "--from", str(backup), "--keys",
         str(tmp_path / "keys.sealed"), "--passphrase-file", str(passphrase)],
        env=_environment(target), capture_output=True, text=True, timeout=120, check=False)
    assert command.returncode == 1
    assert command.stderr.strip() == f"error: {said}"
    assert not target.home.exists()


# --- Files kept in an S3-compatible store (moto's server): in the backup, restored into the target's bucket.

BUCKET = "labelvault-backup-test"


def _in_s3(settings: Settings, endpoint: str, prefix: str) -> Settings:
    return settings.model_copy(update={
        "file_store": "s3", "s3_bucket": BUCKET, "s3_prefix": prefix, "s3_endpoint_url": endpoint,
        "s3_region": "us-east-1", "s3_access_key_id": "test", "s3_secret_access_key": "test"})


def _bucket(endpoint: str) -> S3FileStore:
    """The test bucket, made on first use (a prefix per test keeps the tests apart)."""
    store = S3FileStore(BUCKET, "", endpoint_url=endpoint, region="us-east-1", access_key="test", secret_key="test")
    with suppress(store.client.exceptions.BucketAlreadyOwnedByYou):
        store.client.create_bucket(Bucket=BUCKET)
    return store


def _objects(endpoint: str, prefix: str) -> dict[str, bytes]:
    """Every object under ``prefix/`` of the test bucket: key (without the prefix) -> bytes."""
    store = _bucket(endpoint)
    return {key[len(prefix) + 1:]: store.get(key) for key in store.stored_keys() if key.startswith(f"{prefix}/")}


def _s3_backup_with_a_file(world: World, tmp_path: Path, endpoint: str) -> tuple[Path, Path, int, str, str]:
    """Like ``_backup_with_a_file``, from an install whose files are in the bucket: (backup, key export,
    project id, the file's id, the source's prefix)."""
    _bucket(endpoint)
    prefix = f"source-{uuid.uuid4().hex[:8]}"
    source = build_services(_in_s3(world.services.settings, endpoint, prefix))  # the world's database and keys
    try:
        project_id = make_project(world, "files-in-s3", tasks=1)
        uploaded = source.files.upload(world.operator, world.client_a, project_id, "notes.txt", "text/plain",
                                       b"private notes")
        source.backups.backup(world.operator, tmp_path / "backup")
    finally:
        source.close()
    world.services.backups.export_keys(world.operator, tmp_path / "keys.sealed", PASSPHRASE)
    return tmp_path / "backup", tmp_path / "keys.sealed", project_id, uploaded.id, prefix


def _s3_target(tmp_path: Path, database_urls: DatabaseUrls, endpoint: str) -> Settings:
    return _in_s3(Settings(home=tmp_path / "restored", database_url=database_urls.app,
                           migration_database_url=database_urls.owner), endpoint, f"target-{uuid.uuid4().hex[:8]}")


def test_files_kept_in_s3_are_in_the_backup_and_restored_into_the_targets_bucket(
    world: World, tmp_path: Path, database_urls: DatabaseUrls, s3_endpoint: str
) -> None:
    backup, keys, project_id, file_id, prefix = _s3_backup_with_a_file(world, tmp_path, s3_endpoint)
    stored = _objects(s3_endpoint, prefix)
    assert list(stored) == [f"client-{world.client_a}/{file_id}"]
    in_backup = backup / "files" / f"client-{world.client_a}" / file_id
    assert in_backup.read_bytes() == stored[f"client-{world.client_a}/{file_id}"]  # the sealed bytes, as stored
    assert b"private notes" not in in_backup.read_bytes()
    assert f"files/client-{world.client_a}/{file_id}" in json.loads((backup / "manifest.json").read_text())["files"]

    target = _s3_target(tmp_path, database_urls, s3_endpoint)
    restore(target, backup, keys_file=keys, passphrase=PASSPHRASE)
    assert _objects(s3_endpoint, target.s3_prefix) == stored
    assert not target.files_dir.exists()  # nothing of the files written to the local folder
    assert _restored_file(target, world, project_id, file_id) == b"private notes"


def test_an_s3_target_holding_objects_this_backup_does_not_hold_is_refused_naming_one_before_anything_is_restored(
    world: World, tmp_path: Path, database_urls: DatabaseUrls, s3_endpoint: str
) -> None:
    """A restore never overwrites or deletes what is not its own: an object of another install, or
    other bytes under a key the backup holds, refuse it before anything is written."""
    backup, keys, project_id, file_id, _ = _s3_backup_with_a_file(world, tmp_path, s3_endpoint)
    target = _s3_target(tmp_path, database_urls, s3_endpoint)
    bucket = _bucket(s3_endpoint)
    own_key = f"client-{world.client_a}/{file_id}"
    for stray_key, data in ((f"client-{world.client_a}/{file_id}", b"other bytes"), ("client-99/stray", b"x")):
        bucket.put(f"{target.s3_prefix}/{stray_key}", data)
        before = _restore_writes(target)
        with pytest.raises(Conflict, match=rf"^s3://{BUCKET}/{target.s3_prefix}/ holds {re.escape(stray_key)}, which "
                                           "this backup does not hold: restore into a new, empty install") as refused:
            restore(target, backup, keys_file=keys, passphrase=PASSPHRASE)
        assert refused.value.details == {"file": stray_key}
        assert _restore_writes(target) == before and before in (([], False), ([], []))
        assert _objects(s3_endpoint, target.s3_prefix) == {stray_key: data}
        bucket.delete(f"{target.s3_prefix}/{stray_key}")

    restore(target, backup, keys_file=keys, passphrase=PASSPHRASE)
    assert list(_objects(s3_endpoint, target.s3_prefix)) == [own_key]
    assert _restored_file(target, world, project_id, file_id) == b"private notes"


def test_an_s3_restore_whose_database_step_fails_takes_its_objects_back_and_can_run_again(
    world: World, tmp_path: Path, database_urls: DatabaseUrls, s3_endpoint: str
) -> None:
    backup, keys, project_id, file_id, _ = _s3_backup_with_a_file(world, tmp_path, s3_endpoint)
    failing, obstacle = _a_database_step_that_fails(world, tmp_path, database_urls)
    target = _in_s3(failing, s3_endpoint, f"target-{uuid.uuid4().hex[:8]}")
    with pytest.raises(Conflict, match=r"^restoring the database into .* failed|^pg_restore failed"):
        restore(target, backup, keys_file=keys, passphrase=PASSPHRASE)
    assert _objects(s3_endpoint, target.s3_prefix) == {}
    assert _keys_in(target.resolved_keys_dir) == []

    _remove_obstacle(database_urls, obstacle)
    restore(target, backup, keys_file=keys, passphrase=PASSPHRASE)
    assert _restored_file(target, world, project_id, file_id) == b"private notes"


def test_an_s3_restore_killed_after_putting_its_files_runs_again_over_what_it_put(
    world: World, tmp_path: Path, database_urls: DatabaseUrls, s3_endpoint: str
) -> None:
    """Objects a stopped restore put are byte for byte the backup's: the same restore takes them as its own."""
    backup, keys, project_id, file_id, prefix = _s3_backup_with_a_file(world, tmp_path, s3_endpoint)
    target = _s3_target(tmp_path, database_urls, s3_endpoint)
    _killed_restore(target, backup, keys, tmp_path / "paused", "before-load")
    left = _objects(s3_endpoint, target.s3_prefix)
    assert left == _objects(s3_endpoint, prefix) and left  # put before the database, which is still empty
    assert _keys_in(target.resolved_keys_dir) == []

    restore(target, backup, keys_file=keys, passphrase=PASSPHRASE)
    assert _objects(s3_endpoint, target.s3_prefix) == left
    assert _restored_file(target, world, project_id, file_id) == b"private notes"
