"""`labelvault client offboard` and `labelvault client import-bundle`, run as real processes.

Each test has two installs (two homes, and on PostgreSQL two databases): the client is set up
through the use cases in this process (quicker than a command per step), and only the commands
under test run as the console script.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, func, select

from labelvault.bootstrap import build_services, initialize
from labelvault.settings import Settings
from labelvault.storage.models import Base
from labelvault.workflow.projects import ProjectSettings
from tests.conftest import DatabaseUrls, PostgresDatabases, owner_url
from tests.e2e.test_cli import Cli
from tests.integration.queue_helpers import LABEL_SCHEMA

pytestmark = pytest.mark.e2e

SKIP_REASON = "the scan is unreadable"
BONUS_NOTE = "for reading the contract draft twice"


@dataclass
class Install:
    cli: Cli  # the console script, with this install's home and database
    settings: Settings  # the same install, for this process


def _install(root: Path, urls: DatabaseUrls | None) -> Install:
    """A fresh install (migrated, with an operator) under ``root``: SQLite in its home, or the
    PostgreSQL database ``urls`` names."""
    root.mkdir()
    cli = Cli(root)
    if urls is None:
        settings = Settings(home=cli.home, sqlite_synchronous="NORMAL")
    else:
        assert urls.owner is not None
        settings = Settings(home=cli.home, database_url=urls.app, migration_database_url=urls.owner)
        cli.env.update(LABELVAULT_DATABASE_URL=urls.app, LABELVAULT_MIGRATION_DATABASE_URL=urls.owner)
    initialize(settings, "admin", "operator-password-1").close()
    return Install(cli, settings)


def _client_keys(settings: Settings) -> list[str]:
    clients = settings.resolved_keys_dir / "clients"
    return sorted(path.name for path in clients.iterdir()) if clients.exists() else []


@pytest.fixture
def installs(
    backend: str, tmp_path: Path, postgres_databases: PostgresDatabases | None
) -> Iterator[tuple[Install, Install]]:
    """(where the client leaves from, where its bundle arrives), on the test's backend."""
    if backend == "sqlite":
        yield _install(tmp_path / "leaving", None), _install(tmp_path / "arriving", None)
        return
    assert postgres_databases is not None
    made = [postgres_databases.create() for _ in range(2)]
    try:
        (leaving_owner, leaving_app), (arriving_owner, arriving_app) = made
        yield (_install(tmp_path / "leaving", DatabaseUrls(leaving_app, leaving_owner)),
               _install(tmp_path / "arriving", DatabaseUrls(arriving_app, arriving_owner)))
    finally:
        for owner, _ in made:
            postgres_databases.drop(owner)


def _client_with_work(settings: Settings) -> int:
    """Client acme with project reviews (paid per answer): three tasks, lena's answer, her skip with
    a reason and a bonus with a note; returns the project's id."""
    services = build_services(settings)
    try:
        operator = services.accounts.first_operator()
        client_id = services.clients.create(operator, "acme", "Acme AI").id
        project_id = services.projects.create(operator, client_id, slug="reviews", name="Reviews",
                                              schema=LABEL_SCHEMA, overlap=1).id
        services.projects.update(operator, client_id, project_id, ProjectSettings(rate_per_answer=125))
        services.imports.import_rows(operator, client_id, project_id,
                                     [{"external_id": f"t{i}", "data": {"text": f"review {i}"}} for i in range(3)])
        services.accounts.create_user(operator, "lena", None)
        services.accounts.grant_role(operator, client_id, "lena", "labeler")
        lena = services.accounts.actor_by_username("lena")
        task = services.labeling.next_task(lena, client_id, project_id)
        services.labeling.submit(lena, client_id, project_id, task.task_id, {"sentiment": "positive"})
        task = services.labeling.next_task(lena, client_id, project_id)
        services.labeling.skip(lena, client_id, project_id, task.task_id, SKIP_REASON)
        services.bonuses.grant(operator, client_id, project_id, "lena", 75, BONUS_NOTE)
        return project_id
    finally:
        services.close()


