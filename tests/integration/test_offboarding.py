"""Offboarding: the client leaves with everything; nothing of it stays readable."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import func, select, text

from labelvault.audit.checkpoint import verify_document
from labelvault.bootstrap import Services, build_services
from labelvault.domain.access import Actor
from labelvault.domain.predictors import PredictorConfig, check_predictor
from labelvault.domain.schema import parse_schema
from labelvault.errors import AuditTampered, CryptoError, InvalidInput, NotFound, QueueRefused
from labelvault.settings import Settings
from labelvault.storage.models import (
    CLIENT_OWNED_TABLES,
    Answer,
    Base,
    GoldScore,
    LedgerEntry,
    Project,
    QualificationResult,
    Review,
    Skip,
    Suspension,
    Task,
    TaskPrediction,
    User,
    WebhookEndpoint,
)
from labelvault.workflow import offboarding
from labelvault.workflow.labeling import skip_reason
from labelvault.workflow.ledger import ledger_note
from labelvault.workflow.offboarding import BUNDLE_CARRIES, BUNDLE_LEAVES_OUT, BundleImportResult
from labelvault.workflow.projects import ProjectSettings
from labelvault.workflow.webhooks import WebhookDispatcher, secret_text
from tests.conftest import Templates, World, owner_url
from tests.integration.queue_helpers import LABEL_SCHEMA, label_once, make_labelers, make_project

BONUS_NOTE = "for reading the contract draft twice"


def make_labelled(world: World) -> int:
    """A project of client A, "leaving", with four tasks each answered (and paid) twice."""
    project_id = make_project(world, "leaving", tasks=4, overlap=2, rate_per_answer=100)
    a, b = make_labelers(world, 2)
    for labeler in (a, b):
        label_once(world, labeler, project_id, "positive")
    return project_id


@pytest.fixture
def labelled(world: World) -> int:
    return make_labelled(world)


T = TypeVar("T")


class Bundles:
    """Bundles built once per test process and copied for each test that spoils one line of its
    own copy: building one (projects labelled, reviewed, the client offboarded) took longer than
    the check each of these tests is about. Every test starts from a copy of the same world
    (conftest's templates), so a copy is the bundle the test would have built itself; a test whose
    world differs first (another project made) builds its own."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.built: dict[tuple[str, str], tuple[Any, Path]] = {}

    def copy(self, world: World, tmp_path: Path, name: str, build: Callable[[Path], T]) -> tuple[T, Path]:
        """(what ``build`` returned, a copy of the bundle it wrote) for the bundle ``name`` of this
        world's backend; ``build(folder)`` offboards client A into ``folder`` the first time."""
        key = (world.services.engine.dialect.name, name)
        if key not in self.built:
            folder = self.root / "-".join(key)
            self.built[key] = (build(folder), folder)
        value, folder = self.built[key]
        bundle = tmp_path / "bundle"
        shutil.copytree(folder, bundle)
        # Signed by this test's install, as its own bundle would be (each copy of the world makes
        # its own signing key at its first signature).
        manifest = json.loads((bundle / "manifest.json").read_bytes())
        audit = world.services.audit
        _sign(world, bundle, manifest | {"install_id": audit.install_id, "public_key_pem": audit.public_key_pem()})
        return value, bundle


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> Bundles:
    return Bundles(tmp_path_factory.mktemp("bundles"))


def _labelled_bundle(world: World, tmp_path: Path, bundles: Bundles) -> tuple[int, Path]:
    """Client A with ``make_labelled``'s project, offboarded: (the project's id, a copy of its bundle)."""
    def build(bundle: Path) -> int:
        project_id = make_labelled(world)
        world.services.offboarding.offboard(world.operator, world.client_a, bundle)
        return project_id

    return bundles.copy(world, tmp_path, "labelled", build)


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
    ledger = (bundle / f"projects/{labelled}-leaving/ledger.jsonl").read_text().splitlines()
    assert json.loads(ledger[0])["amount"] == 100
    # Each project's records in its own folder, each file in the signed manifest.
    assert {name for name in manifest["files"] if name.startswith(f"projects/{labelled}-leaving/")} == {
        f"projects/{labelled}-leaving/{kind}" for kind in offboarding.PROJECT_RECORDS}
    assert manifest["bundle_version"] == 2
    assert not any((bundle / kind).exists() for kind in ("ledger.jsonl", "skips.jsonl", "predictions.jsonl"))

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
    with (bundle / f"projects/{labelled}-leaving/ledger.jsonl").open("a") as handle:
        handle.write('{"amount": 1000000}\n')
    with pytest.raises(InvalidInput, match=rf"projects/{labelled}-leaving/ledger\.jsonl"):
        world.services.offboarding.verify_bundle(bundle)
    manifest = bundle / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"slug": "acme"', '"slug": "evil"'))
    with pytest.raises(AuditTampered):
        world.services.offboarding.verify_bundle(bundle)


@pytest.mark.parametrize(("spoil", "said"), [
    (lambda path: path.unlink(), "{name} is missing from the bundle, though manifest.json lists it"),
    (lambda path: path.write_bytes(path.read_bytes().replace(b"1", b"2", 1)),
     "{name} in the bundle is damaged: its SHA-256 does not match manifest.json"),
])
def test_a_listed_bundle_file_missing_or_damaged_is_refused_saying_which_and_naming_it(
    world: World, labelled: int, tmp_path: Path, spoil: Callable[[Path], object], said: str
) -> None:
    bundle = tmp_path / "bundle"
    world.services.offboarding.offboard(world.operator, world.client_a, bundle)
    name = f"projects/{labelled}-leaving/ledger.jsonl"
    spoil(bundle / name)
    with pytest.raises(InvalidInput) as refused:
        world.services.offboarding.verify_bundle(bundle)
    assert refused.value.message == said.format(name=name)
    assert refused.value.details == {"file": name, "field": None}


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


@pytest.fixture(params=[offboarding.RESTORE_BATCH, 1], ids=["one-batch", "a-batch-per-task"])
def restore_batch(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """Restores read a project's tasks in batches: the whole project in one, or one task per batch
    (every task's answers, reviews and scores then point across batches)."""
    monkeypatch.setattr(offboarding, "RESTORE_BATCH", request.param)
    return int(request.param)


@contextmanager
def another_install(tmp_path: Path, templates: Templates, backend: str = "sqlite") -> Iterator[tuple[Services, Actor]]:
    """A second install, fresh, and its operator: where a bundle arrives. A copy of one just
    initialized (conftest's templates: keys of its own, and its own database), on SQLite or on the
    test's ``backend``."""
    target = tmp_path / "other"
    target.mkdir()
    settings = templates.copy(templates.get(backend, "bare"), backend, target)
    other = build_services(settings)
    try:
        yield other, other.accounts.first_operator()
    finally:
        other.close()
        if settings.migration_database_url and templates.postgres is not None:
            templates.postgres.drop(settings.migration_database_url)
    shutil.rmtree(target)


@contextmanager
def restored_elsewhere(
    world: World, tmp_path: Path, templates: Templates
) -> Iterator[tuple[Services, Actor, BundleImportResult]]:
    """Client A offboarded, and its bundle imported into another install: (that install, its
    operator, what the import reported)."""
    bundle = tmp_path / "bundle"
    world.services.offboarding.offboard(world.operator, world.client_a, bundle)
    with another_install(tmp_path, templates) as (other, operator):
        yield other, operator, other.bundles.import_bundle(operator, bundle)


def test_a_bundle_restores_into_another_install(
    world: World, labelled: int, tmp_path: Path, templates: Templates
) -> None:
    labeler = world.actors["labeler_a"].username
    world.services.bonuses.grant(world.operator, world.client_a, labelled, labeler, 300, BONUS_NOTE)
    with restored_elsewhere(world, tmp_path, templates) as (other, operator, result):
        assert (result.projects, result.tasks, result.answers) == (1, 4, 2)
        project_id = other.projects.list(operator, result.client_id)[0][0].id
        lines = b"".join(other.exports.export(operator, result.client_id, project_id).chunks).splitlines()
        restored = [json.loads(line) for line in lines]
        assert sorted(t["data"]["text"] for t in restored) == [f"text number {i}" for i in range(4)]
        assert sorted(a["value"]["sentiment"] for t in restored for a in t["answers"]) == ["positive", "positive"]
        # The money came along: the settings, the ledger (against the restored answers) and its total.
        info = other.projects.get(operator, result.client_id, project_id)
        assert (info.rate_per_answer, info.spent) == (100, 500)
        answer_ids = {a["id"] for t in restored for a in t["answers"]}
        with other.uow_factory.for_client(result.client_id) as uow:
            entries = uow.session.scalars(select(LedgerEntry).order_by(LedgerEntry.id)).all()
            paid = [(e.kind, e.amount, e.answer_id) for e in entries]
            notes = [(ledger_note(uow, e), e.legacy_note, e.sealed_note) for e in entries]
        assert sorted((kind, amount) for kind, amount, _ in paid) == [("answer", 100), ("answer", 100), ("bonus", 300)]
        assert {answer_id for kind, _, answer_id in paid if kind == "answer"} == answer_ids
        # The manager's note on the bonus came along, sealed again under the new install's key.
        bonus_note, legacy, sealed = notes[[kind for kind, _, _ in paid].index("bonus")]
        assert (bonus_note, legacy) == (BONUS_NOTE, "") and sealed and BONUS_NOTE.encode() not in sealed


def test_each_projects_money_and_reviews_go_back_to_that_project(
    world: World, tmp_path: Path, templates: Templates, restore_batch: int
) -> None:
    """The ledger and the reviews are read per project from bundle-wide files."""
    first = make_project(world, "first", tasks=2, rate_per_answer=100, review_policy="all")
    second = make_project(world, "second", tasks=3, rate_per_answer=7)
    labeler, reviewer = world.actors["labeler_a"], world.actors["reviewer_a"]
    reviewed = label_once(world, labeler, first, "positive")
    world.services.reviews.next_item(reviewer, world.client_a, first)
    world.services.reviews.decide(reviewer, world.client_a, first, reviewed, decision="reject", reason="off topic")
    for _ in range(3):
        label_once(world, labeler, second, "negative")
    world.services.bonuses.grant(world.operator, world.client_a, second, labeler.username, 40, BONUS_NOTE)
    with restored_elsewhere(world, tmp_path, templates) as (other, operator, result):
        assert result.reviews == 1
        projects = {info.slug: info for info in other.projects.list(operator, result.client_id)[0]}
        assert (projects["first"].spent, projects["second"].spent) == (0, 61)  # paid 100, reversed 100
        with other.uow_factory.for_client(result.client_id) as uow:
            entries = uow.session.scalars(select(LedgerEntry).order_by(LedgerEntry.id)).all()
            by_project = {(e.project_id, e.kind, e.amount) for e in entries}
            reviews = uow.session.execute(select(Review.project_id, Review.decision)).all()
        assert by_project == {(projects["first"].id, "answer", 100), (projects["first"].id, "reversal", -100),
                              (projects["second"].id, "answer", 7), (projects["second"].id, "bonus", 40)}
        assert len(entries) == 6 and reviews == [(projects["first"].id, "reject")]


def test_every_table_of_client_rows_is_carried_by_the_bundle_or_left_out_for_a_named_reason() -> None:
    assert set(BUNDLE_CARRIES) | set(BUNDLE_LEAVES_OUT) == set(CLIENT_OWNED_TABLES)
    assert not set(BUNDLE_CARRIES) & set(BUNDLE_LEAVES_OUT)


@pytest.mark.parametrize("layout", ["per-project", "version-1"])
def test_a_bundle_restores_skips_predictors_prediction_versions_and_webhooks(
    world: World, tmp_path: Path, templates: Templates, layout: str
) -> None:
    services = world.services
    hooked = build_services(services.settings.model_copy(
        update={"webhook_allowed_hosts": "127.0.0.1", "webhook_allow_private": True}))
    try:
        project_id = make_project(world, "integrated", tasks=0)
        services.imports.import_rows(world.operator, world.client_a, project_id,
                                     [{"external_id": f"t{i}", "data": {"text": f"sure 0.{i + 5}"}} for i in range(3)])
        labeling = services.labeling
        skipped = labeling.next_task(world.actors["labeler_a"], world.client_a, project_id).task_id
        labeling.skip(world.actors["labeler_a"], world.client_a, project_id, skipped, "the scan is unreadable")
        config = PredictorConfig(kind="entry_point", target="tests.integration.predictor_helpers:confident",
                                 question="sentiment", model_name="kw", model_version="7", batch_size=2)
        services.predictions.configure(world.operator, world.client_a, project_id, config)
        services.predictions.run(world.operator, world.client_a, project_id)
        created = hooked.webhooks.add(world.operator, world.client_a, project_id, "http://127.0.0.1:9/hook",
                                      ["task.completed"])
        (other_labeler,) = make_labelers(world, 1)
        label_once(world, other_labeler, project_id)  # completes a task: a delivery waits
        # One attempt, refused (nothing listens on port 9): the delivery log has a line to carry.
        WebhookDispatcher(hooked.uow_factory, hooked.webhooks.config).run_once()
        with services.uow_factory.for_client(world.client_a) as uow:
            external = {t.id: t.external_id for t in uow.tasks.list(project_id, offset=0, limit=10)}
            versions = {external[p.task_id]: p.model_version for p in uow.session.scalars(select(TaskPrediction))}
        assert versions
    finally:
        hooked.close()

    bundle = tmp_path / "bundle"
    services.offboarding.offboard(world.operator, world.client_a, bundle)
    own = f"projects/{project_id}-integrated"
    (skipped_line,) = [json.loads(line) for line in (bundle / own / "skips.jsonl").read_text().splitlines()]
    assert (skipped_line["user"], skipped_line["reason"]) == ("labeler_a", "the scan is unreadable")
    assert len((bundle / own / "predictions.jsonl").read_text().splitlines()) == len(versions)
    if layout == "version-1":  # skips and predictions in the client's files, as before projects had folders
        _as_version_1(world, bundle)
    with another_install(tmp_path, templates) as (other, operator):
        result = other.bundles.import_bundle(operator, bundle)
        (delivery,) = [json.loads(line) for line in (bundle / "webhook_deliveries.jsonl").read_text().splitlines()]
        assert (delivery["endpoint_id"], delivery["event_type"]) == (created.webhook.id, "task.completed")
        assert delivery["body"]["type"] == "task.completed"
        assert [attempt["attempt"] for attempt in delivery["log"]] == [1] and delivery["log"][0]["error"]

        restored_id = next(p.id for p in other.projects.list(operator, result.client_id)[0] if p.slug == "integrated")
        with other.uow_factory.for_client(result.client_id) as uow:
            names = {t.id: t.external_id for t in uow.tasks.list(restored_id, offset=0, limit=10)}
            skips = [(skip.task_id, username, skip_reason(uow, skip)) for skip, username in uow.session.execute(
                select(Skip, User.username).join(User, User.id == Skip.user_id).where(Skip.project_id == restored_id)
            )]
            restored_versions = {names[p.task_id]: p.model_version for p in uow.session.scalars(
                select(TaskPrediction).where(TaskPrediction.project_id == restored_id))}
            (endpoint,) = uow.session.scalars(select(WebhookEndpoint)).all()
            secret = uow.cipher(endpoint.data_key_id).open("webhook.secret", endpoint.id, endpoint.secret)
            subscribed = uow.session.scalar(select(Project.webhook_events).where(Project.id == restored_id))
        assert [(names[task_id], user, reason) for task_id, user, reason in skips] == [
            (external[skipped], "labeler_a", "the scan is unreadable")]
        assert restored_versions == versions
        predictor = other.predictions.get(operator, result.client_id, restored_id)
        assert predictor is not None and predictor.config == check_predictor(config, parse_schema(LABEL_SCHEMA))
        (hook,) = other.webhooks.list(operator, result.client_id, restored_id)
        assert (hook.url, hook.events, hook.active) == ("http://127.0.0.1:9/hook", ["task.completed"], True)
        assert secret_text(secret) == created.secret  # the receiver's signature checks keep working
        assert subscribed == "task.completed"
        # The restored skip still keeps the task from the labeler who skipped it.
        labeler = other.accounts.actor_by_username("labeler_a")
        other.accounts.grant_role(operator, result.client_id, "labeler_a", "labeler")
        served = set()
        while True:
            try:
                task = other.labeling.next_task(labeler, result.client_id, restored_id)
            except QueueRefused:
                break
            served.add(names[task.task_id])
            other.labeling.submit(labeler, result.client_id, restored_id, task.task_id, {"sentiment": "positive"})
        assert external[skipped] not in served and served


def test_a_bundle_restores_reviews_feedback_review_states_and_every_project_setting(
    world: World, tmp_path: Path, templates: Templates, restore_batch: int
) -> None:
    services = world.services
    project_id = make_project(world, "reviewed", tasks=3, review_policy="all", rate_per_answer=100,
                              rate_per_review=30)
    a, b = make_labelers(world, 2)
    reviewer = world.actors["reviewer_a"]
    answered_by = {label_once(world, labeler, project_id, "neutral"): labeler for labeler in (a, b, a)}
    decisions = {}
    for decision, extra in (("accept", {}), ("reject", {"reason": "read the guideline on sarcasm"}),
                            ("correct", {"correction": {"sentiment": "positive"}})):
        item = services.reviews.next_item(reviewer, world.client_a, project_id)
        services.reviews.decide(reviewer, world.client_a, project_id, item.task_id, decision=decision, **extra)
        decisions[decision] = item.task_id
    rejected = answered_by[decisions["reject"]]
    redo = label_once(world, b if rejected is a else a, project_id, "negative")  # back in the queue, for another
    assert redo == decisions["reject"]
    for qualification, text_ in ((False, "a known positive"), (True, "a known negative")):
        services.gold.import_rows(world.operator, world.client_a, project_id, [
            {"external_id": text_, "data": {"text": text_}, "gold": {"sentiment": text_.split()[-1]}},
        ], qualification=qualification)
    services.projects.update(world.operator, world.client_a, project_id, ProjectSettings(
        question_rates={"sentiment": 150}, gold_rate=0.2, confidence_threshold=0.9, qualification_pass_mark=0.75,
        suspension_min_answers=25,
    ))
    before = services.projects.get(world.operator, world.client_a, project_id)
    gold_before, _ = services.gold.list(world.operator, world.client_a, project_id)

    with restored_elsewhere(world, tmp_path, templates) as (other, operator, result):
        assert (result.tasks, result.answers, result.reviews) == (5, 4, 3)
        restored_id = other.projects.list(operator, result.client_id)[0][0].id
        after = other.projects.get(operator, result.client_id, restored_id)
        settings = ("review_policy", "rate_per_answer", "rate_per_review", "question_rates", "gold_rate",
                    "confidence_threshold", "qualification_pass_mark", "suspension_min_answers", "spent")
        assert {s: getattr(after, s) for s in settings} == {s: getattr(before, s) for s in settings}

        # The decisions, with their reasons and the correction readable under the new keys.
        with other.uow_factory.for_client(result.client_id) as uow:
            reviews = {}
            for review in uow.session.scalars(select(Review)):
                cipher = uow.cipher(review.data_key_id)
                reviews[review.decision] = (
                    cipher.open("review.reason", review.id, review.reason).decode() if review.reason else "",
                    json.loads(cipher.open("review.correction", review.id, review.corrected_value))
                    if review.corrected_value else None,
                )
            paid_reviews = set(uow.session.scalars(select(LedgerEntry.review_id).where(LedgerEntry.kind == "review")))
            review_ids = set(uow.session.scalars(select(Review.id)))
        assert reviews == {"accept": ("", None), "reject": ("read the guideline on sarcasm", None),
                           "correct": ("", {"sentiment": "positive"})}
        assert paid_reviews == review_ids and len(review_ids) == 3  # the review pay points at the restored reviews

        # The labeler still reads why their answer was rejected; the redone task still awaits review.
        labeler = other.accounts.actor_by_username(rejected.username)
        feedback = other.reviews.rejected_feedback(labeler, result.client_id, restored_id)
        assert [f.reason for f in feedback] == ["read the guideline on sarcasm"] and feedback[0].reviewed_at
        restored_reviewer = other.accounts.actor_by_username("reviewer_a")
        assert other.reviews.pending(restored_reviewer, result.client_id, restored_id) == 1
        item = other.reviews.next_item(restored_reviewer, result.client_id, restored_id)
        assert [x.value for x in item.answers] == [{"sentiment": "negative"}]
        with other.uow_factory.for_client(result.client_id) as uow:
            states = sorted(uow.session.scalars(select(Task.review_state)))
        assert states == ["done", "done", "none", "none", "pending"]  # accepted, corrected: not back in review
        # Gold tasks stay gold, with their answers and their place in the qualification test.
        gold_after, _ = other.gold.list(operator, result.client_id, restored_id)
        assert ({(g.external_id, g.qualification, str(g.gold)) for g in gold_after}
                == {(g.external_id, g.qualification, str(g.gold)) for g in gold_before})
        assert len(gold_after) == 2


def test_a_bundle_restores_skills_qualifications_suspensions_and_gold_scores(
    world: World, tmp_path: Path, templates: Templates, restore_batch: int
) -> None:
    services = world.services
    project_id = make_project(world, "honeypot", tasks=2)
    services.gold.import_rows(world.operator, world.client_a, project_id, [
        {"external_id": "known", "data": {"text": "a known positive"}, "gold": {"sentiment": "positive"}},
    ])
    services.projects.update(world.operator, world.client_a, project_id, ProjectSettings(
        gold_rate=1.0, suspension_threshold=0.9, suspension_min_answers=1,
    ))
    labeler = make_labelers(world, 1)[0]
    services.qualifications.grant_skill(world.operator, world.client_a, labeler.username, "lang:de")
    services.qualifications.set_qualified(world.operator, world.client_a, project_id, labeler.username,
                                          qualified=True)
    task = services.labeling.next_task(labeler, world.client_a, project_id)  # the honeypot, at gold rate 1
    services.labeling.submit(labeler, world.client_a, project_id, task.task_id, {"sentiment": "negative"})
    suspended = services.gold.suspensions(world.operator, world.client_a, project_id)
    assert [s.username for s in suspended] == [labeler.username]  # one wrong gold answer, min 1: suspended

    with restored_elsewhere(world, tmp_path, templates) as (other, operator, result):
        restored_id = other.projects.list(operator, result.client_id)[0][0].id
        skills = other.qualifications.skills(operator, result.client_id)
        assert [(s.username, s.skill) for s in skills] == [(labeler.username, "lang:de")]
        statuses = {s.username: s for s in other.qualifications.statuses(operator, result.client_id, restored_id)}
        assert statuses[labeler.username].passed is True and statuses[labeler.username].granted_by == "operator"
        again = other.gold.suspensions(operator, result.client_id, restored_id)
        assert [(s.username, s.n, s.accuracy, s.lifted_at) for s in again] == [
            (labeler.username, suspended[0].n, suspended[0].accuracy, None)]
        with other.uow_factory.for_client(result.client_id) as uow:
            scores = uow.session.execute(select(GoldScore.credit, GoldScore.answer_id, Answer.user_id)
                                         .join(Answer, Answer.id == GoldScore.answer_id)).all()
        restored_labeler = other.accounts.actor_by_username(labeler.username)
        assert [(credit, user_id) for credit, _, user_id in scores] == [(0.0, restored_labeler.user_id)]
        with pytest.raises(QueueRefused) as refused:  # still suspended in the restored project
            other.labeling.next_task(restored_labeler, result.client_id, restored_id)
        assert refused.value.reason == "suspended"


PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 40


def _with_files(world: World) -> tuple[int, str, str]:
    """Client A's project with two uploaded files, one of them referred to by a task: (project id,
    the referred file's id, the other's)."""
    project_id = make_project(world, "with-files", tasks=2)
    files = world.services.files
    shown = files.upload(world.operator, world.client_a, project_id, "prototype.png", "image/png", PNG)
    notes = files.upload(world.operator, world.client_a, project_id, "notes.txt", "text/plain", b"private notes")
    world.services.imports.import_rows(world.operator, world.client_a, project_id,
                                       [{"external_id": "picture", "data": {"text": shown.ref}}])
    return project_id, shown.id, notes.id


def _task_texts(services: Services, operator: Actor, client_id: int, project_id: int) -> list[str]:
    lines = b"".join(services.exports.export(operator, client_id, project_id).chunks).splitlines()
    return sorted(json.loads(line)["data"]["text"] for line in lines)


def test_a_bundle_restores_uploaded_files_in_their_projects(world: World, tmp_path: Path, templates: Templates) -> None:
    _, shown_id, notes_id = _with_files(world)
    with restored_elsewhere(world, tmp_path, templates) as (other, operator, result):
        assert (result.files, result.files_unplaced) == (2, 0)
        project_id = next(p.id for p in other.projects.list(operator, result.client_id)[0] if p.slug == "with-files")
        shown, data = other.files.download(operator, result.client_id, project_id, shown_id)
        assert (shown.name, shown.content_type, data) == ("prototype.png", "image/png", PNG)
        notes, data = other.files.download(operator, result.client_id, project_id, notes_id)
        assert (notes.name, notes.content_type, data) == ("notes.txt", "text/plain", b"private notes")
        assert f"file:{shown_id}" in _task_texts(other, operator, result.client_id, project_id)
        # Sealed at rest under the new install's key: the stored bytes are not the plaintext.
        stored = list((other.settings.home / "files").rglob(shown_id))
        assert len(stored) == 1 and PNG not in stored[0].read_bytes()


def test_a_bundle_restored_twice_gives_its_files_new_ids_and_the_tasks_follow(
    world: World, tmp_path: Path, templates: Templates
) -> None:
    _, shown_id, _ = _with_files(world)
    with restored_elsewhere(world, tmp_path, templates) as (other, operator, first):
        second = other.bundles.import_bundle(operator, tmp_path / "bundle", slug="acme-again")
        assert second.files == 2
        project_id = next(p.id for p in other.projects.list(operator, second.client_id)[0] if p.slug == "with-files")
        reference = next(t for t in _task_texts(other, operator, second.client_id, project_id) if t.startswith("file:"))
        new_id = reference.removeprefix("file:")
        assert new_id != shown_id
        assert other.files.download(operator, second.client_id, project_id, new_id)[1] == PNG
        # The first copy keeps the original id, and its own bytes.
        first_project = next(p.id for p in other.projects.list(operator, first.client_id)[0] if p.slug == "with-files")
        assert other.files.download(operator, first.client_id, first_project, shown_id)[1] == PNG


def _rewrite_signed(world: World, bundle: Path, name: str, content: bytes) -> None:
    """Change one file of a bundle and sign its manifest again, as the install that wrote it would
    have (a bundle of an earlier version of the format)."""
    manifest = json.loads((bundle / "manifest.json").read_bytes())
    assert manifest["files"][name] == hashlib.sha256((bundle / name).read_bytes()).hexdigest()
    (bundle / name).write_bytes(content)
    manifest["files"][name] = hashlib.sha256(content).hexdigest()
    manifest_bytes = json.dumps(manifest, indent=2, sort_keys=True).encode()
    (bundle / "manifest.json").write_bytes(manifest_bytes)
    signature = world.services.audit.signer.sign_document(manifest_bytes)
    (bundle / "manifest.sig").write_text(base64.b64encode(signature).decode())


def test_an_older_bundle_places_its_files_by_the_tasks_that_refer_to_them(
    world: World, tmp_path: Path, templates: Templates
) -> None:
    _, shown_id, notes_id = _with_files(world)
    bundle = tmp_path / "bundle"
    world.services.offboarding.offboard(world.operator, world.client_a, bundle)
    # Written before files carried their project and type: only id and name.
    index = [json.loads(line) for line in (bundle / "files.jsonl").read_text().splitlines()]
    _rewrite_signed(world, bundle, "files.jsonl",
                    b"".join(json.dumps({"id": e["id"], "name": e["name"]}).encode() + b"\n" for e in index))
    with another_install(tmp_path, templates) as (other, operator):
        result = other.bundles.import_bundle(operator, bundle)
        assert (result.files, result.files_unplaced) == (1, 1)  # the notes: no task refers to them
        project_id = next(p.id for p in other.projects.list(operator, result.client_id)[0] if p.slug == "with-files")
        shown, data = other.files.download(operator, result.client_id, project_id, shown_id)
        assert (shown.content_type, data) == ("image/png", PNG)  # the type read from the bytes
        with pytest.raises(NotFound):
            other.files.download(operator, result.client_id, project_id, notes_id)


def test_a_bundle_whose_file_index_names_a_missing_file_is_refused_before_anything_is_written(
    world: World, tmp_path: Path, templates: Templates
) -> None:
    _with_files(world)
    bundle = tmp_path / "bundle"
    world.services.offboarding.offboard(world.operator, world.client_a, bundle)
    lines = (bundle / "files.jsonl").read_bytes().splitlines()
    broken = json.loads(lines[1]) | {"id": "0" * 32}
    _rewrite_signed(world, bundle, "files.jsonl", lines[0] + b"\n" + json.dumps(broken).encode() + b"\n")
    with another_install(tmp_path, templates) as (other, operator):
        with pytest.raises(InvalidInput, match=r"files\.jsonl line 2"):
            other.bundles.import_bundle(operator, bundle)
        assert other.clients.list(operator)[0] == []  # no client half-restored


@pytest.mark.parametrize(("name", "line", "message"), [
    # A version 1 bundle's skips, in the client's file (a version 2 one's are in the projects' folders).
    ("skips.jsonl", {"project_id": 0, "task_id": 1, "user": "labeler_a", "reason": "", "created_at": "2026-01-01"},
     r"skips\.jsonl line 1: project 0 is not in the bundle"),
    ("predictors.jsonl", {"kind": "entry_point", "target": "m:f", "question": "no such question"},
     r"predictors\.jsonl line 1: .*no such question"),
    ("webhooks.jsonl", {"url": "http://127.0.0.1:9/", "events": ["task.exploded"], "secret": "whsec_AAAA",
                        "active": True, "created_at": "2026-01-01"},
     r"webhooks\.jsonl line 1: .*task\.exploded"),
])
def test_a_bad_line_of_the_carried_records_is_refused_before_anything_is_written(
    world: World, labelled: int, tmp_path: Path, templates: Templates, name: str, line: dict[str, object], message: str
) -> None:
    bundle = tmp_path / "bundle"
    world.services.offboarding.offboard(world.operator, world.client_a, bundle)
    if name == "skips.jsonl":
        _as_version_1(world, bundle)
    content = json.dumps({"project_id": labelled} | line).encode() + b"\n"
    _rewrite_signed(world, bundle, name, content)
    with another_install(tmp_path, templates) as (other, operator):
        with pytest.raises(InvalidInput, match=message):
            other.bundles.import_bundle(operator, bundle)
        assert other.clients.list(operator)[0] == []  # no client half-restored


def test_a_bundle_that_fails_halfway_leaves_nothing_of_the_client_behind(
    world: World, labelled: int, tmp_path: Path, templates: Templates, monkeypatch: pytest.MonkeyPatch
) -> None:
    bundle = tmp_path / "bundle"
    world.services.offboarding.offboard(world.operator, world.client_a, bundle)
    with another_install(tmp_path, templates) as (other, operator):
        # A bundle the check passes fails after the project's tasks and answers were written (the
        # disk filled up, say).
        def full_disk(*args: object) -> None:
            raise OSError(28, "No space left on device")

        with monkeypatch.context() as patched:
            patched.setattr(other.bundles, "_restore_answer_reviews", full_disk)
            with pytest.raises(OSError, match="No space left"):
                other.bundles.import_bundle(operator, bundle)
        assert other.clients.list(operator)[0] == []
        with other.uow_factory.all_clients() as uow:
            for table in CLIENT_OWNED_TABLES:
                assert uow.session.scalar(select(func.count()).select_from(text(table))) == 0, table
        assert not other.keyring.has_client_key(1)  # the one client this install ever had
        # The undoing is on the record, and the same bundle, mended, restores afterwards.
        other.audit.sequence()
        assert "client.bundle_import_undone" in b"".join(other.audit.trail(1)).decode()
        assert other.bundles.import_bundle(operator, bundle).tasks == 4  # the disk has room again


def _reviewed_project(world: World, slug: str, labelers: list[Actor], reason: str, value: str) -> int:
    """A project of client A with every kind of per-project record but predictions: answers rejected
    with a reason (a review note) and accepted, review states, a gold task answered (a gold score), a
    labeler qualified and suspended, a task skipped. ``reason`` and ``value`` tell the projects apart."""
    services, client = world.services, world.client_a
    reviewer = world.actors["reviewer_a"]
    project_id = make_project(world, slug, tasks=4, review_policy="all")
    for labeler in labelers:
        label_once(world, labeler, project_id, value)
    for decision, extra in (("reject", {"reason": reason}), ("accept", {})):
        item = services.reviews.next_item(reviewer, client, project_id)
        services.reviews.decide(reviewer, client, project_id, item.task_id, decision=decision, **extra)
    label_once(world, labelers[1], project_id, value)  # awaits review
    services.gold.import_rows(world.operator, client, project_id, [
        {"external_id": f"{slug}-gold", "data": {"text": f"gold of {slug}"}, "gold": {"sentiment": value}},
    ])
    services.gold.import_rows(world.operator, client, project_id, [
        {"external_id": f"{slug}-test", "data": {"text": f"test of {slug}"}, "gold": {"sentiment": "neutral"}},
    ], qualification=True)
    services.projects.update(world.operator, client, project_id, ProjectSettings(
        gold_rate=1.0, suspension_threshold=0.9, suspension_min_answers=1))
    services.qualifications.set_qualified(world.operator, client, project_id, labelers[0].username, qualified=True)
    task = services.labeling.next_task(labelers[0], client, project_id)  # the honeypot, at gold rate 1
    wrong = "negative" if value == "positive" else "positive"
    services.labeling.submit(labelers[0], client, project_id, task.task_id, {"sentiment": wrong})
    task = services.labeling.next_task(labelers[1], client, project_id)
    services.labeling.skip(labelers[1], client, project_id, task.task_id, f"{reason}, skipped")
    return project_id


def _project_records(services: Services, client_id: int, project_id: int) -> dict[str, object]:
    """A project's review states, answers' reviews (with their notes opened), gold answers, quality
    records and skips, by task external id and username: comparable across installs."""
    with services.uow_factory.for_client(client_id) as uow:
        session = uow.session
        names = dict(session.execute(select(Task.id, Task.external_id).where(Task.project_id == project_id)).all())
        users = dict(session.execute(select(User.id, User.username)).all())
        answers = {a.id: a for a in session.scalars(select(Answer).where(Answer.project_id == project_id))}
        notes = {
            (names[a.task_id], users[a.user_id]): (
                a.reviewed_at,
                uow.cipher(a.data_key_id).open("answer.review_note", a.id, a.review_note).decode()
                if a.review_note else None,
            )
            for a in answers.values() if a.reviewed_at is not None
        }
        gold = {
            names[t.id]: (json.loads(uow.cipher(t.data_key_id).open("task.gold", t.id, t.gold_answer)),
                          t.in_qualification)
            for t in session.scalars(select(Task).where(Task.project_id == project_id, Task.is_gold.is_(True)))
        }
        return {
            "states": {names[t]: state for t, state in session.execute(
                select(Task.id, Task.review_state).where(Task.project_id == project_id))},
            "notes": notes,
            "gold": gold,
            "qualified": {(users[q.user_id], q.passed, users.get(q.granted_by)) for q in session.scalars(
                select(QualificationResult).where(QualificationResult.project_id == project_id))},
            "suspended": {(users[s.user_id], s.n, s.accuracy, s.reason) for s in session.scalars(
                select(Suspension).where(Suspension.project_id == project_id))},
            # Each score with the task and person of the answer it points at.
            "scores": {(names[g.task_id], users[g.user_id], g.question, g.credit,
                        names[answers[g.answer_id].task_id], users[answers[g.answer_id].user_id])
                       for g in session.scalars(select(GoldScore).where(GoldScore.project_id == project_id))},
            "skipped": {(names[s.task_id], users[s.user_id], skip_reason(uow, s), s.created_at)
                        for s in session.scalars(select(Skip).where(Skip.project_id == project_id))},
        }


def _sign(world: World, bundle: Path, manifest: dict[str, object]) -> None:
    manifest_bytes = json.dumps(manifest, indent=2, sort_keys=True).encode()
    (bundle / "manifest.json").write_bytes(manifest_bytes)
    (bundle / "manifest.sig").write_text(base64.b64encode(world.services.audit.signer.sign_document(manifest_bytes))
                                         .decode())


# How version 1 ordered the client-wide files (the ledger by entry id, which its lines do not carry).
_VERSION_1_ORDER = {"reviews.jsonl": "id", "review_states.jsonl": "task_id", "answer_reviews.jsonl": "answer_id",
                    "gold.jsonl": "task_id"}


def _as_version_1(world: World, bundle: Path) -> None:
    """Rewrite a bundle as installs wrote it before projects had folders (bundle version 1): one
    file of each kind of record for the whole client (quality.jsonl with the skills), review states
    and review notes naming neither project nor task; signed again."""
    manifest = json.loads((bundle / "manifest.json").read_bytes())
    projects = [json.loads(line) for line in (bundle / "projects.jsonl").read_text().splitlines()]
    for kind in offboarding.PROJECT_RECORDS:
        lines = []
        for project in projects:
            own = f"projects/{project['id']}-{project['slug']}/{kind}"
            lines += [json.loads(line) for line in (bundle / own).read_text().splitlines()]
            (bundle / own).unlink()
            del manifest["files"][own]
        if kind in ("review_states.jsonl", "answer_reviews.jsonl"):
            lines = [{k: v for k, v in line.items() if k not in ("project_id", "task_id") or
                      (kind, k) == ("review_states.jsonl", "task_id")} for line in lines]
        if kind in _VERSION_1_ORDER:
            lines.sort(key=lambda line: line[_VERSION_1_ORDER[kind]])
        content = b"".join(json.dumps(line).encode() + b"\n" for line in lines)
        if kind == "quality.jsonl":
            content = (bundle / kind).read_bytes() + content  # the skills first, as version 1 wrote them
        (bundle / kind).write_bytes(content)
        manifest["files"][kind] = hashlib.sha256(content).hexdigest()
    for project in projects:
        (bundle / f"projects/{project['id']}-{project['slug']}").rmdir()
    manifest["bundle_version"] = 1
    _sign(world, bundle, manifest)


@pytest.mark.parametrize("layout", ["per-project", "version-1"])
def test_each_projects_review_states_notes_gold_and_quality_go_back_to_that_project(
    world: World, tmp_path: Path, restore_batch: int, templates: Templates, backend: str, layout: str
) -> None:
    """Two projects with the same kinds of records, restored from their own files (or, from a
    version 1 bundle, from the client-wide ones): each record comes back on its own project, under
    the new ids, whatever the batch size."""
    a, b = make_labelers(world, 2)
    made = {"first": _reviewed_project(world, "first", [a, b], "off topic in first", "positive"),
            "second": _reviewed_project(world, "second", [b, a], "sarcasm missed in second", "negative")}
    before = {slug: _project_records(world.services, world.client_a, project_id) for slug, project_id in made.items()}
    for records in before.values():  # every kind is there to be lost
        assert all(records.values()), records
        assert set(records["states"].values()) >= {"pending", "done"}  # type: ignore[attr-defined]
    assert before["first"]["notes"] != before["second"]["notes"]
    bundle = tmp_path / "bundle"
    world.services.offboarding.offboard(world.operator, world.client_a, bundle)
    if layout == "version-1":
        _as_version_1(world, bundle)
        assert not (bundle / "projects" / f"{made['first']}-first").exists()
    with another_install(tmp_path, templates, backend) as (other, operator):
        result = other.bundles.import_bundle(operator, bundle)
        assert result.projects == 2
        restored = {info.slug: info.id for info in other.projects.list(operator, result.client_id)[0]}
        after = {slug: _project_records(other, result.client_id, project_id) for slug, project_id in restored.items()}
        assert after == before
        skills = other.qualifications.skills(operator, result.client_id)
        assert skills == []  # none granted: the skills line of quality.jsonl is not a project's record


def _table_counts(services: Services) -> dict[str, int]:
    with services.engine.connect() as connection:
        return {table.name: connection.execute(select(func.count()).select_from(table)).scalar_one()
                for table in Base.metadata.sorted_tables if table.name not in CLIENT_OWNED_TABLES}


def _reviewed_bundle(world: World, tmp_path: Path, slug: str, kind: str, layout: str,
                     bundles: Bundles | None = None) -> tuple[int, Path, str]:
    """Client A offboarded with one ``_reviewed_project`` into a bundle of ``layout`` (per-project or
    version-1): the project's id, the bundle and the name of its ``kind`` records file in it. From
    ``bundles`` when given (the test's world is the template's, as it was copied)."""
    def build(bundle: Path) -> int:
        a, b = make_labelers(world, 2)
        project_id = _reviewed_project(world, slug, [a, b], "off topic", "positive")
        world.services.offboarding.offboard(world.operator, world.client_a, bundle)
        if layout == "version-1":
            _as_version_1(world, bundle)
        return project_id

    if bundles is None:
        bundle = tmp_path / "bundle"
        project_id = build(bundle)
    else:
        project_id, bundle = bundles.copy(world, tmp_path, f"reviewed-{slug}-{layout}", build)
    return project_id, bundle, kind if layout == "version-1" else f"projects/{project_id}-{slug}/{kind}"


def _refused_leaving_nothing(tmp_path: Path, templates: Templates, backend: str, bundle: Path,
                             pattern: str) -> InvalidInput:
    """Import ``bundle`` into another install: refused with a message matching ``pattern``, and that
    install left as it was (no client, nor its key; not even an account for someone the bundle names)."""
    with another_install(tmp_path, templates, backend) as (other, operator):
        counts = _table_counts(other)
        with pytest.raises(InvalidInput, match=pattern) as refused:
            other.bundles.import_bundle(operator, bundle)
        assert other.clients.list(operator)[0] == []
        assert _table_counts(other) == counts
        assert not other.keyring.has_client_key(1)
    return refused.value


@pytest.mark.parametrize(("kind", "bad", "message"), [
    ("review_states.jsonl", {"task_id": 1, "review_state": "maybe"}, "review_state is not none, pending or done"),
    ("answer_reviews.jsonl", {"answer_id": 1, "reviewed_at": "yesterday", "note": None}, "reviewed_at is not a time"),
    ("gold.jsonl", {"task_id": 10**9, "gold": "positive", "qualification": False}, "gold is not an object"),
    ("gold.jsonl", {"task_id": 1, "gold": {}, "qualification": False}, r"task 1 comes after task \d+ \(lines are in"),
    ("quality.jsonl", {"kind": "gold_score", "user": "labeler_a", "task_id": 1, "gold_kind": "honeypot",
                       "question": "sentiment", "credit": 1.0}, "answer_id is not an answer id"),
    ("ledger.jsonl", {"user": "labeler_a", "kind": "bonus", "amount": "lots", "currency": "USD",
                      "created_at": "2026-01-01T00:00:00"}, "amount is not a whole amount"),
    ("reviews.jsonl", {"id": 1, "task_id": 1, "reviewer": "", "decision": "accept", "created_at": "2026-01-01"},
     "reviewer is not a username"),
    ("skips.jsonl", {"task_id": 1, "user": "worker0", "reason": ["no"], "created_at": "2026-01-01"},
     "reason is not a text"),
    ("predictions.jsonl", {"task_id": 1, "model_version": "7", "predicted_at": "soon"}, "predicted_at is not a time"),
])
@pytest.mark.parametrize("layout", ["per-project", "version-1"])
def test_a_bad_line_of_a_projects_records_is_refused_naming_file_and_line_before_anything_is_written(
    world: World, bundles: Bundles, tmp_path: Path, templates: Templates, backend: str,
    kind: str, bad: dict[str, object], message: str, layout: str,
) -> None:
    project_id, bundle, name = _reviewed_bundle(world, tmp_path, "checked", kind, layout, bundles)
    lines = (bundle / name).read_bytes().splitlines(keepends=True)
    assert lines or kind in ("ledger.jsonl", "predictions.jsonl")  # a bad line after good ones: numbered right
    named = {} if (layout, kind) in (("version-1", "review_states.jsonl"), ("version-1", "answer_reviews.jsonl")) \
        else {"project_id": project_id}
    _rewrite_signed(world, bundle, name, b"".join(lines) + json.dumps(named | bad).encode() + b"\n")
    refused = _refused_leaving_nothing(tmp_path, templates, backend, bundle,
                                       rf"^{re.escape(name)} line {len(lines) + 1}: {message}")
    assert refused.details["line"] == len(lines) + 1


@pytest.mark.parametrize("layout", ["per-project", "version-1"])
def test_a_review_written_twice_is_refused_before_anything_is_written(
    world: World, bundles: Bundles, tmp_path: Path, templates: Templates, backend: str, layout: str
) -> None:
    """Its second copy would have taken the first's place in the id map that the review pay uses."""
    _, bundle, name = _reviewed_bundle(world, tmp_path, "twice", "reviews.jsonl", layout, bundles)
    lines = (bundle / name).read_bytes().splitlines(keepends=True)
    repeated = json.loads(lines[-1])["id"]
    _rewrite_signed(world, bundle, name, b"".join(lines) + lines[-1])
    _refused_leaving_nothing(tmp_path, templates, backend, bundle,
                             rf"^{re.escape(name)} line {len(lines) + 1}: review {repeated} "
                             rf"comes after review {repeated} \(lines are in review order")


def _without(line: bytes, *path: str | int) -> bytes:
    """A JSON line with the field at ``path`` (keys and list indexes) taken out."""
    item = json.loads(line)
    *parents, last = path
    inner = item
    for step in parents:
        inner = inner[step]
    del inner[last]
    return json.dumps(item).encode()


def _with(line: bytes, **fields: object) -> bytes:
    return json.dumps(json.loads(line) | fields).encode()


def _first_answered(lines: list[bytes]) -> int:
    return next(index for index, line in enumerate(lines) if json.loads(line)["answers"])


def _same_id(answers: list[dict[str, object]]) -> list[dict[str, object]]:
    """A task's two answers (two labelers', overlap 2), the second under the first's id."""
    first, second = answers
    return [first, second | {"id": first["id"]}]


# (file, the index of the line made bad, how, what the refusal says, the field it names). "tasks":
# the project's tasks file; the tasks and projects lines are the restore's own, the members' too.
_BAD_LINES = {
    "task-not-json": ("tasks", lambda lines: 1, lambda line: line[:-3], "not a JSON object", None),
    "task-without-answers": ("tasks", lambda lines: 1, lambda line: _without(line, "answers"),
                             "answers is missing", "answers"),
    "answer-without-labeler": ("tasks", _first_answered, lambda line: _without(line, "answers", 0, "labeler"),
                               r"answers\[0\]\.labeler is missing", "answers[0].labeler"),
    "task-without-data": ("tasks", lambda lines: 2, lambda line: _without(line, "data"), "data is missing", "data"),
    "task-data-unlike-the-schema": ("tasks", lambda lines: 3, lambda line: _with(line, data={"text": 7}),
                                    'field "text": expected text, got number', "text"),
    "task-out-of-order": ("tasks", lambda lines: 2, lambda line: _with(line, id=1),
                          r"task 1 is not after task \d+ \(tasks are in id order\)", "id"),
    "member-role": ("members.jsonl", lambda lines: len(lines) - 1, lambda line: _with(line, role="owner"),
                    "role is not manager, reviewer, labeler or viewer", "role"),
    "member-without-username": ("members.jsonl", lambda lines: 0, lambda line: _without(line, "username"),
                                "username is missing", "username"),
    "project-overlap": ("projects.jsonl", lambda lines: 0, lambda line: _with(line, overlap="two"),
                        "overlap is not a whole number", "overlap"),
    "project-without-budget-cap": ("projects.jsonl", lambda lines: 0, lambda line: _without(line, "budget_cap"),
                                   "budget_cap is missing", "budget_cap"),
    "project-schema": ("projects.jsonl", lambda lines: 0, lambda line: _with(line, schema={"fields": []}),
                       "schema: ", "schema"),
    # The settings' ranges, by the project service's own rules (found before the client is made).
    "project-review-sample-rate": ("projects.jsonl", lambda lines: 0, lambda line: _with(line, review_sample_rate=1.5),
                                   "review_sample_rate must be between 0 and 1", "review_sample_rate"),
    "project-lease": ("projects.jsonl", lambda lines: 0, lambda line: _with(line, lease_seconds=5),
                      "lease_seconds must be between 10 and 604800", "lease_seconds"),
    "project-overlap-range": ("projects.jsonl", lambda lines: 0, lambda line: _with(line, overlap=101),
                              "overlap must be between 1 and 100", "overlap"),
    "project-budget-cap": ("projects.jsonl", lambda lines: 0, lambda line: _with(line, budget_cap=-1),
                           "budget_cap must be zero or more", "budget_cap"),
    "project-question-rate": ("projects.jsonl", lambda lines: 0,
                              lambda line: _with(line, question_rates={"no_such_question": 5}),
                              "question_rates: no question 'no_such_question'", "question_rates.no_such_question"),
    "project-gold-rate": ("projects.jsonl", lambda lines: 0,
                          lambda line: _with(line, quality=json.loads(line)["quality"] | {"gold_rate": 2.0}),
                          "gold_rate must be between 0 and 1", "quality.gold_rate"),
    "project-max-overlap": ("projects.jsonl", lambda lines: 0,  # below the project's overlap of 2
                            lambda line: _with(line, quality=json.loads(line)["quality"] | {"max_overlap": 1}),
                            r"max_overlap must be between overlap \(2", "quality.max_overlap"),
    "project-skill": ("projects.jsonl", lambda lines: 0,
                      lambda line: _with(line, quality=json.loads(line)["quality"] | {"required_skills": ["No Tag"]}),
                      "skill 'No Tag' must look like", "quality.required_skills"),
    # The same task or answer twice: the restore would put the second over the first.
    "task-external-id-twice": ("tasks", lambda lines: 2, lambda line: _with(line, external_id="leaving-0"),
                               "external_id 'leaving-0' is in the file twice", "external_id"),
    "answer-id-twice": ("tasks", _first_answered,
                        lambda line: _with(line, answers=_same_id(json.loads(line)["answers"])),
                        r"answer \d+ is in the file twice", "answers[1].id"),
}


@pytest.mark.parametrize("case", list(_BAD_LINES))
def test_a_bad_line_of_a_tasks_file_members_or_projects_is_refused_naming_file_and_line_before_anything_is_written(
    world: World, bundles: Bundles, tmp_path: Path, templates: Templates, backend: str, case: str
) -> None:
    """The tasks files (a line per task, with its answers), members.jsonl and projects.jsonl are
    checked line by line with the projects' records: a bad line is refused naming its file, line and
    field, and the install is left as it was."""
    kind, pick, spoil, message, field = _BAD_LINES[case]
    labelled, bundle = _labelled_bundle(world, tmp_path, bundles)
    name = f"projects/{labelled}-leaving.jsonl" if kind == "tasks" else kind
    lines = (bundle / name).read_bytes().splitlines()
    index = pick(lines)
    lines[index] = spoil(lines[index])
    _rewrite_signed(world, bundle, name, b"".join(line + b"\n" for line in lines))
    refused = _refused_leaving_nothing(tmp_path, templates, backend, bundle,
                                       rf"^{re.escape(name)} line {index + 1}: .*{message}")
    assert refused.details["line"] == index + 1
    assert refused.details.get("field") == field


@pytest.mark.parametrize(("gold", "message"), [
    ({"sentiment": "furious"}, "gold: "),
    ({"no_such_question": "positive"}, "gold: "),
    ({}, "a gold task needs its answer"),
    (None, r"task 999999 is not in its project's tasks file"),  # None: a gold line of a task the file lacks
])
@pytest.mark.parametrize("layout", ["per-project", "version-1"])
def test_a_gold_answer_unlike_its_projects_schema_is_refused_naming_file_and_line_before_anything_is_written(
    world: World, bundles: Bundles, tmp_path: Path, templates: Templates, backend: str,
    gold: dict[str, object] | None, message: str, layout: str,
) -> None:
    """A gold answer is checked against its project's schema and its task's data as the gold import
    checks it, in step with the tasks file, before the client is made."""
    project_id, bundle, name = _reviewed_bundle(world, tmp_path, "checked", "gold.jsonl", layout, bundles)
    lines = (bundle / name).read_bytes().splitlines()
    assert len(lines) == 2  # the honeypot, then the qualification test's task
    if gold is None:
        lines.append(json.dumps({"project_id": project_id, "task_id": 999_999, "gold": {"sentiment": "positive"},
                                 "qualification": False}).encode())
        index, field = 2, "task_id"
    else:
        lines[1] = _with(lines[1], gold=gold)
        index, field = 1, "gold"
    _rewrite_signed(world, bundle, name, b"".join(line + b"\n" for line in lines))
    refused = _refused_leaving_nothing(tmp_path, templates, backend, bundle,
                                       rf"^{re.escape(name)} line {index + 1}: .*{message}")
    assert refused.details == {"line": index + 1, "field": field}


_AT = "2026-01-01T00:00:00"


# A line of each kind of a project's records that checks out alone, naming a task or answer the
# bundle lacks (gold answers: see the test above); the field it names.
@pytest.mark.parametrize(("kind", "line", "field"), [
    ("ledger.jsonl", {"user": "labeler_a", "kind": "review", "amount": 5, "currency": "USD", "review_id": None,
                      "answer_id": None, "task_id": 999_999, "note": None, "created_at": _AT}, "task_id"),
    ("ledger.jsonl", {"user": "labeler_a", "kind": "reversal", "amount": -5, "currency": "USD", "review_id": None,
                      "answer_id": 999_999, "task_id": None, "note": None, "created_at": _AT}, "answer_id"),
    ("reviews.jsonl", {"id": 10**9, "task_id": 999_999, "reviewer": "reviewer_a", "decision": "accept",
                       "reason": "", "created_at": _AT}, "task_id"),
    ("review_states.jsonl", {"task_id": 999_999, "review_state": "done"}, "task_id"),
    ("answer_reviews.jsonl", {"answer_id": 999_999, "reviewed_at": _AT, "note": "x"}, "answer_id"),
    ("quality.jsonl", {"kind": "gold_score", "user": "labeler_a", "task_id": 999_999, "answer_id": 999_999,
                       "gold_kind": "honeypot", "question": "sentiment", "credit": 1.0, "created_at": _AT}, "task_id"),
    ("skips.jsonl", {"task_id": 999_999, "user": "labeler_a", "reason": "", "created_at": _AT}, "task_id"),
    ("predictions.jsonl", {"task_id": 999_999, "model_version": "7", "predicted_at": _AT}, "task_id"),
])
@pytest.mark.parametrize("layout", ["per-project", "version-1"])
def test_a_projects_record_of_a_task_or_answer_the_bundle_lacks_is_refused_before_anything_is_written(
    world: World, bundles: Bundles, tmp_path: Path, templates: Templates, backend: str,
    kind: str, line: dict[str, object], field: str, layout: str,
) -> None:
    """Found by the check, naming the file, line and missing id, not halfway through the restore
    (nor, for the ledger, restored as pay for no task or answer)."""
    project_id, bundle, name = _reviewed_bundle(world, tmp_path, "lacking", kind, layout, bundles)
    lines = (bundle / name).read_bytes().splitlines(keepends=True)
    # A version 1 review state or note names no project: it is any project's.
    unnamed = (layout, kind) in (("version-1", "review_states.jsonl"), ("version-1", "answer_reviews.jsonl"))
    named = {} if unnamed else {"project_id": project_id}
    _rewrite_signed(world, bundle, name, b"".join(lines) + json.dumps(named | line).encode() + b"\n")
    whose = "any project's" if unnamed else "its project's"
    refused = _refused_leaving_nothing(
        tmp_path, templates, backend, bundle,
        rf"^{re.escape(name)} line {len(lines) + 1}: {field[:-3]} 999999 is not in {whose} tasks file$")
    assert refused.details == {"line": len(lines) + 1, "field": field}


@pytest.mark.parametrize("whose", ["missing", "another-project"])
@pytest.mark.parametrize("layout", ["per-project", "version-1"])
def test_a_ledger_entry_of_a_review_its_project_lacks_is_refused_before_anything_is_written(
    world: World, tmp_path: Path, templates: Templates, backend: str, layout: str, whose: str
) -> None:
    """A review's pay names its review: one that is not among its project's reviews would be restored
    as pay for no review. Found by the check, naming the file, line and id."""
    a, b = make_labelers(world, 2, prefix="other")
    other_project = _reviewed_project(world, "other", [a, b], "off topic", "negative")
    project_id, bundle, name = _reviewed_bundle(world, tmp_path, "lacking", "ledger.jsonl", layout)
    reviews = [json.loads(line) for line in (bundle / "reviews.jsonl").read_bytes().splitlines()] \
        if layout == "version-1" else \
        [json.loads(line) for slug, old_id in (("other", other_project), ("lacking", project_id))
         for line in (bundle / f"projects/{old_id}-{slug}/reviews.jsonl").read_bytes().splitlines()]
    own = next(r["id"] for r in reviews if r["project_id"] == project_id)
    review_id = 999_999 if whose == "missing" else next(r["id"] for r in reviews if r["project_id"] == other_project)
    lines = (bundle / name).read_bytes().splitlines(keepends=True)
    pay = {"project_id": project_id, "user": "reviewer_a", "kind": "review", "amount": 5, "currency": "USD",
           "answer_id": None, "task_id": None, "note": None, "created_at": _AT}
    added = [pay | {"review_id": own}, pay | {"review_id": review_id}]  # the first names its project's review
    _rewrite_signed(world, bundle, name, b"".join(lines) + b"".join(json.dumps(e).encode() + b"\n" for e in added))
    refused = _refused_leaving_nothing(
        tmp_path, templates, backend, bundle,
        rf"^{re.escape(name)} line {len(lines) + 2}: review {review_id} is not in its project's reviews$")
    assert refused.details == {"line": len(lines) + 2, "field": "review_id"}


def _paid_bundle(world: World, bundles: Bundles, tmp_path: Path, layout: str, client_currency: str,
                 currencies: Callable[[int], str]) -> tuple[Path, str, int]:
    """Client A offboarded (``make_labelled``: two answers paid) into a bundle of ``layout``, its
    client.json saying ``client_currency`` and its ledger line n (from 1) ``currencies(n)``, signed
    again: (the bundle, the ledger file's name, its lines)."""
    labelled, bundle = _labelled_bundle(world, tmp_path, bundles)
    if layout == "version-1":
        _as_version_1(world, bundle)
    name = "ledger.jsonl" if layout == "version-1" else f"projects/{labelled}-leaving/ledger.jsonl"
    lines = [json.loads(line) for line in (bundle / name).read_bytes().splitlines()]
    assert len(lines) == 2 and {line["currency"] for line in lines} == {"USD"}
    _rewrite_signed(world, bundle, name, b"".join(json.dumps(line | {"currency": currencies(number)}).encode() + b"\n"
                                                  for number, line in enumerate(lines, start=1)))
    client = json.loads((bundle / "client.json").read_bytes()) | {"currency": client_currency}
    _rewrite_signed(world, bundle, "client.json", json.dumps(client).encode())
    return bundle, name, len(lines)


# The client's currency (client.json), the last ledger line's (the others' are the client's), and
# what the refusal of that line says.
@pytest.mark.parametrize(("client_currency", "currency", "message"), [
    ("USD", "usd", "currency 'usd' is not an ISO 4217 code such as USD"),
    ("USD", "US dollars", "currency 'US dollars' is not an ISO 4217 code such as USD"),
    ("USD", "EUR", "currency EUR is not the client's currency, USD (client.json)"),
    ("EUR", "USD", "currency USD is not the client's currency, EUR (client.json)"),
])
@pytest.mark.parametrize("layout", ["per-project", "version-1"])
def test_a_ledger_line_whose_currency_is_no_code_or_not_the_clients_is_refused_before_anything_is_written(
    world: World, bundles: Bundles, tmp_path: Path, templates: Templates, backend: str,
    layout: str, client_currency: str, currency: str, message: str,
) -> None:
    """The restore writes each line's amount in the line's currency: one not a currency code, or not
    the client's, would put amounts that do not add up into the client's spend and the labelers'
    earnings. Found by the check, naming the file, line and field."""
    bundle, name, count = _paid_bundle(world, bundles, tmp_path, layout, client_currency,
                                       lambda number: currency if number == 2 else client_currency)
    refused = _refused_leaving_nothing(tmp_path, templates, backend, bundle, rf"^{re.escape(name)} line 2: "
                                                                        rf"{re.escape(message)}$")
    assert count == 2 and refused.details == {"line": 2, "field": "currency"}


def test_a_ledger_in_the_clients_own_currency_is_restored_in_it(
    world: World, bundles: Bundles, tmp_path: Path, templates: Templates, backend: str
) -> None:
    bundle, _, _ = _paid_bundle(world, bundles, tmp_path, "per-project", "EUR", lambda number: "EUR")
    with another_install(tmp_path, templates, backend) as (other, operator):
        result = other.bundles.import_bundle(operator, bundle)
        assert [c.currency for c in other.clients.list(operator)[0]] == ["EUR"]
        with other.uow_factory.for_client(result.client_id) as uow:
            entries = uow.session.scalars(select(LedgerEntry)).all()
        assert sorted((e.amount, e.currency) for e in entries) == [(100, "EUR"), (100, "EUR")]


def test_a_record_naming_another_projects_task_is_refused_before_anything_is_written(
    world: World, tmp_path: Path, templates: Templates, backend: str
) -> None:
    """Ids are the bundle's, each project's records restored against its own tasks."""
    other_project = make_project(world, "other", tasks=1)
    project_id, bundle, name = _reviewed_bundle(world, tmp_path, "lacking", "skips.jsonl", "per-project")
    tasks = (bundle / f"projects/{other_project}-other.jsonl").read_bytes().splitlines()
    foreign = json.loads(tasks[0])["id"]
    lines = (bundle / name).read_bytes().splitlines(keepends=True)
    skip = {"project_id": project_id, "task_id": foreign, "user": "labeler_a", "reason": "", "created_at": _AT}
    _rewrite_signed(world, bundle, name, b"".join(lines) + json.dumps(skip).encode() + b"\n")
    _refused_leaving_nothing(tmp_path, templates, backend, bundle,
                             rf"^{re.escape(name)} line {len(lines) + 1}: task {foreign} is not in its project's")


# client.json spoiled (None: not JSON), what the refusal says and the field it names.
@pytest.mark.parametrize(("spoil", "message", "field"), [
    (None, "not a JSON object", None),
    (lambda client: [client], "not a JSON object", None),
    (lambda client: {k: v for k, v in client.items() if k != "currency"}, "currency is missing", "currency"),
    (lambda client: client | {"currency": 840}, "currency is not a text", "currency"),
    (lambda client: client | {"currency": "usd"}, "currency must be an ISO 4217 code such as USD", "currency"),
    (lambda client: client | {"currency": "DOLLARS"}, "currency must be an ISO 4217 code", "currency"),
    (lambda client: {k: v for k, v in client.items() if k != "name"}, "name is missing", "name"),
    (lambda client: client | {"name": ["Acme"]}, "name is not a text", "name"),
    (lambda client: {k: v for k, v in client.items() if k != "slug"}, "slug is missing", "slug"),
    (lambda client: client | {"slug": "Not A Slug"}, "client slug 'Not A Slug' must be 1 to 63", "slug"),
])
def test_a_bad_client_json_is_refused_naming_it_and_the_field_before_anything_is_written(
    world: World, bundles: Bundles, tmp_path: Path, templates: Templates, backend: str,
    spoil: Callable[[object], object] | None, message: str, field: str | None,
) -> None:
    _, bundle = _labelled_bundle(world, tmp_path, bundles)
    client = json.loads((bundle / "client.json").read_bytes())
    _rewrite_signed(world, bundle, "client.json",
                    b'{"slug": "acme",' if spoil is None else json.dumps(spoil(client)).encode())
    refused = _refused_leaving_nothing(tmp_path, templates, backend, bundle, rf"^client\.json: {message}")
    assert refused.details == {"file": "client.json", "field": field}


def _without_key(document: dict[str, object], key: str) -> dict[str, object]:
    return {k: v for k, v in document.items() if k != key}


def _with_file(document: dict[str, object], name: str, digest: object) -> dict[str, object]:
    return document | {"files": dict(document["files"]) | {name: digest}}  # type: ignore[call-overload]


# manifest.json spoiled (None: not JSON), signed again; what the refusal says and the field it names.
@pytest.mark.parametrize(("spoil", "message", "field"), [
    (None, "not a JSON object", None),
    (lambda manifest: [manifest], "not a JSON object", None),
    (lambda manifest: _without_key(manifest, "public_key_pem"), "public_key_pem is missing", "public_key_pem"),
    (lambda manifest: manifest | {"public_key_pem": 7}, "public_key_pem is not a text", "public_key_pem"),
    (lambda manifest: manifest | {"public_key_pem": "a key"}, "public_key_pem: public key is neither PEM",
     "public_key_pem"),
    (lambda manifest: _without_key(manifest, "files"), "files is missing", "files"),
    (lambda manifest: manifest | {"files": sorted(manifest["files"])}, "files is not an object", "files"),
    (lambda manifest: _with_file(manifest, "../outside.json", "0" * 64),
     "files: '../outside.json' is not a path inside the bundle", "files"),
    (lambda manifest: _with_file(manifest, "client.json", 7), "files: the hash of client.json is not a SHA-256",
     "files.client.json"),
    (lambda manifest: manifest | {"bundle_version": "2"}, "bundle_version is not a whole number", "bundle_version"),
])
def test_a_bad_manifest_is_refused_naming_it_and_the_field_before_anything_is_written(
    world: World, bundles: Bundles, tmp_path: Path, templates: Templates, backend: str,
    spoil: Callable[[dict[str, object]], object] | None, message: str, field: str | None,
) -> None:
    _, bundle = _labelled_bundle(world, tmp_path, bundles)
    manifest = json.loads((bundle / "manifest.json").read_bytes())
    spoiled = b'{"files": {' if spoil is None else json.dumps(spoil(manifest), indent=2, sort_keys=True).encode()
    (bundle / "manifest.json").write_bytes(spoiled)
    (bundle / "manifest.sig").write_text(base64.b64encode(world.services.audit.signer.sign_document(spoiled)).decode())
    refused = _refused_leaving_nothing(tmp_path, templates, backend, bundle, rf"^manifest\.json: {message}")
    assert refused.details == {"file": "manifest.json", "field": field}


def test_a_manifest_signature_that_is_not_base64_is_refused_naming_it(
    world: World, bundles: Bundles, tmp_path: Path, templates: Templates, backend: str
) -> None:
    _, bundle = _labelled_bundle(world, tmp_path, bundles)
    (bundle / "manifest.sig").write_text("not base64!")
    refused = _refused_leaving_nothing(tmp_path, templates, backend, bundle, r"^manifest\.sig: not a base64 signature")
    assert refused.details == {"file": "manifest.sig"}


def test_a_bundle_of_a_newer_version_is_refused(
    world: World, labelled: int, tmp_path: Path, templates: Templates
) -> None:
    bundle = tmp_path / "bundle"
    world.services.offboarding.offboard(world.operator, world.client_a, bundle)
    manifest = json.loads((bundle / "manifest.json").read_bytes())
    _sign(world, bundle, manifest | {"bundle_version": offboarding.BUNDLE_VERSION + 1})
    with (another_install(tmp_path, templates) as (other, operator),
          pytest.raises(InvalidInput, match="bundle version 3 is newer")):
        other.bundles.import_bundle(operator, bundle)
