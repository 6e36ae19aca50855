"""Offboarding: a client leaves with everything, and nothing readable stays behind.

1. Export every project (settings, tasks, gold answers, suggestions, answers), reviews
   (decisions, the answers' review notes, the tasks' review states), quality records, skips,
   predictors, webhooks and their delivery log, uploaded files, the ledger, members and the
   client's audit trail into a directory (``BUNDLE_CARRIES``), with ``manifest.json`` listing
   each file's SHA-256, signed by the install's audit key. ``labelvault client import-bundle``
   restores it into another install.
2. Destroy the client's key-encryption key (outside the database). From then on every ciphertext
   of the client, in this database and in every backup taken before, is unreadable.
3. Delete the client's rows (every client-owned table) and files.
4. Write ``deletion-certificate.json``, signed: counts, time and the audit tree head after the
   offboarding entry.

The audit log keeps the client's entries (ids, actions, outcomes and hashes, never content) so
the log stays verifiable, and who saw the client's data stays recorded for the conflict walls.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import delete, func, select

from labelvault.audit import log as audit_log
from labelvault.audit.checkpoint import load_public_key, verify_document
from labelvault.audit.log import AuditService
from labelvault.crypto.keyring import DataCipher
from labelvault.domain.access import Actor, Role, UserPolicy
from labelvault.domain.predictors import PredictorConfig, check_predictor
from labelvault.domain.schema import parse_schema
from labelvault.errors import Conflict, CryptoError, InvalidInput, NotFound
from labelvault.io.answers import ANSWER_STATUSES
from labelvault.io.exporter import ExportService
from labelvault.io.rows import RowInvalid, RowParser
from labelvault.quality.gold import MAX_GOLD_ROWS, check_gold_answer
from labelvault.storage.ids import allocate_ids
from labelvault.storage.models import (
    CLIENT_OWNED_TABLES,
    Answer,
    Base,
    Client,
    GoldScore,
    LabelerSkill,
    LedgerEntry,
    Membership,
    Project,
    ProjectPredictor,
    QualificationResult,
    Review,
    Skip,
    Suspension,
    Task,
    TaskPrediction,
    User,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from labelvault.storage.unit_of_work import UnitOfWork, UnitOfWorkFactory
from labelvault.workflow.clients import SLUG, check_currency, check_slug
from labelvault.workflow.files import ALLOWED_TYPES, FileService, new_file_id
from labelvault.workflow.labeling import sealed_skip, skip_reason
from labelvault.workflow.ledger import ledger_note, sealed_note
from labelvault.workflow.manifests import ManifestChecker, file_sha256
from labelvault.workflow.projects import PROJECT_STATUSES, ProjectSettings
from labelvault.workflow.review import REVIEW_POLICIES
from labelvault.workflow.webhooks import parse_events, refresh_subscriptions, secret_bytes, secret_text

# 2: a project's ledger, reviews, review states, review notes, gold answers, quality records, skips
# and prediction versions in its own folder (``PROJECT_RECORDS``); 1: in one file of each kind for the
# whole client. (Version 2 bundles written before skips and predictions had their folder keep them in
# the client's files, as version 1 did: the import reads either.)
BUNDLE_VERSION = 2
Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class OffboardingResult:
    client_id: int
    slug: str
    directory: Path
    files: int
    deleted: dict[str, int]


_STREAM_ROWS = 10_000

# Where each table of a client's rows goes in the bundle, and why the others do not: a new table
# holding client rows must be named here (tests/integration/test_offboarding.py checks it).
BUNDLE_CARRIES = {
    "projects": "projects.jsonl",
    "tasks": "projects/<id>-<slug>.jsonl, projects/<id>-<slug>/gold.jsonl, projects/<id>-<slug>/review_states.jsonl",
    "answers": "projects/<id>-<slug>.jsonl, projects/<id>-<slug>/answer_reviews.jsonl",
    "memberships": "members.jsonl",
    "ledger_entries": "projects/<id>-<slug>/ledger.jsonl",
    "reviews": "projects/<id>-<slug>/reviews.jsonl",
    "labeler_skills": "quality.jsonl",
    "qualification_results": "projects/<id>-<slug>/quality.jsonl",
    "suspensions": "projects/<id>-<slug>/quality.jsonl",
    "gold_scores": "projects/<id>-<slug>/quality.jsonl",
    "skips": "projects/<id>-<slug>/skips.jsonl",
    "project_predictors": "predictors.jsonl",
    "task_predictions": "projects/<id>-<slug>/predictions.jsonl",
    "webhook_endpoints": "webhooks.jsonl",
    "webhook_deliveries": "webhook_deliveries.jsonl",
    "webhook_attempts": "webhook_deliveries.jsonl",
    "stored_files": "files/, files.jsonl",
}
BUNDLE_LEAVES_OUT = {
    "data_keys": "destroyed: the bundle holds the data in the clear, the install's keys never leave",
    "leases": "open work of the moment: a lease lasts minutes, its task is back in the queue after",
    "review_leases": "open work of the moment, as leases",
    "project_spend": "the ledger's sum, in stripes: rebuilt from ledger.jsonl on restore",
    "quality_cache": "computed from answers and gold scores again on demand",
}


def _skills(uow: UnitOfWork, usernames: dict[int, str]) -> Iterator[dict[str, Any]]:
    """The client's labeler skills (no project's: the bundle-wide ``quality.jsonl``), people by
    username (ids are this install's)."""
    for skill in uow.session.scalars(select(LabelerSkill).order_by(LabelerSkill.id)):
        yield {"kind": "skill", "user": usernames.get(skill.user_id), "skill": skill.skill,
               "granted_by": usernames.get(skill.granted_by) if skill.granted_by is not None else None,
               "created_at": skill.created_at}


def _project_quality(uow: UnitOfWork, project_id: int, usernames: dict[int, str]) -> Iterator[dict[str, Any]]:
    """A project's qualification results, suspensions and gold scores, people by username."""
    def name(user_id: int | None) -> str | None:
        return usernames.get(user_id) if user_id is not None else None

    results = select(QualificationResult).where(QualificationResult.project_id == project_id)
    for result in uow.session.scalars(results.order_by(QualificationResult.id)):
        yield {"kind": "qualification", "project_id": result.project_id, "user": name(result.user_id),
               "passed": result.passed, "score": result.score, "n": result.n,
               "granted_by": name(result.granted_by), "created_at": result.created_at}
    suspensions = select(Suspension).where(Suspension.project_id == project_id).order_by(Suspension.id)
    for suspension in uow.session.scalars(suspensions):
        yield {"kind": "suspension", "project_id": suspension.project_id, "user": name(suspension.user_id),
               "reason": suspension.reason, "n": suspension.n, "accuracy": suspension.accuracy,
               "upper": suspension.upper, "created_at": suspension.created_at, "lifted_at": suspension.lifted_at,
               "lifted_by": name(suspension.lifted_by)}
    scores = uow.session.scalars(
        select(GoldScore).where(GoldScore.project_id == project_id).order_by(GoldScore.id)
        .execution_options(yield_per=_STREAM_ROWS)
    )
    for score in scores:
        yield {"kind": "gold_score", "project_id": score.project_id, "task_id": score.task_id,
               "answer_id": score.answer_id, "user": name(score.user_id), "gold_kind": score.kind,
               "question": score.question, "credit": score.credit, "created_at": score.created_at}


# A project's records, a file of each kind in a folder beside its tasks file (bundle version 2), so
# that a restore reads each project's own lines once. Version 1 bundles have one file of each kind
# for the whole client instead; the import still reads those (``_ProjectRecords``).
PROJECT_RECORDS = ("ledger.jsonl", "reviews.jsonl", "review_states.jsonl", "answer_reviews.jsonl", "gold.jsonl",
                   "quality.jsonl", "skips.jsonl", "predictions.jsonl")


def project_folder(project_id: int, slug: str) -> str:
    """Where a project's records are in a bundle; its tasks are in ``<folder>.jsonl``."""
    return f"projects/{project_id}-{slug}"


def _write_project_records(directory: Path, folder: str, uow: UnitOfWork, project_id: int,
                           usernames: dict[int, str], cipher_of: Callable[[int], DataCipher]) -> list[str]:
    """One project's ledger, reviews, review states, answers' review notes, gold answers, quality
    records, skips (with their reasons) and the model version that last scored each task into its
    folder, each streamed (a project has millions of some); returns the files."""
    session = uow.session
    (directory / folder).mkdir()
    # The ledger (an entry per paid act) and the reviews: notes and reasons opened, the person named.
    entries = session.scalars(
        select(LedgerEntry).where(LedgerEntry.project_id == project_id).order_by(LedgerEntry.id)
        .execution_options(yield_per=_STREAM_ROWS)
    )
    _write_jsonl(directory / folder / "ledger.jsonl", (
        {
            "project_id": e.project_id,
            "user": usernames.get(e.user_id),
            "kind": e.kind,
            "amount": e.amount,
            "currency": e.currency,
            "answer_id": e.answer_id,
            "review_id": e.review_id,
            "task_id": e.task_id,
            "note": ledger_note(uow, e),
            "created_at": e.created_at,
        }
        for e in entries
    ))
    reviews = session.scalars(
        select(Review).where(Review.project_id == project_id).order_by(Review.id)
        .execution_options(yield_per=_STREAM_ROWS)
    )
    _write_jsonl(directory / folder / "reviews.jsonl", (
        {
            "id": review.id,
            "project_id": review.project_id,
            "task_id": review.task_id,
            "reviewer": usernames.get(review.reviewer_id),
            "decision": review.decision,
            "corrected_answer": orjson.Fragment(
                cipher_of(review.data_key_id).open("review.correction", review.id, review.corrected_value)
            )
            if review.corrected_value
            else None,
            "reason": cipher_of(review.data_key_id).open("review.reason", review.id, review.reason).decode()
            if review.reason
            else "",
            "started_at": review.started_at,
            "created_at": review.created_at,
            "time_spent_ms": review.time_spent_ms,
        }
        for review in reviews
    ))
    # In task order, as the tasks file: the import takes them in step with it (``_InTaskOrder``).
    states = session.execute(
        select(Task.id, Task.review_state).where(Task.project_id == project_id, Task.review_state != "none")
        .order_by(Task.id).execution_options(yield_per=_STREAM_ROWS)
    )
    _write_jsonl(directory / folder / "review_states.jsonl", (
        {"project_id": project_id, "task_id": task_id, "review_state": state} for task_id, state in states
    ))
    gold_tasks = session.execute(
        select(Task.id, Task.data_key_id, Task.gold_answer, Task.in_qualification)
        .where(Task.project_id == project_id, Task.is_gold.is_(True)).order_by(Task.id)
        .execution_options(yield_per=_STREAM_ROWS)
    )
    _write_jsonl(directory / folder / "gold.jsonl", (
        {
            "task_id": task_id,
            "project_id": project_id,
            "gold": orjson.Fragment(cipher_of(key_id).open("task.gold", task_id, gold)) if gold else {},
            "qualification": qualification,
        }
        for task_id, key_id, gold, qualification in gold_tasks
    ))
    reviewed = session.execute(
        select(Answer.id, Answer.task_id, Answer.data_key_id, Answer.reviewed_at, Answer.review_note)
        .where(Answer.project_id == project_id, Answer.reviewed_at.is_not(None)).order_by(Answer.id)
        .execution_options(yield_per=_STREAM_ROWS)
    )
    _write_jsonl(directory / folder / "answer_reviews.jsonl", (
        {
            "project_id": project_id,
            "answer_id": answer_id,
            "task_id": task_id,
            "reviewed_at": reviewed_at,
            "note": cipher_of(key_id).open("answer.review_note", answer_id, note).decode() if note else None,
        }
        for answer_id, task_id, key_id, reviewed_at, note in reviewed
    ))
    _write_jsonl(directory / folder / "quality.jsonl", _project_quality(uow, project_id, usernames))
    skips = session.scalars(
        select(Skip).where(Skip.project_id == project_id).order_by(Skip.id).execution_options(yield_per=_STREAM_ROWS)
    )
    _write_jsonl(directory / folder / "skips.jsonl", (
        {"project_id": s.project_id, "task_id": s.task_id, "user": usernames.get(s.user_id),
         "reason": skip_reason(uow, s), "created_at": s.created_at}
        for s in skips
    ))
    predictions = session.execute(
        select(TaskPrediction.task_id, TaskPrediction.model_version, TaskPrediction.predicted_at)
        .where(TaskPrediction.project_id == project_id)
        .order_by(TaskPrediction.task_id).execution_options(yield_per=_STREAM_ROWS)
    )
    _write_jsonl(directory / folder / "predictions.jsonl", (
        {"task_id": task_id, "project_id": project_id, "model_version": version, "predicted_at": at}
        for task_id, version, at in predictions
    ))
    return [f"{folder}/{name}" for name in PROJECT_RECORDS]


def _write_records(directory: Path, uow: UnitOfWork, cipher_of: Callable[[int], DataCipher]) -> list[str]:
    """The client's predictors and webhook endpoints (their secrets opened) with their delivery log
    (a line per project, endpoint or delivery: skips and predictions, a line per task, are in the
    projects' folders); returns the files."""
    session = uow.session
    _write_jsonl(directory / "predictors.jsonl", (
        {"project_id": p.project_id, "kind": p.kind, "target": p.target, "question": p.question,
         "model_name": p.model_name, "model_version": p.model_version, "batch_size": p.batch_size,
         "timeout_seconds": p.timeout_seconds, "auth_header": p.auth_header, "auth_secret": p.auth_secret,
         "options": json.loads(p.options_json) if p.options_json else {}, "created_at": p.created_at,
         "updated_at": p.updated_at}
        for p in session.scalars(select(ProjectPredictor).order_by(ProjectPredictor.id))
    ))
    _write_jsonl(directory / "webhooks.jsonl", (
        {"id": e.id, "project_id": e.project_id, "url": e.url, "events": e.events.split(), "active": e.active,
         "secret": secret_text(cipher_of(e.data_key_id).open("webhook.secret", e.id, e.secret)),
         "created_at": e.created_at}
        for e in session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id))
    ))
    _write_jsonl(directory / "webhook_deliveries.jsonl", _deliveries_with_attempts(uow))
    return ["predictors.jsonl", "webhooks.jsonl", "webhook_deliveries.jsonl"]