def _row_counts(settings: Settings) -> dict[str, int]:
    """Rows of every table, read as the owner (row-level security would hide client rows)."""
    engine = create_engine(owner_url(settings))
    try:
        with engine.connect() as connection:
            return {table.name: connection.execute(select(func.count()).select_from(table)).scalar_one()
                    for table in Base.metadata.sorted_tables}
    finally:
        engine.dispose()


def test_a_client_offboarded_by_the_console_script_is_restored_by_it_in_another_install(
    installs: tuple[Install, Install], tmp_path: Path
) -> None:
    leaving, arriving = installs
    project_id = _client_with_work(leaving.settings)
    bundle = tmp_path / "bundle"

    refused = leaving.cli("client", "offboard", "acme", "--to", bundle)
    assert refused.code != 0 and "--yes" in refused.error_line and not bundle.exists()
    out = leaving.cli.ok("client", "offboard", "acme", "--to", bundle, "--yes")
    assert "client acme offboarded" in out and "keys destroyed" in out
    manifest = json.loads((bundle / "manifest.json").read_bytes())
    assert (bundle / "manifest.sig").is_file() and (bundle / "deletion-certificate.sig").is_file()
    assert {f"projects/{project_id}-reviews/skips.jsonl", f"projects/{project_id}-reviews/ledger.jsonl",
            f"projects/{project_id}-reviews.jsonl"} <= set(manifest["files"])
    certificate = json.loads((bundle / "deletion-certificate.json").read_bytes())
    assert certificate["keys_destroyed"] is True and certificate["deleted_rows"]["skips"] == 1
    assert certificate["manifest_sha256"] == hashlib.sha256((bundle / "manifest.json").read_bytes()).hexdigest()
    services = build_services(leaving.settings)
    try:
        assert services.clients.list(services.accounts.first_operator())[0] == []
    finally:
        services.close()

    out = arriving.cli.ok("client", "import-bundle", bundle)
    assert "client acme restored: 1 projects, 3 tasks, 1 answers" in out
    services = build_services(arriving.settings)
    try:
        operator = services.accounts.first_operator()
        client_id, restored_id = services.projects.locate("acme/reviews")
        lines = b"".join(services.exports.export(operator, client_id, restored_id).chunks).splitlines()
        tasks = {task["external_id"]: task for task in map(json.loads, lines)}
        assert sorted(tasks) == ["t0", "t1", "t2"]
        assert [(a["labeler"], a["value"]) for t in tasks.values() for a in t["answers"]] == [
            ("lena", {"sentiment": "positive"})]
        skips = services.answers.skips(operator, client_id, restored_id, after_id=0, limit=10).items
        assert [(s.labeler, s.reason) for s in skips] == [("lena", SKIP_REASON)]
        ledger = services.reports.ledger(operator, client_id, restored_id, after_id=0, limit=10).items
        assert sorted((e.kind, e.amount, e.note) for e in ledger) == [("answer", 125, ""), ("bonus", 75, BONUS_NOTE)]
    finally:
        services.close()


def _resigned(bundle: Path, name: str, content: bytes, signer_settings: Settings) -> None:
    """Replace one file of a bundle and sign its manifest again with the install that wrote it: a
    bundle whose signature holds but whose line is bad."""
    manifest = json.loads((bundle / "manifest.json").read_bytes())
    (bundle / name).write_bytes(content)
    manifest["files"][name] = hashlib.sha256(content).hexdigest()
    manifest_bytes = json.dumps(manifest, indent=2, sort_keys=True).encode()
    (bundle / "manifest.json").write_bytes(manifest_bytes)
    services = build_services(signer_settings)
    try:
        signature = services.audit.signer.sign_document(manifest_bytes)
    finally:
        services.close()
    (bundle / "manifest.sig").write_text(base64.b64encode(signature).decode())


