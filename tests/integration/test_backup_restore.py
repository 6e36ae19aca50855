"""A backup taken while labelers work restores into a new home with every answer acknowledged
before it began; the restored install verifies its audit log and serves the queue."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pytest

from labelvault.bootstrap import build_services, migrate
from labelvault.errors import CryptoError, InvalidInput, QueueRefused
from labelvault.settings import Settings
from labelvault.workflow.backup import restore
from tests.conftest import PostgresDatabases, World
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