def _deliveries_with_attempts(uow: UnitOfWork) -> Iterator[dict[str, Any]]:
    """The webhook delivery log, each delivery with its attempts: both streamed in delivery order
    and merged (a project's log may hold a delivery per task)."""
    attempts = iter(uow.session.scalars(
        select(WebhookAttempt).order_by(WebhookAttempt.delivery_id, WebhookAttempt.attempt)
        .execution_options(yield_per=_STREAM_ROWS)
    ))
    attempt = next(attempts, None)
    deliveries = uow.session.scalars(
        select(WebhookDelivery).order_by(WebhookDelivery.id).execution_options(yield_per=_STREAM_ROWS)
    )
    for d in deliveries:
        log = []
        while attempt is not None and attempt.delivery_id <= d.id:
            if attempt.delivery_id == d.id:
                log.append({"attempt": attempt.attempt, "started_at": attempt.started_at,
                            "duration_ms": attempt.duration_ms, "status_code": attempt.status_code,
                            "error": attempt.error, "next_attempt_at": attempt.next_attempt_at})
            attempt = next(attempts, None)
        yield {"id": d.id, "project_id": d.project_id, "endpoint_id": d.endpoint_id, "message_id": d.message_id,
               "event_type": d.event_type, "body": orjson.Fragment(d.body), "status": d.status,
               "attempts": d.attempts, "created_at": d.created_at, "delivered_at": d.delivered_at,
               "last_status_code": d.last_status_code, "last_error": d.last_error, "log": log}


def _write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    count = 0
    with path.open("wb") as handle:
        for row in rows:
            handle.write(orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE))
            count += 1
    return count