def test_a_tampered_bundle_or_a_bad_line_fails_the_import_naming_the_file_and_leaves_the_install_as_it_was(
    installs: tuple[Install, Install], tmp_path: Path
) -> None:
    leaving, arriving = installs
    project_id = _client_with_work(leaving.settings)
    bundle = tmp_path / "bundle"
    leaving.cli.ok("client", "offboard", "acme", "--to", bundle, "--yes")
    skips = f"projects/{project_id}-reviews/skips.jsonl"
    tasks = f"projects/{project_id}-reviews.jsonl"
    tampered, bad_line, bad_task = tmp_path / "tampered", tmp_path / "bad-line", tmp_path / "bad-task"
    for copy in (tampered, bad_line, bad_task):
        shutil.copytree(bundle, copy)
    with (tampered / skips).open("ab") as handle:  # a skip added after the manifest was signed
        handle.write(b'{"project_id": %d, "task_id": 1, "user": "mallory"}\n' % project_id)
    good = (bundle / skips).read_bytes()
    skip = json.loads(good)
    _resigned(bad_line, skips, good + json.dumps(skip | {"created_at": "last tuesday"}).encode() + b"\n",
              leaving.settings)
    # A task of the tasks file without its answers: refused by the check, before the restore reads it.
    first, second, *rest = (bundle / tasks).read_bytes().splitlines(keepends=True)
    task = json.loads(second)
    del task["answers"]
    _resigned(bad_task, tasks, b"".join([first, json.dumps(task).encode() + b"\n", *rest]), leaving.settings)
    before = _row_counts(arriving.settings), _client_keys(arriving.settings)

    result = arriving.cli("client", "import-bundle", tampered)
    assert result.code == 1
    assert f"{skips} in the bundle is damaged: its SHA-256 does not match manifest.json" in result.error_line
    result = arriving.cli("client", "import-bundle", bad_line)
    assert result.code == 1
    assert f"{skips} line 2: created_at is not a time" in result.error_line
    result = arriving.cli("client", "import-bundle", bad_task)
    assert result.code == 1
    assert f"{tasks} line 2: answers is missing" in result.error_line  # one line: no traceback
    assert (_row_counts(arriving.settings), _client_keys(arriving.settings)) == before  # no client, key or account


def test_a_bad_client_json_or_a_record_of_a_missing_answer_fails_the_import_before_anything_is_written(
    installs: tuple[Install, Install], tmp_path: Path
) -> None:
    """Found by the check pass, naming the file and the field or the missing id: not a traceback,
    nor the ledger restored with pay for no answer."""
    leaving, arriving = installs
    project_id = _client_with_work(leaving.settings)
    bundle = tmp_path / "bundle"
    leaving.cli.ok("client", "offboard", "acme", "--to", bundle, "--yes")
    ledger = f"projects/{project_id}-reviews/ledger.jsonl"
    bad_client, bad_ledger = tmp_path / "bad-client", tmp_path / "bad-ledger"
    for copy in (bad_client, bad_ledger):
        shutil.copytree(bundle, copy)
    client = json.loads((bundle / "client.json").read_bytes())
    _resigned(bad_client, "client.json", json.dumps(client | {"currency": "dollars"}).encode(), leaving.settings)
    good = (bundle / ledger).read_bytes()
    paid = json.loads(good.splitlines()[0])
    reversal = paid | {"kind": "reversal", "amount": -paid["amount"], "answer_id": 999_999}
    _resigned(bad_ledger, ledger, good + json.dumps(reversal).encode() + b"\n", leaving.settings)
    before = _row_counts(arriving.settings), _client_keys(arriving.settings)

    result = arriving.cli("client", "import-bundle", bad_client)
    assert result.code == 1
    assert "client.json: currency must be an ISO 4217 code such as USD" in result.error_line
    result = arriving.cli("client", "import-bundle", bad_ledger)
    assert result.code == 1
    assert f"{ledger} line 3: answer 999999 is not in its project's tasks file" in result.error_line
    assert (_row_counts(arriving.settings), _client_keys(arriving.settings)) == before  # no client, key or account
