"""Client content is ciphertext at rest, bound to its client and row."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import text, update

from labelvault.errors import CryptoError
from labelvault.storage.models import Task
from tests.conftest import World
from tests.integration.queue_helpers import LABEL_SCHEMA

MARKER = "PLAINTEXT-MARKER-7f3a9c"
ANSWER_MARKER = "ANSWER-MARKER-0b41d2"
SKIP_MARKER = "SKIP-MARKER-5e8d10"
BONUS_MARKER = "BONUS-MARKER-c27e4a"


@pytest.fixture
def sqlite_world(world: World) -> World:
    if world.services.engine.dialect.name != "sqlite":
        pytest.skip("reads the SQLite files directly")
    return world


def test_the_database_files_hold_no_plaintext_of_tasks_answers_skip_reasons_or_bonus_notes(sqlite_world: World) -> None:
    world = sqlite_world
    services = world.services
    schema = {
        "fields": [{"name": "text", "kind": "text"}],
        "questions": [{"name": "comment", "type": "text", "max_length": 200}],
    }
    project = services.projects.create(world.operator, world.client_a, slug="secret", name="s", schema=schema)
    rows = [
        {
            "external_id": f"e{i}",
            "data": {"text": f"{MARKER} task {i}"},
            "metadata": {"note": MARKER},
            "suggestions": [{"model": "m", "answer": {"comment": MARKER}, "score": 0.9}],
        }
        for i in range(20)
    ]
    services.imports.import_rows(world.operator, world.client_a, project.id, rows)
    labeler = world.actors["labeler_a"]
    task = services.labeling.next_task(labeler, world.client_a, project.id)
    assert MARKER in task.payload["text"]  # the application reads it back
    services.labeling.skip(labeler, world.client_a, project.id, task.task_id, reason=f"unreadable {SKIP_MARKER}")
    services.labeling.submit(
        labeler,
        world.client_a,
        project.id,
        services.labeling.next_task(labeler, world.client_a, project.id).task_id,
        {"comment": f"answer {ANSWER_MARKER}"},
    )
    services.bonuses.grant(world.operator, world.client_a, project.id, labeler.username, 100, f"for {BONUS_MARKER}")
    database = Path(services.engine.url.database or "")
    files = [p for p in services.settings.home.rglob("*") if p.is_file() and "keys" not in p.parts]
    files += [p for p in database.parent.glob(database.name + "*") if p.is_file()]
    assert database in files and any(p.name.endswith("-wal") for p in files)
    for path in files:
        data = path.read_bytes()
        assert MARKER.encode() not in data, f"task plaintext found in {path}"
        assert ANSWER_MARKER.encode() not in data, f"answer plaintext found in {path}"
        assert SKIP_MARKER.encode() not in data, f"skip reason plaintext found in {path}"
        assert BONUS_MARKER.encode() not in data, f"bonus note plaintext found in {path}"


def test_a_ciphertext_copied_into_another_clients_row_fails_to_open(world: World) -> None:
    services = world.services
    for client_id, slug in ((world.client_a, "a"), (world.client_b, "b")):
        project = services.projects.create(world.operator, client_id, slug=slug, name=slug, schema=LABEL_SCHEMA)
        services.imports.import_rows(world.operator, client_id, project.id, [{"data": {"text": f"{slug} secret"}}])
    with services.uow_factory.all_clients() as uow:
        a_task = uow.session.scalars(
            text("SELECT id FROM tasks WHERE client_id = :c").bindparams(c=world.client_a)
        ).one()
        b_task = uow.session.scalars(
            text("SELECT id FROM tasks WHERE client_id = :c").bindparams(c=world.client_b)
        ).one()
        stolen = uow.session.get(Task, a_task).payload
    with services.uow_factory.all_clients(write=True) as uow:
        uow.session.execute(update(Task).where(Task.id == b_task).values(payload=stolen))
        uow.commit()
    with services.uow_factory.for_client(world.client_b) as uow:
        task = uow.tasks.get(b_task)
        from labelvault.workflow.content import open_task_content

        with pytest.raises(CryptoError):
            open_task_content(uow, task)


def test_rotating_the_master_key_keeps_every_client_readable(world: World) -> None:
    services = world.services
    project = services.projects.create(world.operator, world.client_a, slug="rot", name="r", schema=LABEL_SCHEMA)
    services.imports.import_rows(world.operator, world.client_a, project.id, [{"data": {"text": "before rotation"}}])
    old_master = (services.settings.resolved_keys_dir / "master.key").read_bytes()
    services.keyring.rotate_master()
    assert (services.settings.resolved_keys_dir / "master.key").read_bytes() != old_master
    # A fresh process (new keyring, new engine) still reads the task.
    from labelvault.bootstrap import build_services

    fresh = build_services(services.settings)
    try:
        labeler = world.actors["labeler_a"]
        assert fresh.labeling.next_task(labeler, world.client_a, project.id).payload == {"text": "before rotation"}
    finally:
        fresh.close()


def test_a_stolen_database_without_the_key_directory_reveals_nothing(sqlite_world: World, tmp_path: Path) -> None:
    world = sqlite_world
    services = world.services
    project = services.projects.create(world.operator, world.client_a, slug="steal", name="s", schema=LABEL_SCHEMA)
    services.imports.import_rows(world.operator, world.client_a, project.id, [{"data": {"text": "crown jewels"}}])
    thief = tmp_path / "thief"
    thief.mkdir()
    services.engine.dispose()
    database = Path(services.engine.url.database or "")
    for path in database.parent.glob(database.name + "*"):
        shutil.copy(path, thief / path.name.replace(database.name, "labelvault.db"))
    from labelvault.bootstrap import build_services
    from labelvault.settings import Settings

    with pytest.raises(CryptoError):
        build_services(Settings(home=thief, database_url=f"sqlite:///{thief / 'labelvault.db'}"))
