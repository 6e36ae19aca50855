"""Offboarding: the client leaves with everything; nothing of it stays readable."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from labelvault.audit.checkpoint import verify_document
from labelvault.bootstrap import build_services, initialize
from labelvault.errors import AuditTampered, CryptoError, InvalidInput
from labelvault.settings import Settings
from labelvault.storage.models import CLIENT_OWNED_TABLES, LedgerEntry
from tests.conftest import World, owner_url
from tests.integration.queue_helpers import label_once, make_labelers, make_project


@pytest.fixture
def labelled(world: World) -> int:
    project_id = make_project(world, "leaving", tasks=4, overlap=2, rate_per_answer=100)
    a, b = make_labelers(world, 2)
    for labeler in (a, b):
        label_once(world, labeler, project_id, "positive")
    return project_id


def count_client_rows(world: World, client_id: int) -> int:
    from sqlalchemy import create_engine

    engine = create_engine(owner_url(world.services.settings))
    with engine.connect() as connection:
        total = sum(
            connection.execute(text(f"SELECT count(*) FROM {t} WHERE client_id = :c"), {"c": client_id}).scalar() or 0
            for t in CLIENT_OWNED_TABLES
        )
    engine.dispose()
    return total


def test_offboarding_exports_everything_with_a_signed_manifest_then_destroys_and_certifies(
    world: World, labelled: int, tmp_path: Path
) -> None:
    services = world.services
    assert count_client_rows(world, world.client_a) > 0
    bundle = tmp_path / "bundle"
    result = services.offboarding.offboard(world.operator, world.client_a, bundle)

    manifest_bytes = (bundle / "manifest.json").read_bytes()
    manifest = json.loads(manifest_bytes)
    verify_document(manifest["public_key_pem"], manifest_bytes, base64.b64decode((bundle / "manifest.sig").read_text()))
    tasks = [json.loads(line) for line in (bundle / f"projects/{labelled}-leaving.jsonl").read_text().splitlines()]
    assert len(tasks) == 4
    assert sum(len(t["answers"]) for t in tasks) == 2
    assert (bundle / "audit.jsonl").read_text().count("task.shown") >= 2
    assert json.loads((bundle / "ledger.jsonl").read_text().splitlines()[0])["amount"] == 100

    # Gone: rows, keys; the other client is untouched.
    assert count_client_rows(world, world.client_a) == 0
    assert count_client_rows(world, world.client_b) > 0
    assert not services.keyring.has_client_key(world.client_a)
    certificate_bytes = (bundle / "deletion-certificate.json").read_bytes()
    verify_document(
        manifest["public_key_pem"],
        certificate_bytes,
        base64.b64decode((bundle / "deletion-certificate.sig").read_text()),
    )
    certificate = json.loads(certificate_bytes)
    assert certificate["keys_destroyed"] is True
    assert certificate["deleted_rows"]["tasks"] == 4
    assert certificate["deleted_rows"]["answers"] == 2
    assert sum(result.deleted.values()) == sum(certificate["deleted_rows"].values())
    # The audit log stays whole and verifiable after the deletion.
    assert services.audit.verify().ok


def test_a_tampered_bundle_is_refused(world: World, labelled: int, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    world.services.offboarding.offboard(world.operator, world.client_a, bundle)
    with (bundle / "ledger.jsonl").open("a") as handle:
        handle.write('{"amount": 1000000}\n')
    with pytest.raises(InvalidInput, match=r"ledger\.jsonl"):
        world.services.offboarding.verify_bundle(bundle)
    manifest = bundle / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"slug": "acme"', '"slug": "evil"'))
    with pytest.raises(AuditTampered):
        world.services.offboarding.verify_bundle(bundle)


def test_a_backup_taken_before_offboarding_cannot_be_decrypted(world: World, labelled: int, tmp_path: Path) -> None:
    services = world.services
    if services.engine.dialect.name != "sqlite":
        pytest.skip("copies the SQLite file as the backup")
    backup = tmp_path / "backup"
    backup.mkdir()
    raw = services.engine.raw_connection()  # VACUUM may not run inside a transaction
    try:
        raw.cursor().execute(f"VACUUM INTO '{backup / 'labelvault.db'}'")
    finally:
        raw.close()
    services.offboarding.offboard(world.operator, world.client_a, tmp_path / "bundle")
    # The backup holds the rows and the wrapped data keys; the install's keys directory is intact,
    # but the client's key-encryption key is gone, so nothing of the client opens.
    restored = build_services(
        Settings(
            home=services.settings.home,
            database_url=f"sqlite:///{backup / 'labelvault.db'}",
            keys_dir=services.settings.resolved_keys_dir,
        )
    )
    try:
        with restored.uow_factory.for_client(world.client_a) as uow:
            assert uow.session.scalar(select(func.count()).select_from(text("tasks"))) == 4
            task = uow.tasks.page(labelled, after_id=0, limit=1)[0]
            from labelvault.workflow.content import open_task_content

            with pytest.raises(CryptoError):
                open_task_content(uow, task)
    finally:
        restored.close()


def test_a_bundle_restores_into_another_install(world: World, labelled: int, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    world.services.offboarding.offboard(world.operator, world.client_a, bundle)
    other_home = tmp_path / "other"
    other = initialize(
        Settings(home=other_home, database_url=f"sqlite:///{tmp_path / 'other.db'}"), "op", "operator-password-2"
    )
    try:
        operator = other.accounts.first_operator()
        result = other.bundles.import_bundle(operator, bundle)
        assert (result.projects, result.tasks, result.answers) == (1, 4, 2)
        project_id = other.projects.list(operator, result.client_id)[0][0].id
        lines = b"".join(other.exports.export(operator, result.client_id, project_id).chunks).splitlines()
        restored = [json.loads(line) for line in lines]
        assert sorted(t["data"]["text"] for t in restored) == [f"text number {i}" for i in range(4)]
        assert sorted(a["value"]["sentiment"] for t in restored for a in t["answers"]) == ["positive", "positive"]
        # The money came along: the settings, the ledger (against the restored answers) and its total.
        info = other.projects.get(operator, result.client_id, project_id)
        assert (info.rate_per_answer, info.spent) == (100, 200)
        answer_ids = {a["id"] for t in restored for a in t["answers"]}
        with other.uow_factory.for_client(result.client_id) as uow:
            paid = uow.session.execute(select(LedgerEntry.kind, LedgerEntry.amount, LedgerEntry.answer_id)).all()
        assert sorted((kind, amount) for kind, amount, _ in paid) == [("answer", 100), ("answer", 100)]
        assert {answer_id for _, _, answer_id in paid} == answer_ids
    finally:
        other.close()
    shutil.rmtree(other_home)
