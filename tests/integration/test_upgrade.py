"""Upgrades: a database made by the first migration, with data in it, upgrades to head intact."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import orjson
import pytest
from sqlalchemy import create_engine, text

from labelvault.bootstrap import build_services, migrate, open_keyring
from labelvault.errors import Conflict
from labelvault.settings import Settings
from labelvault.storage.migrate import current_revision, head_revision, upgrade
from labelvault.storage.models import LedgerEntry, Skip
from labelvault.workflow.labeling import skip_reason
from labelvault.workflow.ledger import ledger_note
from tests.conftest import DatabaseUrls

FIRST = "f8ae2518d79d"
OLD_SKIP_REASON = "the old plaintext reason"
OLD_BONUS_NOTE = "the old plaintext note"
SCHEMA = {"fields": [{"name": "text", "kind": "text"}],
          "questions": [{"name": "sentiment", "type": "label", "labels": ["positive", "negative"]}]}


@pytest.fixture
def old_install(tmp_path, database_urls: DatabaseUrls) -> Settings:  # type: ignore[no-untyped-def]
    """An install at the first migration with a client, a user, a project and a sealed task."""
    settings = Settings(home=tmp_path / "home", database_url=database_urls.app,
                        migration_database_url=database_urls.owner)
    owner = create_engine(database_urls.owner or database_urls.app)
    upgrade(owner, FIRST)
    keyring = open_keyring(settings, create=True)
    keyring.create_client_key(1)
    wrapped = keyring.new_data_key(1)
    cipher = keyring.data_cipher(1, wrapped)
    now = datetime(2026, 1, 1, tzinfo=UTC).replace(tzinfo=None)
    with owner.begin() as connection:
        insert = connection.execute
        insert(text("INSERT INTO clients (id, slug, name, currency, status, created_at) "
                    "VALUES (1, 'old', 'Old Client', 'EUR', 'active', :t)"), {"t": now})
        insert(text("INSERT INTO users (id, username, display_name, is_operator, is_active, created_at) "
                    "VALUES (1, 'veteran', 'Veteran', true, true, :t)"), {"t": now})
        insert(text("INSERT INTO memberships (id, client_id, user_id, role, created_at) "
                    "VALUES (1, 1, 1, 'labeler', :t)"), {"t": now})
        insert(text("INSERT INTO data_keys (id, client_id, wrapped_key, active, created_at) "
                    "VALUES (1, 1, :k, true, :t)"), {"k": wrapped, "t": now})
        insert(text("INSERT INTO projects (id, client_id, slug, name, schema_json, overlap, lease_seconds, status, "
                    "created_at) VALUES (1, 1, 'legacy', 'Legacy', :s, 1, 600, 'active', :t)"),
               {"s": json.dumps(SCHEMA), "t": now})
        insert(text("INSERT INTO tasks (id, client_id, project_id, external_id, priority, uncertainty, "
                    "required_answers, answer_count, open_slots, data_key_id, payload, created_at) "
                    "VALUES (1, 1, 1, 'old-1', 0, 0, 1, 0, 1, 1, :p, :t)"),
               {"p": cipher.seal("task.payload", 1, orjson.dumps({"text": "written long ago"})), "t": now})
        # A skipped task, its reason in the clear as skips were written before reasons were sealed.
        insert(text("INSERT INTO tasks (id, client_id, project_id, external_id, priority, uncertainty, "
                    "required_answers, answer_count, open_slots, data_key_id, payload, created_at) "
                    "VALUES (2, 1, 1, 'old-2', 0, 0, 1, 0, 1, 1, :p, :t)"),
               {"p": cipher.seal("task.payload", 2, orjson.dumps({"text": "passed over"})), "t": now})
        insert(text("INSERT INTO skips (id, client_id, project_id, task_id, user_id, reason, created_at) "
                    "VALUES (1, 1, 1, 2, 1, :r, :t)"), {"r": OLD_SKIP_REASON, "t": now})
    if owner.dialect.name == "postgresql":
        with owner.begin() as connection:  # sequences after explicit ids
            for table in ("clients", "users", "memberships", "data_keys", "projects", "tasks", "skips"):
                connection.execute(text(f"SELECT setval('{table}_id_seq', 10)"))
    owner.dispose()
    return settings


def test_an_old_database_upgrades_to_head_with_its_data_readable(old_install: Settings) -> None:
    owner = create_engine(old_install.migration_database_url or old_install.resolved_database_url)
    assert current_revision(owner) == FIRST
    owner.dispose()
    services = build_services(old_install)
    try:
        before, head = migrate(services)
        assert (before, head) == (FIRST, head_revision())
        from labelvault.domain.access import Actor

        veteran = Actor(user_id=1, username="veteran", is_operator=True)
        task = services.labeling.next_task(veteran, 1, 1)
        assert task.payload == {"text": "written long ago"}
        receipt = services.labeling.submit(veteran, 1, 1, task.task_id, {"sentiment": "positive"})
        assert receipt.created
        info = services.projects.get(veteran, 1, 1)
        assert (info.review_policy, info.rate_per_answer, info.spent) == ("none", 0, 0)  # new columns' defaults
    finally:
        services.close()


def test_a_database_newer_than_the_code_is_refused(old_install: Settings) -> None:
    owner = create_engine(old_install.migration_database_url or old_install.resolved_database_url)
    with owner.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = 'ffffffffffff'"))
    with pytest.raises(Conflict, match="newer version"):
        upgrade(owner)
    owner.dispose()


def test_the_project_spend_total_moves_into_its_stripes_with_its_tasks_kept(old_install: Settings) -> None:
    """The migration that replaced projects.spent with project_spend keeps the total and the tasks
    (a batch-mode column drop on SQLite would have copied the table and cascaded the tasks away)."""
    owner = create_engine(old_install.migration_database_url or old_install.resolved_database_url)
    upgrade(owner, "c5e8a1f0d3b7")  # the last revision with projects.spent
    with owner.begin() as connection:
        connection.execute(text("UPDATE projects SET spent = 250, rate_per_answer = 10 WHERE id = 1"))
    services = build_services(old_install)
    try:
        migrate(services)  # to head, and the app role's grants on the new table
        with owner.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM tasks WHERE project_id = 1")).scalar() == 2
        owner.dispose()
        from labelvault.domain.access import Actor

        veteran = Actor(user_id=1, username="veteran", is_operator=True)
        assert services.projects.get(veteran, 1, 1).spent == 250
        task = services.labeling.next_task(veteran, 1, 1)
        services.labeling.submit(veteran, 1, 1, task.task_id, {"sentiment": "positive"})
        assert services.projects.get(veteran, 1, 1).spent == 260
        assert services.reports.project_costs(veteran, 1, 1).currency == "EUR"
    finally:
        services.close()


def test_skip_reasons_written_in_the_clear_are_sealed_by_the_upgrade(old_install: Settings) -> None:
    services = build_services(old_install)
    try:
        migrate(services)
        with services.uow_factory.for_client(1) as uow:
            skip = uow.session.get(Skip, 1)
            assert skip is not None and skip.legacy_reason == "" and skip.sealed_reason is not None
            assert OLD_SKIP_REASON.encode() not in skip.sealed_reason
            assert skip_reason(uow, skip) == OLD_SKIP_REASON
        assert migrate(services)[0] == head_revision()  # a second run finds nothing left to seal
        with services.uow_factory.for_client(1) as uow:
            assert skip_reason(uow, uow.session.get(Skip, 1)) == OLD_SKIP_REASON  # type: ignore[arg-type]
    finally:
        services.close()


def test_ledger_notes_written_in_the_clear_are_sealed_by_the_upgrade(old_install: Settings) -> None:
    owner = create_engine(old_install.migration_database_url or old_install.resolved_database_url)
    upgrade(owner, "f2b4d6e8a0c1")  # the last revision with ledger_entries.note in the clear
    with owner.begin() as connection:
        connection.execute(text(
            "INSERT INTO ledger_entries (id, client_id, project_id, user_id, kind, amount, currency, note, created_at) "
            "VALUES (1, 1, 1, 1, 'bonus', 700, 'EUR', :n, :t)"), {"n": OLD_BONUS_NOTE, "t": datetime(2026, 1, 2)})
    owner.dispose()
    services = build_services(old_install)
    try:
        migrate(services)
        with services.uow_factory.for_client(1) as uow:
            entry = uow.session.get(LedgerEntry, 1)
            assert entry is not None and entry.legacy_note == "" and entry.sealed_note is not None
            assert OLD_BONUS_NOTE.encode() not in entry.sealed_note
            assert (entry.amount, ledger_note(uow, entry)) == (700, OLD_BONUS_NOTE)
    finally:
        services.close()