class OffboardingService:
    def __init__(
        self, uow_factory: UnitOfWorkFactory, exports: ExportService, audit: AuditService, files: FileService
    ) -> None:
        self.uow_factory = uow_factory
        self.exports = exports
        self.audit = audit
        self.files = files

    # -- leaving ---------------------------------------------------------------------------

    def offboard(
        self, actor: Actor, client_id: int, directory: Path, progress: Progress | None = None
    ) -> OffboardingResult:
        UserPolicy.administer(actor)  # operators only: this destroys a tenant
        note = progress or (lambda _message: None)
        if directory.exists() and any(directory.iterdir()):
            raise Conflict(f"{directory} is not empty; offboarding writes into a new directory")
        directory.mkdir(parents=True, exist_ok=True)
        with self.uow_factory.system() as uow:
            client = uow.clients.get(client_id)
            if client is None:
                raise NotFound(f"client {client_id} not found")
            slug, name, currency, created = client.slug, client.name, client.currency, client.created_at
        if not self.uow_factory.keyring.has_client_key(client_id):
            raise CryptoError(f"the key of client {slug} is already destroyed; nothing can be exported")

        note("exporting")
        self.audit.record(
            "client.offboarding_started", actor=actor, client_id=client_id, object_kind="client", object_id=client_id
        )
        files = self._export(
            actor,
            client_id,
            directory,
            {"id": client_id, "slug": slug, "name": name, "currency": currency, "created_at": created},
        )
        manifest = {
            "bundle_version": BUNDLE_VERSION,
            "client": {"id": client_id, "slug": slug},
            "created_at": datetime.now(UTC).isoformat(),
            "install_id": self.audit.install_id,
            "public_key_pem": self.audit.public_key_pem(),
            "files": {name: file_sha256(directory / name) for name in sorted(files)},
        }
        manifest_bytes = json.dumps(manifest, indent=2, sort_keys=True).encode()
        (directory / "manifest.json").write_bytes(manifest_bytes)
        (directory / "manifest.sig").write_text(
            base64.b64encode(self.audit.signer.sign_document(manifest_bytes)).decode()
        )

        note("destroying keys")
        self.uow_factory.keyring.destroy_client_key(client_id)
        note("deleting rows and files")
        deleted = self.delete_client(actor, client_id, slug)
        deleted["stored_file_blobs"] = self.files.delete_client(client_id)
        checkpoint = self.audit.checkpoint(actor)
        certificate = {
            "client": {"id": client_id, "slug": slug, "name": name},
            "deleted_rows": deleted,
            "keys_destroyed": True,
            "time": datetime.now(UTC).isoformat(),
            "install_id": self.audit.install_id,
            "audit_tree": {"size": checkpoint.size, "checkpoint": checkpoint.text},
            "manifest_sha256": hashlib.sha256(manifest_bytes).hexdigest(),
        }
        certificate_bytes = json.dumps(certificate, indent=2, sort_keys=True).encode()
        (directory / "deletion-certificate.json").write_bytes(certificate_bytes)
        (directory / "deletion-certificate.sig").write_text(
            base64.b64encode(self.audit.signer.sign_document(certificate_bytes)).decode()
        )
        return OffboardingResult(client_id, slug, directory, len(files), deleted)

    def _export(self, actor: Actor, client_id: int, directory: Path, client: dict[str, Any]) -> list[str]:
        files = ["client.json"]
        (directory / "client.json").write_bytes(orjson.dumps(client))
        (directory / "projects").mkdir()
        with self.uow_factory.for_client(client_id) as uow:
            projects = list(uow.session.scalars(select(Project).order_by(Project.id)))
            members = uow.session.execute(
                select(User.username, Membership.role)
                .join(User, User.id == Membership.user_id)
                .order_by(User.username, Membership.role)
            ).all()
            usernames = dict(uow.session.execute(select(User.id, User.username)).all())
            ciphers: dict[int, DataCipher] = {}

            def cipher_of(key_id: int) -> DataCipher:
                if key_id not in ciphers:
                    ciphers[key_id] = uow.cipher(key_id)
                return ciphers[key_id]

            # Skills belong to no project; every other record is in its project's folder.
            _write_jsonl(directory / "quality.jsonl", _skills(uow, usernames))
            for project in projects:
                files += _write_project_records(directory, project_folder(project.id, project.slug), uow,
                                                project.id, usernames, cipher_of)
            files += _write_records(directory, uow, cipher_of)
            project_rows = [
                {
                    "id": p.id,
                    "slug": p.slug,
                    "name": p.name,
                    "schema": json.loads(p.schema_json),
                    "overlap": p.overlap,
                    "lease_seconds": p.lease_seconds,
                    "status": p.status,
                    "review_policy": p.review_policy,
                    "review_sample_rate": p.review_sample_rate,
                    "pay_on": p.pay_on,
                    "rate_per_answer": p.rate_per_answer,
                    "rate_per_review": p.rate_per_review,
                    "question_rates": json.loads(p.question_rates_json) if p.question_rates_json else None,
                    "budget_cap": p.budget_cap,
                    "quality": {
                        "gold_rate": p.gold_rate,
                        "show_gold_feedback": p.show_gold_feedback,
                        "qualification_required": p.qualification_required,
                        "qualification_pass_mark": p.qualification_pass_mark,
                        "required_skills": json.loads(p.required_skills_json) if p.required_skills_json else [],
                        "suspension_threshold": p.suspension_threshold,
                        "suspension_min_answers": p.suspension_min_answers,
                        "max_overlap": p.max_overlap,
                        "confidence_threshold": p.confidence_threshold,
                    },
                    "created_at": p.created_at,
                }
                for p in projects
            ]
        _write_jsonl(directory / "projects.jsonl", project_rows)
        _write_jsonl(directory / "members.jsonl", ({"username": u, "role": r} for u, r in members))
        files += ["projects.jsonl", "members.jsonl", "quality.jsonl"]
        for project in projects:
            name = f"{project_folder(project.id, project.slug)}.jsonl"
            stream = self.exports.export(actor, client_id, project.id, format="jsonl", for_offboarding=True)
            with (directory / name).open("wb") as handle:
                for chunk in stream.chunks:
                    handle.write(chunk)
            files.append(name)
        stored = self.files.export_client(client_id)
        if stored:
            (directory / "files").mkdir()
            index = []
            for file in stored:
                (directory / "files" / file.id).write_bytes(file.data)
                files.append(f"files/{file.id}")
                index.append({"id": file.id, "project_id": file.project_id, "name": file.name,
                              "content_type": file.content_type})
            _write_jsonl(directory / "files.jsonl", index)
            files.append("files.jsonl")
        with (directory / "audit.jsonl").open("wb") as handle:
            for line in self.audit.trail(client_id):
                handle.write(line)
        (directory / "audit-checkpoint.txt").write_text(self.audit.checkpoint(actor).text)
        files += ["audit.jsonl", "audit-checkpoint.txt"]
        return files

    def delete_client(
        self, actor: Actor, client_id: int, slug: str, action: str = "client.offboarded"
    ) -> dict[str, int]:
        """Delete the client's rows (every client-owned table) and the client, audited as ``action``;
        returns the rows deleted per table. Its key and files are the caller's to destroy."""
        deleted: dict[str, int] = {}
        with self.uow_factory.all_clients(write=True) as uow:
            # Dependents first: the reverse of the foreign-key order.
            for table in reversed(Base.metadata.sorted_tables):
                if table.name not in CLIENT_OWNED_TABLES:
                    continue
                count = uow.session.scalar(
                    select(func.count()).select_from(table).where(table.c.client_id == client_id)
                )
                uow.session.execute(delete(table).where(table.c.client_id == client_id))
                deleted[table.name] = int(count or 0)
            uow.session.execute(delete(Client).where(Client.id == client_id))
            # Accounts that only hold this client's imported Label Studio history: their display names
            # are its annotators' e-mails, so they leave with it (io/label_studio_import.py names them).
            imported = uow.session.execute(
                delete(User).where(User.username.like(f"ls:{slug}:%"), User.is_active.is_(False),
                                   User.password_hash.is_(None), User.is_operator.is_(False))
            )
            deleted["imported_accounts"] = int(imported.rowcount or 0)  # type: ignore[attr-defined]
            audit_log.append(uow, action, actor=actor, client_id=client_id, object_kind="client", object_id=client_id,
                             details={"deleted_rows": sum(deleted.values())})
            uow.commit()
        return deleted

    # -- arriving ----------------------------------------------------------------------------

    def verify_bundle(self, directory: Path) -> dict[str, Any]:
        """Check the manifest (``_checked_manifest``), its signature and every file's hash; returns
        the manifest."""
        try:
            manifest_bytes = (directory / "manifest.json").read_bytes()
            signature_text = (directory / "manifest.sig").read_text()
        except FileNotFoundError as missing:
            raise InvalidInput(f"not an offboarding bundle: {missing.filename} is missing") from None
        try:
            signature = base64.b64decode(signature_text.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise InvalidInput("manifest.sig: not a base64 signature", details={"file": "manifest.sig"}) from None
        manifest = _checked_manifest(manifest_bytes)
        verify_document(manifest["public_key_pem"], manifest_bytes, signature)
        for name, expected in manifest["files"].items():
            _MANIFEST.check_file(directory, name, expected)
        return manifest


_MANIFEST = ManifestChecker("manifest.json", "the bundle")


def _checked_manifest(manifest_bytes: bytes) -> dict[str, Any]:
    """manifest.json, checked for what is read of it (the key, the file index, the version) before
    its signature and hashes are: a malformed one is refused naming the file and the field."""
    manifest = _MANIFEST.load(manifest_bytes)
    _MANIFEST.field(manifest, "public_key_pem", str)
    _MANIFEST.field(manifest, "files", dict)
    try:
        load_public_key(manifest["public_key_pem"])
    except InvalidInput as error:
        raise _MANIFEST.refuse("public_key_pem", f"public_key_pem: {error.message}") from None
    _MANIFEST.files(manifest)
    version = manifest.get("bundle_version", 1)
    if not _is_id(version) or version < 1:
        raise _MANIFEST.refuse("bundle_version", "bundle_version is not a whole number from 1")
    return manifest


@dataclass(frozen=True, slots=True)
class BundleImportResult:
    client_id: int
    slug: str
    projects: int
    tasks: int
    answers: int
    reviews: int
    files: int = 0
    # Files of a bundle written before files carried their project, that no task refers to: no
    # project to put them in (they stay in the bundle).
    files_unplaced: int = 0


@dataclass(frozen=True, slots=True)
class _CheckedBundle:
    """A bundle, every line of its records checked before anything of it is written. What grows
    with the client (tasks, answers, the projects' records) stays in the files and is read again
    project by project when restored; kept here only what is small: the projects, the members, the
    people the records name, the carried records and the file index."""

    directory: Path
    files: set[str]  # the manifest's
    projects: list[dict[str, Any]]
    members: list[dict[str, Any]]
    people: set[str]  # named by the ledger, reviews, quality records and skips: each gets an account
    records: _BundleRecords
    file_entries: list[dict[str, Any]]


# Lines of a project's bundle file restored at a time: its tasks imported, then their answers.
RESTORE_BATCH = 5_000


@dataclass(slots=True)
class _RestoredTasks:
    task_ids: dict[int, int]  # the bundle's task id -> this install's
    answer_ids: dict[int, int]  # the bundle's answer id -> this install's
    tasks: int
    answers: int


def _restored_external_id(row: dict[str, Any]) -> str:
    """A restored task's external id: its own, or one made of its bundle id (the import needs one)."""
    return str(row["external_id"] or f"bundle-{row['id']}")


def _streamed_lines(directory: Path, name: str, files: set[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) of a bundle's JSONL file, read as the loop asks; none if the bundle
    predates the file."""
    if name not in files:
        return
    with (directory / name).open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            try:
                item = orjson.loads(line)
            except orjson.JSONDecodeError:
                item = None
            if not isinstance(item, dict):
                raise InvalidInput(f"{name} line {number}: not a JSON object", details={"line": number})
            yield number, item


def _batches(lines: Iterable[Any]) -> Iterator[list[Any]]:
    """``RESTORE_BATCH`` items at a time (read when called, so a test can make batches small)."""
    items = iter(lines)
    while batch := list(itertools.islice(items, RESTORE_BATCH)):
        yield batch


def _bundle_lines(directory: Path, name: str, files: set[str]) -> list[dict[str, Any]]:
    """The lines of a bundle's JSONL file; none if the bundle predates the file (its manifest lacks it)."""
    return [item for _, item in _streamed_lines(directory, name, files)]


def _user_ids(uow: UnitOfWork, usernames: set[str]) -> dict[str, int]:
    return {u.username: u.id for u in uow.session.scalars(select(User).where(User.username.in_(usernames)))}


Line = tuple[str, int, dict[str, Any]]  # (bundle file, line number, the line's object)

# Kinds of a project's records whose lines in a version 1 bundle do not name their project: they
# are matched to it by their task or answer.
_UNNAMED = frozenset({"review_states.jsonl", "answer_reviews.jsonl"})


@dataclass(frozen=True, slots=True)
class _ProjectRecords:
    """One project's records in a bundle: from its own files (``PROJECT_RECORDS``) or, in a version 1
    bundle, from the client's file of each kind, whose lines of other projects are passed over (such
    a bundle is read once per project, as before; a version 2 bundle's lines are read once; the
    first version 2 bundles kept skips and predictions in the client's files, read as version 1's)."""

    directory: Path
    files: set[str]
    project_id: int  # the bundle's
    folder: str

    def own(self, kind: str) -> bool:
        return f"{self.folder}/{kind}" in self.files

    def exact(self, kind: str) -> bool:
        """Whether every line ``lines(kind)`` gives is the project's: not so for the kinds whose
        version 1 lines name no project (the caller passes over those of other projects)."""
        return self.own(kind) or kind not in _UNNAMED

    def lines(self, kind: str) -> Iterator[Line]:
        own = f"{self.folder}/{kind}"
        if own in self.files:
            for number, item in _streamed_lines(self.directory, own, self.files):
                yield own, number, item
            return
        for number, item in _streamed_lines(self.directory, kind, self.files):
            named = item.get("project_id")
            if named == self.project_id or (named is None and kind in _UNNAMED):
                yield kind, number, item


class _InTaskOrder:
    """A project's review states or gold answers, taken batch by batch in step with its tasks file:
    both are in ascending task order (the check pass and ``_restore_tasks`` hold them to it), so only
    the lines of one batch are held at a time."""

    def __init__(self, records: _ProjectRecords, kind: str) -> None:
        self._lines = records.lines(kind)
        self._exact = records.exact(kind)
        self._next = next(self._lines, None)

    def take(self, task_ids: list[int]) -> dict[int, dict[str, Any]]:
        """The lines of these tasks (ascending ids, after every earlier call's), by task id."""
        return {task_id: item for task_id, (_, _, item) in self.take_lines(task_ids).items()}

    def take_lines(self, task_ids: list[int]) -> dict[int, Line]:
        """As ``take``, each line with its file and number."""
        wanted, found = set(task_ids), {}
        while self._next is not None and self._next[2]["task_id"] <= task_ids[-1]:
            task_id = self._next[2]["task_id"]
            if task_id in wanted:
                found[task_id] = self._next
            elif self._exact:
                raise self._refusal(self._next)
            self._next = next(self._lines, None)  # else a version 1 line of another project's task
        return found

    def finish(self) -> None:
        """Every line of the project's own was taken: one left names a task its tasks file lacks."""
        if self._next is not None and self._exact:
            raise self._refusal(self._next)

    @staticmethod
    def _refusal(line: Line) -> InvalidInput:
        name, number, item = line
        return InvalidInput(f"{name} line {number}: task {item['task_id']} is not in its project's tasks file",
                           details={"line": number, "field": "task_id"})


def _is_time(value: Any) -> bool:
    try:
        datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return False
    return True


def _is_name(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def _is_id(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _maybe(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    return lambda value: value is None or check(value)


Check = tuple[str, Callable[[Any], bool], str]  # (field, test, what the field must be)

# What the restore reads of each line, checked before anything is written.
_LINE_CHECKS: dict[str, tuple[Check, ...]] = {
    "ledger.jsonl": (("user", _is_name, "a username"), ("kind", _is_name, "a kind"),
                     ("amount", _is_id, "a whole amount"), ("currency", _is_name, "a currency"),
                     ("answer_id", _maybe(_is_id), "an answer id"), ("review_id", _maybe(_is_id), "a review id"),
                     ("task_id", _maybe(_is_id), "a task id"), ("note", _maybe(lambda v: isinstance(v, str)), "a text"),
                     ("created_at", _is_time, "a time")),
    "reviews.jsonl": (("id", _is_id, "an id"), ("task_id", _is_id, "a task id"), ("reviewer", _is_name, "a username"),
                      ("decision", lambda v: v in ("accept", "reject", "correct"), "accept, reject or correct"),
                      ("reason", _maybe(lambda v: isinstance(v, str)), "a text"), ("created_at", _is_time, "a time"),
                      ("started_at", _maybe(_is_time), "a time")),
    "review_states.jsonl": (("task_id", _is_id, "a task id"),
                            ("review_state", lambda v: v in ("none", "pending", "done"), "none, pending or done")),
    "answer_reviews.jsonl": (("answer_id", _is_id, "an answer id"), ("reviewed_at", _is_time, "a time"),
                             ("note", _maybe(lambda v: isinstance(v, str)), "a text or null")),
    "gold.jsonl": (("task_id", _is_id, "a task id"), ("gold", lambda v: isinstance(v, dict), "an object"),
                   ("qualification", lambda v: isinstance(v, bool), "true or false")),
    "quality.jsonl": (("kind", lambda v: v in _QUALITY_CHECKS, "skill, qualification, suspension or gold_score"),
                      ("user", _is_name, "a username"), ("created_at", _maybe(_is_time), "a time"),
                      ("granted_by", _maybe(_is_name), "a username"), ("lifted_by", _maybe(_is_name), "a username")),
    "skips.jsonl": (("task_id", _is_id, "a task id"), ("user", _is_name, "a username"),
                    ("reason", _maybe(lambda v: isinstance(v, str)), "a text"), ("created_at", _is_time, "a time")),
    "predictions.jsonl": (("task_id", _is_id, "a task id"),
                          ("model_version", lambda v: isinstance(v, str), "a model version"),
                          ("predicted_at", _is_time, "a time")),
}
_QUALITY_CHECKS: dict[str, tuple[Check, ...]] = {
    "skill": (("skill", _is_name, "a skill"),),
    "qualification": (("passed", lambda v: isinstance(v, bool), "true or false"), ("n", _is_id, "a count")),
    "suspension": (("reason", lambda v: isinstance(v, str), "a text"), ("n", _is_id, "a count"),
                   ("lifted_at", _maybe(_is_time), "a time")),
    "gold_score": (("task_id", _is_id, "a task id"), ("answer_id", _is_id, "an answer id"),
                   ("gold_kind", lambda v: v in ("honeypot", "qualification"), "honeypot or qualification"),
                   ("question", _is_name, "a question"), ("credit", lambda v: isinstance(v, int | float), "a number")),
}
# People a line names, who get an account if this install lacks one.
_PEOPLE = {"ledger.jsonl": ("user",), "reviews.jsonl": ("reviewer",),
           "quality.jsonl": ("user", "granted_by", "lifted_by"), "skips.jsonl": ("user",)}
# Kinds whose lines come in the order of a field, each value once: the restore takes review states
# and gold in step with the tasks file (task order); reviews were always written in id order, so a
# repeated review id (which would overwrite the first in the id map that review pay uses) is
# refused without keeping the ids.
_ORDERED_BY = {"review_states.jsonl": ("task_id", "task"), "gold.jsonl": ("task_id", "task"),
               "reviews.jsonl": ("id", "review")}


# The tasks, answers and reviews a record names, by the kind of its file (a quality line's: by its
# own kind), which the restore finds under their new ids: each must be in its project's tasks file
# (a review: in its project's reviews). Gold answers are matched to their tasks in step with the
# tasks file (``_check_tasks_file``).
_REFERENCES: dict[str, tuple[tuple[str, str], ...]] = {
    # Any may be null (a bonus names none); a review's pay names its review.
    "ledger.jsonl": (("task_id", "task"), ("answer_id", "answer"), ("review_id", "review")),
    "reviews.jsonl": (("task_id", "task"),), "review_states.jsonl": (("task_id", "task"),),
    "answer_reviews.jsonl": (("answer_id", "answer"),), "skips.jsonl": (("task_id", "task"),),
    "predictions.jsonl": (("task_id", "task"),), "gold_score": (("task_id", "task"), ("answer_id", "answer")),
}


@dataclass(frozen=True, slots=True)
class _TaskFileIds:
    """The task and answer ids of one project's tasks file, and the ids of its reviews (added as
    its reviews are checked, before the ledger that pays them)."""

    tasks: set[int]
    answers: set[int]
    reviews: set[int]  # empty until the project's reviews are checked

    def has(self, what: str, value: int) -> bool:
        return value in (self.tasks if what == "task" else self.answers if what == "answer" else self.reviews)


def _checked_project_records(directory: Path, files: set[str], projects: list[dict[str, Any]],
                             currency: str) -> set[str]:
    """Every line of the projects' tasks files and records checked as a stream, nothing written and
    nothing kept but the people the records name (returned) and, until the records are checked, the
    ids of the tasks and answers they may name: each project's own files, and the client's files of
    a version 1 bundle (whose quality.jsonl also holds the skills, as a version 2 one's holds only
    those). ``currency``: the client's (client.json, checked), the only one its ledger may hold."""
    folders = {p["id"]: project_folder(p["id"], p["slug"]) for p in projects}
    for old_id, folder in folders.items():
        if f"{folder}.jsonl" not in files:
            raise InvalidInput(f"project {old_id} has no tasks file {folder}.jsonl in the bundle",
                               details={"file": f"{folder}.jsonl"})
    # The gold answers first: a tasks file's check takes them in step with its tasks.
    _check_records_of_kind(directory, files, folders, "gold.jsonl", None, currency)
    # Every project's task and answer ids, held while its records are checked: a set costs ~60 bytes
    # an id, ~60 MB for a million tasks and as much again per million answers (the restore's id
    # maps of one project, old id -> new id, cost more).
    ids = {p["id"]: _check_tasks_file(directory, _ProjectRecords(directory, files, p["id"], folders[p["id"]]), p)
           for p in projects}
    people: set[str] = set()
    # The reviews before the ledger: a review's pay must name a review of its project.
    for kind in sorted(PROJECT_RECORDS, key=lambda kind: kind != "reviews.jsonl"):
        if kind != "gold.jsonl":
            people |= _check_records_of_kind(directory, files, folders, kind, ids, currency)
    return people


def _check_records_of_kind(directory: Path, files: set[str], folders: dict[int, str], kind: str,
                           ids: dict[int, _TaskFileIds] | None, currency: str) -> set[str]:
    """Every line of one kind of the projects' records, each project's own file then the client's
    (a version 1 bundle's), the tasks and answers it names found in ``ids`` (by the bundle's project
    id; None: not looked up here), a ledger line's currency the client's (``currency``); returns the
    people the lines name."""
    people: set[str] = set()
    sources = [(f"{folder}/{kind}", old_id) for old_id, folder in folders.items() if f"{folder}/{kind}" in files]
    for name, project_id in [*sources, (kind, None)]:
        ordered_by, last = _ORDERED_BY.get(kind), 0
        for number, item in _streamed_lines(directory, name, files):
            _check_line(name, number, kind, item, project_id, folders, files)
            if kind == "ledger.jsonl":
                _check_ledger_currency(name, number, item, currency)
            if ordered_by is not None:
                field, what = ordered_by
                if item[field] <= last:
                    raise InvalidInput(f"{name} line {number}: {what} {item[field]} comes after {what} "
                                       f"{last} (lines are in {what} order, each {what} once)",
                                       details={"line": number, "field": field})
                last = item[field]
            if ids is not None:
                owner = project_id if project_id is not None else item.get("project_id")
                _check_references(name, number, kind, item, owner, ids)
                if kind == "reviews.jsonl":  # named by the ledger's lines, checked after these
                    ids[owner].reviews.add(item["id"])
            people.update(item[key] for key in _PEOPLE.get(kind, ()) if item.get(key))
    return people


def _check_ledger_currency(name: str, number: int, item: dict[str, Any], currency: str) -> None:
    """A ledger line's currency (text, checked with its other fields): an ISO 4217 code, by the rule
    a client's currency is made with, and the client's own. The restore writes the line's amount in
    it, and the client's spend and a labeler's earnings add amounts of one currency."""
    try:
        check_currency(item["currency"])
    except InvalidInput:
        raise _refusal(name, number, "currency",
                       f"currency {item['currency']!r} is not an ISO 4217 code such as USD") from None
    if item["currency"] != currency:
        raise _refusal(name, number, "currency",
                       f"currency {item['currency']} is not the client's currency, {currency} (client.json)")


def _check_references(name: str, number: int, kind: str, item: dict[str, Any], project_id: int | None,
                      ids: dict[int, _TaskFileIds]) -> None:
    """The tasks and answers a checked line names, each in its project's tasks file (``project_id``
    None: a version 1 review state or note, which names no project: in any project's)."""
    for field, what in _REFERENCES.get(item["kind"] if kind == "quality.jsonl" else kind, ()):
        value = item.get(field)
        if value is None:
            continue
        if project_id is None:
            if not any(found.has(what, value) for found in ids.values()):
                raise _refusal(name, number, field, f"{what} {value} is not in any project's tasks file")
        elif not ids[project_id].has(what, value):
            where = "reviews" if what == "review" else "tasks file"
            raise _refusal(name, number, field, f"{what} {value} is not in its project's {where}")


def _check_line(name: str, number: int, kind: str, item: dict[str, Any], project_id: int | None,
                folders: dict[int, str], files: set[str]) -> None:
    """One line of a project's records: its fields, and the project it names (``project_id``: the
    project whose own file it is; None: a client-wide file's line)."""
    def refuse(field: str, message: str) -> InvalidInput:
        return InvalidInput(f"{name} line {number}: {message}", details={"line": number, "field": field})

    checks = _LINE_CHECKS[kind]
    if kind == "quality.jsonl" and item.get("kind") in _QUALITY_CHECKS:
        checks += _QUALITY_CHECKS[item["kind"]]
    for field, test, wanted in checks:
        if not test(item.get(field)):
            raise refuse(field, f"{field} is not {wanted}")
    named = item.get("project_id")
    if project_id is not None:
        if (named is not None and named != project_id) or item.get("kind") == "skill":
            raise refuse("project_id", f"the line is not of project {project_id}, whose file this is")
    elif item.get("kind") == "skill" or (named is None and kind in _UNNAMED):
        return  # the client's skills; a version 1 review state or note, matched by its task or answer
    elif named not in folders:
        raise refuse("project_id", f"project {named} is not in the bundle")
    elif f"{folders[named]}/{kind}" in files:
        raise refuse("project_id", f"project {named} has its own {folders[named]}/{kind}")


_ABSENT: Any = object()  # a field the line lacks (where null is a value the restore takes)


def _given(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    """The field must be on the line (the restore reads it as ``line[field]``), null allowed."""
    return lambda value: value is not _ABSENT and (value is None or check(value))


def _optional(check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    """The field may be left out or null (the restore reads it as ``line.get(field)``)."""
    return lambda value: value is _ABSENT or value is None or check(value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_username(value: Any) -> bool:
    # As an account is made (workflow/accounts.py): the restore grants roles by the name as written.
    return _is_name(value) and value == value.strip() and len(value) <= 100


def _is_object(value: Any) -> bool:
    return isinstance(value, dict)


def _one_of(values: Iterable[str]) -> str:
    *others, last = values
    return f"{', '.join(others)} or {last}"


def _refusal(name: str, number: int, field: str, message: str) -> InvalidInput:
    return InvalidInput(f"{name} line {number}: {message}", details={"line": number, "field": field})


def _check_fields(name: str, number: int, item: dict[str, Any], checks: Iterable[Check], prefix: str = "") -> None:
    """Each of ``checks`` on the line's fields, a field it lacks given as ``_ABSENT``."""
    for field, test, wanted in checks:
        value = item.get(field, _ABSENT)
        if not test(value):
            problem = "is missing" if value is _ABSENT else f"is not {wanted}"
            raise _refusal(name, number, f"{prefix}{field}", f"{prefix}{field} {problem}")


# The quality settings a project line may carry, passed on to ``ProjectSettings`` by name (null:
# the default, or none), their ranges checked there.
_QUALITY_CHECKS_OF_PROJECT: tuple[Check, ...] = (
    ("gold_rate", _optional(_is_number), "a number"),
    ("show_gold_feedback", _optional(lambda v: isinstance(v, bool)), "true or false"),
    ("qualification_required", _optional(lambda v: isinstance(v, bool)), "true or false"),
    ("qualification_pass_mark", _optional(_is_number), "a number"),
    ("required_skills", _optional(lambda v: isinstance(v, list) and all(isinstance(s, str) for s in v)),
     "a list of skills"),
    ("suspension_threshold", _optional(_is_number), "a number"),
    ("suspension_min_answers", _optional(_is_id), "a whole number"),
    ("max_overlap", _optional(_is_id), "a whole number"),
    ("confidence_threshold", _optional(_is_number), "a number"),
)
_QUALITY_SETTINGS = frozenset(field for field, _, _ in _QUALITY_CHECKS_OF_PROJECT)
# What the restore reads of a line of projects.jsonl; the values' ranges are the project service's
# to check (``ProjectService.check``, in the check pass, then again as the project is made).
_PROJECT_CHECKS: tuple[Check, ...] = (
    ("id", _is_id, "a project id"),
    ("slug", lambda v: isinstance(v, str) and bool(SLUG.match(v)), "1 to 63 lowercase letters, digits or dashes"),
    ("name", lambda v: isinstance(v, str), "a text"), ("schema", _is_object, "a schema object"),
    ("overlap", _is_id, "a whole number"), ("lease_seconds", _is_id, "a whole number"),
    ("status", lambda v: v in PROJECT_STATUSES, _one_of(PROJECT_STATUSES)),
    ("review_policy", lambda v: v in REVIEW_POLICIES, _one_of(REVIEW_POLICIES)),
    ("review_sample_rate", _is_number, "a number"), ("pay_on", lambda v: v in ("submit", "accept"), "submit or accept"),
    ("rate_per_answer", _is_id, "a whole amount"), ("rate_per_review", _is_id, "a whole amount"),
    ("budget_cap", _given(_is_id), "a whole amount or null"),
    ("question_rates", _optional(lambda v: _is_object(v) and all(_is_id(rate) for rate in v.values())),
     "an object of whole amounts"),
    ("quality", _optional(lambda v: _is_object(v) and v.keys() <= _QUALITY_SETTINGS), "an object of quality settings"),
)
_MEMBER_CHECKS: tuple[Check, ...] = (
    ("username", _is_username, "a username"),
    ("role", lambda v: v in {role.value for role in Role}, _one_of(role.value for role in Role)),
)


def _restored_settings(old: dict[str, Any]) -> ProjectSettings:
    """A bundle's project's queue, review, money and quality settings, as the restore sets them
    (and the check pass checks them). Bundles written before the quality settings were carried keep
    the defaults."""
    quality = old.get("quality") or {}
    return ProjectSettings(
        status=old["status"], review_policy=old["review_policy"],
        review_sample_rate=old["review_sample_rate"], pay_on=old["pay_on"],
        rate_per_answer=old["rate_per_answer"], rate_per_review=old["rate_per_review"],
        question_rates=old.get("question_rates"), budget_cap=old["budget_cap"],
        **{name: value for name, value in quality.items() if value is not None},
        clear_suspension_threshold=quality.get("suspension_threshold", 0) is None,
        clear_max_overlap=quality.get("max_overlap", 0) is None,
    )


def _checked_projects(directory: Path, check_settings: Callable[[dict[str, Any]], None]) -> list[dict[str, Any]]:
    """projects.jsonl, every line checked (a line per project: kept), each schema parsed and its
    settings' ranges checked by ``check_settings`` (the project service's rules: InvalidInput
    naming the field)."""
    name = "projects.jsonl"
    projects: list[dict[str, Any]] = []
    ids: set[int] = set()
    slugs: set[str] = set()
    for number, project in _streamed_lines(directory, name, {name}):
        _check_fields(name, number, project, _PROJECT_CHECKS)
        _check_fields(name, number, project.get("quality") or {}, _QUALITY_CHECKS_OF_PROJECT, prefix="quality.")
        if project["id"] in ids:
            raise _refusal(name, number, "id", f"project {project['id']} is in the file twice")
        if project["slug"] in slugs:
            raise _refusal(name, number, "slug", f"slug {project['slug']} is in the file twice")
        try:
            parse_schema(project["schema"])
        except InvalidInput as error:
            raise _refusal(name, number, "schema", f"schema: {error}") from None
        try:
            check_settings(project)
        except InvalidInput as error:
            field = (error.details.get("field") if isinstance(error.details, dict) else None) or "project"
            field = "required_skills" if field == "skill" else field  # check_skill names one skill
            # The quality settings are under "quality" on the line.
            raise _refusal(name, number, f"quality.{field}" if field in _QUALITY_SETTINGS else field,
                           error.message) from None
        ids.add(project["id"])
        slugs.add(project["slug"])
        projects.append(project)
    return projects


def _checked_client(directory: Path, files: set[str]) -> dict[str, Any]:
    """client.json, checked: what the client is made with (its slug, unless the operator gives
    another, its name and its currency), by the client service's own rules."""
    if _CLIENT.name not in files:  # the manifest's: its hash checked with the others
        raise InvalidInput(f"the bundle has no {_CLIENT.name}", details={"file": _CLIENT.name})
    client = _CLIENT.load((directory / _CLIENT.name).read_bytes())
    for field in ("slug", "name", "currency"):
        _CLIENT.field(client, field, str)
    try:
        check_slug(client["slug"], "client")
        check_currency(client["currency"])
    except InvalidInput as error:
        raise _CLIENT.refuse(error.details["field"], error.message) from None
    return client


# client.json is read as a manifest is: a JSON object whose missing or mistyped field is refused
# naming the file and the field.
_CLIENT = ManifestChecker("client.json", "the bundle")


def _checked_members(directory: Path) -> list[dict[str, Any]]:
    """members.jsonl, every line checked (a line per member and role: kept)."""
    name = "members.jsonl"
    members = list(_streamed_lines(directory, name, {name}))
    for number, member in members:
        _check_fields(name, number, member, _MEMBER_CHECKS)
    return [member for _, member in members]


# What the restore reads of a task's answer (``_restore_answers``), each field checked.
_ANSWER_CHECKS: tuple[Check, ...] = (
    ("id", _is_id, "an answer id"), ("labeler", _is_username, "a username"), ("value", _is_object, "an object"),
    ("status", lambda v: v in ANSWER_STATUSES, _one_of(ANSWER_STATUSES)),
    ("started_at", _is_time, "a time"), ("submitted_at", _is_time, "a time"),
    ("time_spent_ms", _is_id, "a whole number"),
)
# What the import of the task itself reads (``_import_task_rows``): present here, their values
# checked by the import's own row parser.
_TASK_FIELDS = ("external_id", "priority", "data", "metadata", "suggestions")


def _check_tasks_file(directory: Path, records: _ProjectRecords, project: dict[str, Any]) -> _TaskFileIds:
    """A project's tasks file, every line checked as a stream (a project may hold a million tasks:
    nothing of a line is kept but its ids), as the restore will read it: the task's fields against
    the project's schema, as its import does, its gold answer (taken in step from gold.jsonl, whose
    lines were checked alone already) as the gold import checks it, and its answers; no external id
    or answer id twice (the restore would put the second over the first). Returns its task and
    answer ids."""
    name = f"{records.folder}.jsonl"
    schema = parse_schema(project["schema"])
    parse = RowParser(schema, default_overlap=project["overlap"])
    gold = _InTaskOrder(records, "gold.jsonl")
    # The ids seen in this file: the external ids freed when it is checked, the task and answer ids
    # returned (the records of the project are checked against them).
    external_ids: set[str] = set()
    task_ids: set[int] = set()
    answer_ids: set[int] = set()
    last = 0
    for number, row in _streamed_lines(directory, name, {name}):
        if not _is_id(row.get("id")) or row["id"] <= last:  # the gold answers and review states follow it
            raise _refusal(name, number, "id",
                           f"task {row.get('id')!r} is not after task {last} (tasks are in id order)")
        last = row["id"]
        task_ids.add(last)
        for field in _TASK_FIELDS:
            if field not in row:
                raise _refusal(name, number, field, f"{field} is missing")
        if not _is_object(row["data"]):
            raise _refusal(name, number, "data", "data is not an object")
        external_id = _restored_external_id(row)
        try:
            parsed = parse({field: row[field] for field in _TASK_FIELDS} | {"external_id": external_id})
        except RowInvalid as error:
            raise _refusal(name, number, error.field or "data", error.message) from None
        if external_id in external_ids:
            raise _refusal(name, number, "external_id", f"external_id {external_id!r} is in the file twice")
        external_ids.add(external_id)
        if (golden := gold.take_lines([row["id"]]).get(row["id"])) is not None:
            gold_name, gold_number, item = golden
            try:
                check_gold_answer(schema, parsed[3], item["gold"])  # parsed[3]: the task's data, parsed
            except RowInvalid as error:
                raise _refusal(gold_name, gold_number, "gold", error.message) from None
        _check_fields(name, number, row, (("answers", lambda v: isinstance(v, list), "a list of answers"),))
        for index, answer in enumerate(row["answers"]):
            if not _is_object(answer):
                raise _refusal(name, number, f"answers[{index}]", f"answers[{index}] is not an object")
            _check_fields(name, number, answer, _ANSWER_CHECKS, prefix=f"answers[{index}].")
            if answer["id"] in answer_ids:
                raise _refusal(name, number, f"answers[{index}].id", f"answer {answer['id']} is in the file twice")
            answer_ids.add(answer["id"])
    gold.finish()  # a gold answer of a task the file lacks
    return _TaskFileIds(task_ids, answer_ids, set())


def _restore_project_quality(
    uow: UnitOfWork, project_id: int, records: list[Line], user_ids: dict[str, int],
    task_ids: dict[int, int], answer_ids: dict[int, int],
) -> None:
    """A batch of a restored project's qualification results, suspensions and gold scores (their
    people, tasks and answers under this install's new ids)."""
    def when(value: str | None) -> datetime | None:
        return datetime.fromisoformat(value) if value else None

    for name, number, record in records:
        user_id = user_ids[record["user"]]
        if record["kind"] == "qualification":
            uow.session.add(QualificationResult(
                project_id=project_id, user_id=user_id, passed=record["passed"], score=record.get("score"),
                n=record["n"], granted_by=user_ids.get(record.get("granted_by")),
                created_at=when(record.get("created_at")),
            ))
        elif record["kind"] == "suspension":
            uow.session.add(Suspension(
                project_id=project_id, user_id=user_id, reason=record["reason"], n=record["n"],
                accuracy=record.get("accuracy"), upper=record.get("upper"), created_at=when(record.get("created_at")),
                lifted_at=when(record.get("lifted_at")), lifted_by=user_ids.get(record.get("lifted_by")),
            ))
        elif record["kind"] == "gold_score":
            for field, old_id, new_ids in (("task_id", record["task_id"], task_ids),
                                           ("answer_id", record["answer_id"], answer_ids)):
                if old_id not in new_ids:
                    raise InvalidInput(f"{name} line {number}: {field} {old_id} is not in its project's tasks file",
                                       details={"line": number, "field": field})
            uow.session.add(GoldScore(
                project_id=project_id, task_id=task_ids[record["task_id"]], answer_id=answer_ids[record["answer_id"]],
                user_id=user_id, kind=record["gold_kind"], question=record["question"],
                credit=record["credit"], created_at=when(record.get("created_at")),
            ))


def _restored_task(line: Line, task_ids: dict[int, int]) -> int:
    """This install's id of the task a line names, which must be in its project's tasks file."""
    name, number, item = line
    if item["task_id"] not in task_ids:
        raise InvalidInput(f"{name} line {number}: task {item['task_id']} is not in its project's tasks file",
                           details={"line": number, "field": "task_id"})
    return task_ids[item["task_id"]]


def _restore_skips(uow: UnitOfWork, project_id: int, skips: list[Line], user_ids: dict[str, int],
                   task_ids: dict[int, int]) -> None:
    """A batch of a restored project's skips, their reasons sealed under the client's new key (a
    labeler still never gets a task they skipped)."""
    key = uow.active_cipher()
    for line, skip_id in zip(skips, allocate_ids(uow.session, Skip, len(skips)), strict=True):
        skip = line[2]
        uow.session.add(sealed_skip(skip_id, key, project_id=project_id, task_id=_restored_task(line, task_ids),
                                    user_id=user_ids[skip["user"]], reason=skip.get("reason") or "",
                                    created_at=datetime.fromisoformat(skip["created_at"])))


def _restore_predictions(uow: UnitOfWork, project_id: int, predictions: list[Line], task_ids: dict[int, int]) -> None:
    """A batch of the model versions that last scored the restored project's tasks (so a predictor
    run does not score them again)."""
    for line in predictions:
        uow.session.add(TaskPrediction(task_id=_restored_task(line, task_ids), project_id=project_id,
                                       model_version=line[2]["model_version"],
                                       predicted_at=datetime.fromisoformat(line[2]["predicted_at"])))


@dataclass(frozen=True, slots=True)
class _BundleRecords:
    """A bundle's predictors and webhook endpoints, checked: a line per project or endpoint, small
    enough to hold (webhook delivery logs stay in the bundle: a new install does not send an old
    install's events again)."""

    predictors: dict[int, PredictorConfig]  # by the bundle's project id
    webhooks: list[dict[str, Any]]

    def restore(self, uow: UnitOfWork, old_project_id: int, project_id: int) -> None:
        """One restored project's predictor and webhook endpoints, the secrets under the client's new key."""
        config = self.predictors.get(old_project_id)
        if config is not None:
            uow.session.add(ProjectPredictor(
                project_id=project_id, kind=config.kind, target=config.target, question=config.question,
                model_name=config.model_name, model_version=config.model_version, batch_size=config.batch_size,
                timeout_seconds=config.timeout_seconds, auth_header=config.auth_header,
                auth_secret=config.auth_secret, options_json=json.dumps(config.options) if config.options else None,
            ))
        endpoints = [e for e in self.webhooks if e["project_id"] == old_project_id]
        if endpoints:
            key_id, cipher = uow.active_cipher()
            for endpoint, endpoint_id in zip(endpoints, allocate_ids(uow.session, WebhookEndpoint, len(endpoints)),
                                             strict=True):
                uow.session.add(WebhookEndpoint(
                    id=endpoint_id, project_id=project_id, url=endpoint["url"], events=" ".join(endpoint["events"]),
                    data_key_id=key_id, active=endpoint["active"],
                    created_at=datetime.fromisoformat(endpoint["created_at"]),
                    secret=cipher.seal("webhook.secret", endpoint_id, secret_bytes(endpoint["secret"])),
                ))
            uow.flush()
            refresh_subscriptions(uow, project_id)


def _checked_records(directory: Path, bundle_files: set[str], schemas: dict[int, Any]) -> _BundleRecords:
    """predictors.jsonl and webhooks.jsonl, every line checked (none of them in a bundle written
    before they were carried)."""
    def refuse(name: str, number: int, message: str, field: str) -> InvalidInput:
        return InvalidInput(f"{name} line {number}: {message}", details={"line": number, "field": field})

    def in_bundle(name: str, number: int, record: dict[str, Any]) -> None:
        if record.get("project_id") not in schemas:
            raise refuse(name, number, f"project {record.get('project_id')} is not in the bundle", "project_id")

    predictors: dict[int, PredictorConfig] = {}
    for number, row in enumerate(_bundle_lines(directory, "predictors.jsonl", bundle_files), start=1):
        in_bundle("predictors.jsonl", number, row)
        fields = {name: row[name] for name in ("kind", "target", "question", "model_name", "model_version",
                                              "batch_size", "timeout_seconds", "auth_header", "auth_secret",
                                              "options") if name in row}
        try:
            predictors[row["project_id"]] = check_predictor(PredictorConfig(**fields),
                                                            parse_schema(schemas[row["project_id"]]))
        except (InvalidInput, TypeError) as error:
            raise refuse("predictors.jsonl", number, str(error), "predictor") from None
    webhooks = _bundle_lines(directory, "webhooks.jsonl", bundle_files)
    for number, endpoint in enumerate(webhooks, start=1):
        in_bundle("webhooks.jsonl", number, endpoint)
        try:
            endpoint["events"] = parse_events(endpoint.get("events") or [])
            secret_bytes(endpoint["secret"])
        except (InvalidInput, KeyError, TypeError, ValueError) as error:
            raise refuse("webhooks.jsonl", number, f"not a webhook endpoint ({error})", "events") from None
    return _BundleRecords(predictors, webhooks)


_FILE_ID = re.compile(r"[0-9a-f]{32}")
_FILE_REFERENCE = re.compile(rb"file:(" + _FILE_ID.pattern.encode() + rb")")
# What a file starts with, for bundles written before files carried their content type.
_MAGIC = ((b"\x89PNG", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF8", "image/gif"),
          (b"%PDF", "application/pdf"))


def _sniff_content_type(data: bytes) -> str:
    for magic, content_type in _MAGIC:
        if data.startswith(magic):
            return content_type
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "text/plain"


def _bundle_file_entries(directory: Path, bundle_files: set[str], project_ids: set[int]) -> list[dict[str, Any]]:
    """files.jsonl, every line checked: its bytes in the bundle, a project of the bundle, a type
    this install takes."""
    entries = _bundle_lines(directory, "files.jsonl", bundle_files)
    for number, entry in enumerate(entries, start=1):
        file_id = entry.get("id")
        if not isinstance(file_id, str) or not _FILE_ID.fullmatch(file_id) or f"files/{file_id}" not in bundle_files:
            raise InvalidInput(f"files.jsonl line {number}: no file {file_id!r} in the bundle",
                               details={"line": number, "field": "id"})
        if "project_id" in entry and entry["project_id"] not in project_ids:
            raise InvalidInput(f"files.jsonl line {number}: project {entry['project_id']} is not in the bundle",
                               details={"line": number, "field": "project_id"})
        if "content_type" in entry and entry["content_type"] not in ALLOWED_TYPES:
            raise InvalidInput(f"files.jsonl line {number}: files of type {entry['content_type']!r} are not accepted",
                               details={"line": number, "field": "content_type"})
    return entries


def _with_file_ids(value: Any, renamed: dict[str, str]) -> Any:
    """Task data with its ``file:<id>`` references to renamed files changed to their new ids."""
    if isinstance(value, str):
        if value.startswith("file:") and value[5:] in renamed:
            return f"file:{renamed[value[5:]]}"
        return value
    if isinstance(value, dict):
        return {key: _with_file_ids(item, renamed) for key, item in value.items()}
    if isinstance(value, list):
        return [_with_file_ids(item, renamed) for item in value]
    return value


class BundleImporter:
    """Restores an offboarding bundle into this install: the client, its projects (with their
    queue, money and quality settings), tasks (gold ones with their gold answers), answers, reviews,
    skills, qualification results, suspensions and gold scores, skips, predictors and prediction
    versions, webhook endpoints, members (as token-only accounts where missing), ledger and uploaded
    files, sealed under new keys."""

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        offboarding: OffboardingService,
        clients: Any,
        projects: Any,
        imports: Any,
        accounts: Any,
        gold: Any,
        files: FileService,
    ) -> None:
        self.uow_factory = uow_factory
        self.offboarding = offboarding
        self.clients = clients
        self.projects = projects
        self.imports = imports
        self.accounts = accounts
        self.gold = gold
        self.files = files

    def import_bundle(self, actor: Actor, directory: Path, *, slug: str | None = None) -> BundleImportResult:
        UserPolicy.administer(actor)
        manifest = self.offboarding.verify_bundle(directory)
        version = manifest.get("bundle_version", 1)
        if not isinstance(version, int) or version > BUNDLE_VERSION:
            raise InvalidInput(f"bundle version {version!r} is newer than this install reads (up to {BUNDLE_VERSION})",
                               details={"file": "manifest.json", "field": "bundle_version"})
        # Everything read and checked before anything is written: a bad line leaves no half-restored
        # client. Checked as streams: a large client's records are read again when restored.
        bundle_files = set(manifest["files"])
        client = _checked_client(directory, bundle_files)
        old_projects = _checked_projects(directory, self._check_project_settings)
        members = _checked_members(directory)
        people = _checked_project_records(directory, bundle_files, old_projects, client["currency"])
        records = _checked_records(directory, bundle_files, {p["id"]: p["schema"] for p in old_projects})
        file_entries = _bundle_file_entries(directory, bundle_files, {p["id"] for p in old_projects})
        # A file keeps its id unless a file of this install has it (the bundle restored twice):
        # then it gets a new one, and the tasks' references follow.
        renamed = {old_id: new_file_id() for old_id in self.files.taken({e["id"] for e in file_entries})}
        info = self.clients.create(actor, slug or client["slug"], client["name"], currency=client["currency"])
        checked = _CheckedBundle(directory, bundle_files, old_projects, members, people, records, file_entries)
        try:
            return self._restore(actor, checked, info, renamed)
        except BaseException:
            # No half-restored client: what was written goes, with the new key and files.
            self.offboarding.delete_client(actor, info.id, info.slug, action="client.bundle_import_undone")
            self.uow_factory.keyring.destroy_client_key(info.id)
            self.files.delete_client(info.id)
            raise

    def _check_project_settings(self, old: dict[str, Any]) -> None:
        """What creating the bundle's project and setting its settings will check (``_restore``)."""
        self.projects.check(slug=old["slug"], schema=old["schema"], overlap=old["overlap"],
                            lease_seconds=old["lease_seconds"], changes=_restored_settings(old))

    def _restore(self, actor: Actor, bundle: _CheckedBundle, info: Any, renamed: dict[str, str]) -> BundleImportResult:
        """Everything of a checked bundle into the client just created for it: project by project,
        each read from its own files in batches of ``RESTORE_BATCH`` lines, each batch a transaction
        (the caller undoes the whole on a failure)."""
        directory, records = bundle.directory, bundle.records
        referenced: dict[str, int] = {}  # file id -> the bundle's project whose tasks refer to it
        usernames: set[str] = set()
        for member in bundle.members:
            self._ensure_user(actor, member["username"])
            self.accounts.grant_role(actor, info.id, member["username"], member["role"])
            usernames.add(member["username"])
        tasks = answers = reviews_restored = 0
        # People with records, paid, reviewing or skipping once, who are no longer members: their
        # records stay theirs.
        self._ensure_users(actor, bundle.people, usernames)
        new_project_ids: dict[int, int] = {}
        for old in bundle.projects:
            project = self.projects.create(
                actor,
                info.id,
                slug=old["slug"],
                name=old["name"],
                schema=old["schema"],
                overlap=old["overlap"],
                lease_seconds=old["lease_seconds"],
            )
            new_project_ids[old["id"]] = project.id
            folder = project_folder(old["id"], old["slug"])
            kept = _ProjectRecords(directory, bundle.files, old["id"], folder)
            restored = self._restore_tasks(actor, kept, info.id, project.id, usernames, renamed=renamed,
                                           referenced=referenced)
            tasks += restored.tasks
            answers += restored.answers
            new_task_ids, new_answer_ids = restored.task_ids, restored.answer_ids
            self._restore_answer_reviews(info.id, kept, new_answer_ids)
            new_review_ids: dict[int, int] = {}
            for reviewed in _batches(kept.lines("reviews.jsonl")):
                with self.uow_factory.for_client(info.id, write=True) as uow:
                    new_review_ids.update(self._restore_reviews(uow, project.id, reviewed, new_task_ids,
                                                                _user_ids(uow, usernames)))
                    uow.commit()
            reviews_restored += len(new_review_ids)
            for paid in _batches(kept.lines("ledger.jsonl")):
                with self.uow_factory.for_client(info.id, write=True) as uow:
                    ids = _user_ids(uow, usernames)
                    for _, _, entry in paid:  # the money, with its original times, against the new ids
                        uow.ledger.append(
                            project_id=project.id, amount=entry["amount"], currency=entry["currency"],
                            user_id=ids[entry["user"]], kind=entry["kind"],
                            answer_id=new_answer_ids.get(entry.get("answer_id")),
                            review_id=new_review_ids.get(entry.get("review_id")),
                            task_id=new_task_ids.get(entry.get("task_id")), **sealed_note(uow, entry.get("note") or ""),
                            created_at=datetime.fromisoformat(entry["created_at"]),
                        )
                        uow.add_spend(project.id, ids[entry["user"]], entry["amount"])
                    uow.commit()
            for scored in _batches(kept.lines("quality.jsonl")):
                with self.uow_factory.for_client(info.id, write=True) as uow:
                    _restore_project_quality(uow, project.id, scored, _user_ids(uow, usernames), new_task_ids,
                                             new_answer_ids)
                    uow.commit()
            for skipped in _batches(kept.lines("skips.jsonl")):
                with self.uow_factory.for_client(info.id, write=True) as uow:
                    _restore_skips(uow, project.id, skipped, _user_ids(uow, usernames), new_task_ids)
                    uow.commit()
            for predicted in _batches(kept.lines("predictions.jsonl")):
                with self.uow_factory.for_client(info.id, write=True) as uow:
                    _restore_predictions(uow, project.id, predicted, new_task_ids)
                    uow.commit()
            with self.uow_factory.for_client(info.id, write=True) as uow:
                records.restore(uow, old["id"], project.id)
                audit_log.append(
                    uow,
                    "client.bundle_imported",
                    actor=actor,
                    client_id=info.id,
                    object_kind="project",
                    object_id=project.id,
                    details={"tasks": restored.tasks},
                )
                uow.commit()
            # The queue, review, money and quality settings last: a paused or archived project takes
            # no import.
            self.projects.update(actor, info.id, project.id, _restored_settings(old))
        placed = self._restore_files(actor, info.id, directory, bundle.file_entries, renamed, referenced,
                                     new_project_ids)
        # The client's skills: quality.jsonl's lines that name no project.
        skills = (item for _, item in _streamed_lines(directory, "quality.jsonl", bundle.files)
                  if item["kind"] == "skill")
        for granted in _batches(skills):
            with self.uow_factory.for_client(info.id, write=True) as uow:
                ids = _user_ids(uow, usernames)
                for record in granted:
                    uow.session.add(LabelerSkill(
                        user_id=ids[record["user"]], skill=record["skill"], granted_by=ids.get(record["granted_by"]),
                        created_at=datetime.fromisoformat(record["created_at"]),
                    ))
                uow.commit()
        return BundleImportResult(info.id, info.slug, len(bundle.projects), tasks, answers, reviews_restored,
                                  placed, len(bundle.file_entries) - placed)

    def _restore_tasks(
        self, actor: Actor, kept: _ProjectRecords, client_id: int, project_id: int, usernames: set[str], *,
        renamed: dict[str, str], referenced: dict[str, int],
    ) -> _RestoredTasks:
        """A project's tasks (gold ones with their gold answers), their answers and review states,
        read from its bundle file ``RESTORE_BATCH`` lines at a time (a project may hold a million
        tasks), its gold answers and review states taken in step; notes which files its tasks refer
        to in ``referenced``."""
        restored = _RestoredTasks({}, {}, 0, 0)
        name = f"{kept.folder}.jsonl"
        gold, states = _InTaskOrder(kept, "gold.jsonl"), _InTaskOrder(kept, "review_states.jsonl")
        last = 0
        with (kept.directory / name).open("rb") as handle:
            while lines := list(itertools.islice(handle, RESTORE_BATCH)):
                for line in lines:
                    for match in _FILE_REFERENCE.finditer(line):
                        referenced.setdefault(match[1].decode(), kept.project_id)
                rows = [orjson.loads(line) for line in lines]
                for number, row in enumerate(rows, start=restored.tasks + 1):
                    if not _is_id(row.get("id")) or row["id"] <= last:  # the gold and review states follow it
                        raise InvalidInput(f"{name} line {number}: task {row.get('id')!r} is not after task {last}"
                                           " (tasks are in id order)", details={"line": number, "field": "id"})
                    last = row["id"]
                task_ids = [row["id"] for row in rows]
                self._import_task_rows(actor, client_id, project_id, rows, gold.take(task_ids), renamed)
                restored.tasks += len(rows)
                for username in {a["labeler"] for r in rows for a in r["answers"]} - usernames:
                    self._ensure_user(actor, username)
                    self.accounts.grant_role(actor, client_id, username, "labeler")
                    usernames.add(username)
                with self.uow_factory.for_client(client_id, write=True) as uow:
                    self._restore_answers(uow, project_id, rows, usernames, restored, states.take(task_ids))
                    uow.commit()
        gold.finish()
        states.finish()
        return restored

    def _import_task_rows(self, actor: Actor, client_id: int, project_id: int, rows: list[dict[str, Any]],
                          gold: dict[int, dict[str, Any]], renamed: dict[str, str]) -> None:
        """A batch of tasks; ``gold``: the gold answers of those of them that are gold, by task id."""
        task_rows = {
            r["id"]: {
                "external_id": _restored_external_id(r),
                "priority": r["priority"],
                "data": _with_file_ids(r["data"], renamed) if renamed else r["data"],
                "metadata": r["metadata"],
                "suggestions": r["suggestions"],
            }
            for r in rows
        }
        regular = [row for old_id, row in task_rows.items() if old_id not in gold]
        if regular:
            self.imports.import_rows(actor, client_id, project_id, regular)
        for qualification in (False, True):  # gold tasks again with their gold answers
            golden = [{**row, "gold": gold[old_id]["gold"]} for old_id, row in task_rows.items()
                      if old_id in gold and gold[old_id]["qualification"] is qualification]
            for start in range(0, len(golden), MAX_GOLD_ROWS):
                self.gold.import_rows(actor, client_id, project_id, golden[start:start + MAX_GOLD_ROWS],
                                      qualification=qualification)

    @staticmethod
    def _restore_answers(uow: UnitOfWork, project_id: int, rows: list[dict[str, Any]], usernames: set[str],
                         restored: _RestoredTasks, review_states: dict[int, dict[str, Any]]) -> None:
        """The answers of a batch of restored tasks, sealed under the client's new key, the tasks'
        counters moved and their review states set; the new ids noted in ``restored``."""
        ids = _user_ids(uow, usernames)
        by_external = {
            ext: (tid, required)
            for ext, tid, required in uow.session.execute(
                select(Task.external_id, Task.id, Task.required_answers)
                .where(Task.project_id == project_id, Task.external_id.in_([_restored_external_id(r) for r in rows]))
            )
        }
        key_id, cipher = uow.active_cipher()
        # All at once: on SQLite an id is the table's maximum plus one, and the answers added here
        # are not in the table before the flush.
        fresh_answer_ids = iter(allocate_ids(uow.session, Answer, sum(len(r["answers"]) for r in rows)))
        for row in rows:
            task_id, required = by_external[_restored_external_id(row)]
            restored.task_ids[row["id"]] = task_id
            given = row["answers"]
            for answer, answer_id in zip(given, fresh_answer_ids, strict=False):
                restored.answer_ids[answer["id"]] = answer_id
                uow.session.add(
                    Answer(
                        id=answer_id,
                        project_id=project_id,
                        task_id=task_id,
                        user_id=ids[answer["labeler"]],
                        data_key_id=key_id,
                        value=cipher.seal("answer.value", answer_id, orjson.dumps(answer["value"])),
                        status=answer["status"],
                        started_at=datetime.fromisoformat(answer["started_at"]),
                        created_at=datetime.fromisoformat(answer["submitted_at"]),
                        time_spent_ms=answer["time_spent_ms"],
                    )
                )
            counted = sum(1 for a in given if a["status"] != "rejected")
            if counted:
                uow.tasks.move_slots(task_id, open_slots=-min(counted, required), answers=counted)
            restored.answers += len(given)
            if row["id"] in review_states:
                uow.tasks.set_review_state(task_id, review_states[row["id"]]["review_state"], project_id=project_id)

    def _restore_answer_reviews(self, client_id: int, kept: _ProjectRecords, answer_ids: dict[int, int]) -> None:
        """When each restored answer of the project was reviewed, and the reviewer's note, sealed
        under its new id: after all its answers, since the notes are in answer order, not task order."""
        exact = kept.exact("answer_reviews.jsonl")
        for batch in _batches(kept.lines("answer_reviews.jsonl")):
            mine = []
            for name, number, review in batch:
                if review["answer_id"] in answer_ids:
                    mine.append((answer_ids[review["answer_id"]], review))
                elif exact:
                    raise InvalidInput(f"{name} line {number}: answer {review['answer_id']} is not in its project's "
                                       "tasks file", details={"line": number, "field": "answer_id"})
                # else a version 1 line of another project's answer
            if not mine:
                continue
            with self.uow_factory.for_client(client_id, write=True) as uow:
                # The client's one data key, which sealed its answers too (the client is new).
                _, cipher = uow.active_cipher()
                uow.answers.restore_reviews([
                    {"answer_id": answer_id, "at": datetime.fromisoformat(review["reviewed_at"]),
                     "note": cipher.seal("answer.review_note", answer_id, review["note"].encode())
                     if review.get("note") else None}
                    for answer_id, review in mine
                ])
                uow.commit()

    def _restore_files(
        self, actor: Actor, client_id: int, directory: Path, entries: list[dict[str, Any]], renamed: dict[str, str],
        referenced: dict[str, int], new_project_ids: dict[int, int],
    ) -> int:
        """The bundle's uploaded files, sealed under the client's new key, in their projects;
        returns how many were placed."""
        placed = 0
        with self.uow_factory.for_client(client_id, write=True) as uow:
            for entry in entries:
                old_project = entry.get("project_id", referenced.get(entry["id"]))
                if old_project is None:
                    continue  # an older bundle's file that no task refers to: see BundleImportResult
                data = (directory / "files" / entry["id"]).read_bytes()
                file_id = renamed.get(entry["id"], entry["id"])
                self.files.store_in(uow, new_project_ids[old_project], file_id, entry.get("name", ""),
                                    entry.get("content_type") or _sniff_content_type(data), data)
                placed += 1
            if placed:
                audit_log.append(uow, "client.bundle_files_imported", actor=actor, client_id=client_id,
                                 object_kind="client", object_id=client_id, details={"files": placed})
            uow.commit()
        return placed

    @staticmethod
    def _restore_reviews(uow: UnitOfWork, project_id: int, reviews: list[Line],
                         new_task_ids: dict[int, int], user_ids: dict[str, int]) -> dict[int, int]:
        """A batch of the project's reviews under new ids, their reasons and corrections sealed under
        the client's new key; returns old id -> new id (for the ledger's review pay)."""
        key_id, cipher = uow.active_cipher()
        new_ids: dict[int, int] = {}
        for (name, number, review), review_id in zip(reviews, allocate_ids(uow.session, Review, len(reviews)),
                                                     strict=True):
            if review["task_id"] not in new_task_ids:
                raise InvalidInput(f"{name} line {number}: review {review['id']} is of task {review['task_id']}, "
                                   "which is not in its project's tasks file",
                                   details={"line": number, "field": "task_id"})
            new_ids[review["id"]] = review_id
            created_at = datetime.fromisoformat(review["created_at"])
            corrected = review.get("corrected_answer")
            uow.session.add(Review(
                id=review_id,
                project_id=project_id,
                task_id=new_task_ids[review["task_id"]],
                reviewer_id=user_ids[review["reviewer"]],
                decision=review["decision"],
                data_key_id=key_id,
                corrected_value=cipher.seal("review.correction", review_id, orjson.dumps(corrected))
                if corrected is not None else None,
                reason=cipher.seal("review.reason", review_id, review["reason"].encode())
                if review.get("reason") else None,
                # Bundles written before these were carried: the decision's time, no time spent.
                started_at=datetime.fromisoformat(review["started_at"]) if review.get("started_at") else created_at,
                created_at=created_at,
                time_spent_ms=review.get("time_spent_ms") or 0,
            ))
        return new_ids

    def _ensure_users(self, actor: Actor, wanted: set[str], known: set[str]) -> None:
        """Accounts for the people in ``wanted`` that ``known`` lacks, then noted in ``known``."""
        for username in wanted - known:
            self._ensure_user(actor, username)
            known.add(username)

    def _ensure_user(self, actor: Actor, username: str) -> None:
        try:
            self.accounts.actor_by_username(username)
        except NotFound:
            self.accounts.create_user(actor, username, None)
