"""Moving over from Label Studio: import an export with its history, in one transaction.

    report = services.label_studio.import_export(
        actor, client_id, Path("project-3.json"), config=Path("config.xml").read_bytes(),
        new_project=NewProject(slug="reviews", name="Reviews"),
    )

What becomes what (``io/label_studio.py`` reads the format):

- a task becomes a task; its Label Studio id is the ``external_id``, so importing the same export
  again changes nothing, and a later export of the same project adds only what is new;
- its ``data`` keys become fields (the rest, and ``meta``, go to the task's metadata, sealed);
- predictions become suggestions (``model_version`` as the model, ``score`` when it is 0..1);
- annotations become answers of **imported accounts**: one per Label Studio person and client,
  named ``ls:<client slug>:<e-mail or user-<id>>``, inactive and without a password (they cannot
  log in) and a labeler member of the client, so per-labeler statistics keep working. An answer
  keeps the annotation's ``created_at`` and ``lead_time`` (as time spent); its idempotency key
  names the Label Studio annotation. Imported answers are ``accepted`` and earn nothing: they
  were done (and paid) elsewhere;
- a cancelled (skipped) annotation becomes a skip of that account;
- when one person annotated a task several times, the latest annotation is kept and the others
  are counted as superseded (LabelVault holds one answer per person and task);
- a task's imported answers count toward the project's overlap: a task with as many answers as
  the overlap asks for is complete (and not sent to review: that happened in Label Studio).

Everything is checked before anything is written: one bad task, annotation or result rejects the
whole file with :class:`~labelvault.errors.ImportInvalid`, naming where (``tasks[3] (id 17)
.annotations[0] (id 45).result[1] (sentiment): unknown label "meh"``). A dry run does all of it
and rolls back, returning the inferred schema and the counts. The import is witnessed in the audit
log (``label_studio.imported``, with counts, never content).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

import orjson
from sqlalchemy import insert, select

from labelvault.audit import log as audit_log
from labelvault.audit.log import AuditService
from labelvault.domain.access import Actor, ProjectPolicy
from labelvault.domain.answers import AnswerValidator, answer_validator
from labelvault.domain.payloads import PayloadValidator, payload_validator
from labelvault.domain.schema import parse_schema
from labelvault.errors import AnswerInvalid, Conflict, ImportInvalid, InvalidInput, NotFound, PayloadInvalid
from labelvault.io.label_studio import (
    LabelConfig,
    LabelStudioInvalid,
    LsAnnotation,
    LsTask,
    Mapping,
    convert_result,
    infer_mapping,
    map_to_schema,
    parse_label_config,
    read_export,
)
from labelvault.storage.ids import allocate_ids
from labelvault.storage.models import Answer, Membership, Project, Skip, Task, User, utcnow
from labelvault.storage.unit_of_work import UnitOfWork, UnitOfWorkFactory
from labelvault.workflow.access import access_in
from labelvault.workflow.auditing import recording_denials
from labelvault.workflow.clients import check_slug

MAX_REPORTED_ERRORS = 100
SKIP_REASON = b"cancelled in Label Studio"
_MAX_SPENT_MS = 2**31 - 1
_CHUNK = 500


@dataclass(frozen=True, slots=True)
class NewProject:
    """A project to create from the export's inferred schema."""

    slug: str
    name: str = ""
    overlap: int = 1


@dataclass
class LabelStudioReport:
    """What an import did (or, on a dry run, would do)."""

    format: str
    dry_run: bool
    project_id: int | None
    project_slug: str
    project_created: bool
    mapping: dict[str, Any]
    tasks_read: int = 0
    tasks_created: int = 0
    tasks_already_present: int = 0
    gold_tasks_created: int = 0
    suggestions_created: int = 0
    answers_created: int = 0
    answers_already_present: int = 0
    skips_created: int = 0
    annotations_superseded: int = 0
    results_dropped: int = 0
    accounts_created: int = 0
    accounts: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format, "dry_run": self.dry_run, "project_id": self.project_id,
            "project_slug": self.project_slug, "project_created": self.project_created,
            "tasks_read": self.tasks_read, "tasks_created": self.tasks_created,
            "tasks_already_present": self.tasks_already_present, "gold_tasks_created": self.gold_tasks_created,
            "suggestions_created": self.suggestions_created,
            "answers_created": self.answers_created, "answers_already_present": self.answers_already_present,
            "skips_created": self.skips_created, "annotations_superseded": self.annotations_superseded,
            "results_dropped": self.results_dropped, "accounts_created": self.accounts_created,
            "accounts": list(self.accounts), "mapping": self.mapping,
        }


@dataclass
class _Person:
    key: str
    user_id: int | None
    email: str | None
    account_id: int = 0


@dataclass
class _PlannedAnswer:
    person: str
    annotation: LsAnnotation
    value: dict[str, Any]


@dataclass
class _PlannedTask:
    task: LsTask
    payload: dict[str, Any]
    metadata: dict[str, Any]
    suggestions: list[dict[str, Any]]
    answers: list[_PlannedAnswer]
    skips: list[str]  # person keys
    gold: dict[str, Any] | None = None  # the ground-truth annotation's answer, when it makes the task gold


def read_source(source: bytes | Path | str | BinaryIO) -> bytes:
    if isinstance(source, bytes):
        return source
    if isinstance(source, str | Path):
        return Path(source).read_bytes()
    return source.read()


class LabelStudioImportService:
    """Imports Label Studio exports (tasks, predictions, annotations) into a project."""

    def __init__(
        self, uow_factory: UnitOfWorkFactory, *, audit: AuditService | None = None, default_lease_seconds: int = 600
    ) -> None:
        self.uow_factory = uow_factory
        self.audit = audit
        self.default_lease_seconds = default_lease_seconds

    def import_export(
        self,
        actor: Actor,
        client_id: int,
        source: bytes | Path | str | BinaryIO,
        *,
        config: bytes | str | None = None,
        project: str | int | None = None,
        new_project: NewProject | None = None,
        dry_run: bool = False,
        skip_unsupported: bool = False,
        ground_truth_as_gold: bool = False,
    ) -> LabelStudioReport:
        """Import into ``project`` (id or slug in the client) or into a ``new_project``.

        ``ground_truth_as_gold``: a new task with a ground-truth annotation becomes a gold task
        whose known answer is that annotation (the latest, if several)."""
        if (project is None) == (new_project is None):
            raise InvalidInput("name either an existing project or a new one (not both)", details={"field": "project"})
        if new_project is not None:
            check_slug(new_project.slug, "project")
            if not 1 <= new_project.overlap <= 100:
                raise InvalidInput("overlap must be between 1 and 100", details={"field": "overlap"})
        label_config = parse_label_config(config) if config is not None else None
        raw = read_source(source)
        target = project if project is not None else new_project.slug if new_project is not None else ""
        with recording_denials(self.audit, actor, client_id, "label_studio.import", "project", target):
            return self._import(actor, client_id, raw, label_config, project, new_project, dry_run, skip_unsupported,
                                ground_truth_as_gold)

    def _import(
        self,
        actor: Actor,
        client_id: int,
        raw: bytes,
        config: LabelConfig | None,
        project_ref: str | int | None,
        new_project: NewProject | None,
        dry_run: bool,
        skip_unsupported: bool,
        ground_truth_as_gold: bool,
    ) -> LabelStudioReport:
        # Reading and checking the file is pure work: it happens between a read-only look at the
        # project and the writing transaction, so SQLite's write lock is held only for the writes.
        with self.uow_factory.for_client(client_id) as uow:
            schema_json = self._check_target(uow, actor, client_id, project_ref, new_project)
        try:
            fmt, tasks = read_export(raw, config)
            if schema_json is not None:
                mapping = map_to_schema(parse_schema(json.loads(schema_json)), tasks,
                                        skip_unsupported=skip_unsupported)
            else:
                mapping = infer_mapping(tasks, config, skip_unsupported=skip_unsupported)
        except LabelStudioInvalid as exc:
            raise _rejected([exc], 1) from None
        report = LabelStudioReport(
            format=fmt, dry_run=dry_run, project_id=None, project_slug="", project_created=new_project is not None,
            mapping=mapping.describe(), tasks_read=len(tasks),
        )
        people: dict[str, _Person] = {}
        planned = self._plan(tasks, mapping, people, report, skip_unsupported)
        if not ground_truth_as_gold:
            for item in planned:
                item.gold = None

        with self.uow_factory.for_client(client_id, write=True) as uow:
            # Checked again inside the writing transaction: the project may have changed meanwhile.
            if self._check_target(uow, actor, client_id, project_ref, new_project) != schema_json:
                raise Conflict("the project's schema changed while the file was checked; import again")
            # Audit entries are appended after every row is written: the log's head is the last lock
            # this transaction takes, as in every other one (a submit locks its task row before the
            # head; taking the head before the task rows here could deadlock with it on PostgreSQL).
            entries: list[tuple[str, str, int, dict[str, Any]]] = []
            if new_project is not None:
                project = self._create_project(uow, client_id, new_project, mapping, entries)
            else:
                project = _find_project(uow, project_ref, client_id)
            report.project_id, report.project_slug = project.id, project.slug
            self._write(uow, client_id, project, planned, people, report, entries)
            for action, kind, object_id, details in entries:
                audit_log.append(uow, action, actor=actor, client_id=client_id, object_kind=kind,
                                 object_id=object_id, details=details)
            audit_log.append(
                uow, "label_studio.imported", actor=actor, client_id=client_id, object_kind="project",
                object_id=project.id,
                details={key: value for key, value in report.to_dict().items()
                         if isinstance(value, int) and not isinstance(value, bool)},
            )
            if not dry_run:
                uow.commit()
        return report

    @staticmethod
    def _check_target(
        uow: UnitOfWork, actor: Actor, client_id: int, project_ref: str | int | None, new_project: NewProject | None
    ) -> str | None:
        """May the actor import here? The existing project's schema document (None for a new project)."""
        access = access_in(uow, actor)
        ProjectPolicy.import_tasks(access)
        if new_project is None:
            return _find_project(uow, project_ref, client_id).schema_json
        ProjectPolicy.manage(access)
        if uow.projects.by_slug(new_project.slug) is not None:
            raise Conflict(f"project {new_project.slug!r} exists already in this client", details={"field": "slug"})
        return None

    # ------------------------------------------------------------------ checking, before any write

    def _plan(
        self, tasks: list[LsTask], mapping: Mapping, people: dict[str, _Person], report: LabelStudioReport,
        skip_unsupported: bool,
    ) -> list[_PlannedTask]:
        check_payload = payload_validator(mapping.schema)
        check_answer = answer_validator(mapping.schema)
        planned: list[_PlannedTask] = []
        errors: list[LabelStudioInvalid] = []
        bad = 0
        seen_ids: dict[str, int] = {}
        for task in tasks:
            try:
                if task.id in seen_ids:
                    raise LabelStudioInvalid(task.where, f"the task id appears twice (also tasks[{seen_ids[task.id]}])",
                                             task=task.index)
                seen_ids[task.id] = task.index
                planned.append(self._plan_task(task, mapping, people, report, check_payload, check_answer,
                                               skip_unsupported))
            except LabelStudioInvalid as exc:
                bad += 1
                if len(errors) < MAX_REPORTED_ERRORS:
                    errors.append(exc)
        if errors:
            raise _rejected(errors, bad)
        return planned

    def _plan_task(
        self, task: LsTask, mapping: Mapping, people: dict[str, _Person], report: LabelStudioReport,
        check_payload: PayloadValidator, check_answer: AnswerValidator, skip_unsupported: bool,
    ) -> _PlannedTask:
        payload = {mapping.fields[key]: value for key, value in task.data.items() if key in mapping.fields}
        try:
            check_payload(payload)
        except PayloadInvalid as exc:
            raise LabelStudioInvalid(f"{task.where}.data", exc.message, task=task.index) from None
        metadata: dict[str, Any] = {"label_studio": {"task_id": task.id}}
        extra = {key: value for key, value in task.data.items() if key not in mapping.fields}
        if extra:
            metadata["data"] = extra
        if task.meta:
            metadata["meta"] = task.meta

        suggestions: list[dict[str, Any]] = []
        for prediction in task.predictions:
            value, dropped = convert_result(mapping, payload, prediction.result, prediction.where, task.index,
                                            skip_unsupported=skip_unsupported)
            report.results_dropped += dropped
            try:
                normalized = check_answer(payload, value, partial=True)
            except AnswerInvalid as exc:
                raise LabelStudioInvalid(prediction.where, exc.message, task=task.index) from None
            suggestions.append({"model": prediction.model, "answer": normalized, "score": prediction.score})

        # One answer per person and task: the latest of each person's annotations is kept.
        latest: dict[str, LsAnnotation] = {}
        cancelled: set[str] = set()
        for annotation in task.annotations:
            people.setdefault(annotation.annotator_key,
                              _Person(annotation.annotator_key, annotation.annotator_id, annotation.annotator_email))
            if annotation.cancelled:
                cancelled.add(annotation.annotator_key)
                continue
            earlier = latest.get(annotation.annotator_key)
            if earlier is not None:
                report.annotations_superseded += 1
                if _moment(earlier) > _moment(annotation):
                    continue
            latest[annotation.annotator_key] = annotation
        answers: list[_PlannedAnswer] = []
        gold: dict[str, Any] | None = None
        truths = [a for a in latest.values() if a.ground_truth]
        for key, annotation in latest.items():
            value, dropped = convert_result(mapping, payload, annotation.result, annotation.where, task.index,
                                            skip_unsupported=skip_unsupported)
            report.results_dropped += dropped
            try:
                # Partial: an annotation that left a question out is history as it was, not wrong.
                normalized = check_answer(payload, value, partial=True)
            except AnswerInvalid as exc:
                raise LabelStudioInvalid(annotation.where, exc.message, task=task.index) from None
            answers.append(_PlannedAnswer(key, annotation, normalized))
            if truths and annotation is max(truths, key=_moment):
                gold = normalized
        skips = sorted(cancelled - latest.keys())
        return _PlannedTask(task, payload, metadata, suggestions, answers, skips, gold)

    # ------------------------------------------------------------------ writing

    def _create_project(
        self, uow: UnitOfWork, client_id: int, new: NewProject, mapping: Mapping,
        entries: list[tuple[str, str, int, dict[str, Any]]],
    ) -> Project:
        project = uow.projects.add(
            Project(slug=new.slug, name=new.name or new.slug, schema_json=json.dumps(mapping.schema.to_dict()),
                    overlap=new.overlap, lease_seconds=self.default_lease_seconds)
        )
        uow.session.flush()
        entries.append(("project.created", "project", project.id, {"from": "label-studio"}))
        return project

    def _write(
        self, uow: UnitOfWork, client_id: int, project: Project, planned: list[_PlannedTask],
        people: dict[str, _Person], report: LabelStudioReport, entries: list[tuple[str, str, int, dict[str, Any]]],
    ) -> None:
        session = uow.session
        now = utcnow()
        existing = _existing_tasks(uow, project.id, [p.task.id for p in planned])
        self._accounts(uow, client_id, people, report, entries)
        key_id, cipher = uow.active_cipher()
        overlap = project.overlap

        new = [p for p in planned if p.task.id not in existing]
        report.tasks_created = len(new)
        report.tasks_already_present = len(planned) - len(new)
        task_ids = allocate_ids(session, Task, len(new)) if new else []
        task_of: dict[str, int] = {external: task.id for external, task in existing.items()}
        rows: list[dict[str, Any]] = []
        for task_id, item in zip(task_ids, new, strict=True):
            task_of[item.task.id] = task_id
            count = len(item.answers)
            scores = [s["score"] for s in item.suggestions if s["score"] is not None]
            # A gold task wants no answers of its own; the queue mixes it in by the gold rate.
            required = 0 if item.gold is not None else overlap
            rows.append({
                "id": task_id, "client_id": client_id, "project_id": project.id, "external_id": item.task.id,
                "priority": 0, "uncertainty": 1.0 - max(scores) if scores else 0.0,
                "required_answers": required, "answer_count": count, "open_slots": max(0, required - count),
                "review_state": "done" if count >= required else "none", "data_key_id": key_id,
                "is_gold": item.gold is not None,
                "gold_answer": (cipher.seal("task.gold", task_id, orjson.dumps(item.gold))
                                if item.gold is not None else None),
                "payload": cipher.seal("task.payload", task_id, orjson.dumps(item.payload)),
                "metadata_blob": cipher.seal("task.metadata", task_id, orjson.dumps(item.metadata)),
                "suggestions": (cipher.seal("task.suggestions", task_id, orjson.dumps(item.suggestions))
                                if item.suggestions else None),
                "created_at": now,
            })
            report.suggestions_created += len(item.suggestions)
            report.gold_tasks_created += item.gold is not None
        for chunk in _chunks(rows, _CHUNK):
            session.execute(insert(Task), chunk)
        if rows:
            uow.tasks.queued(project.id)

        # Existing tasks keep their data and suggestions; only annotations they lack are added.
        answered, skipped = _who_answered_or_skipped(uow, [task.id for task in existing.values()])
        answer_rows: list[dict[str, Any]] = []
        skip_rows: list[dict[str, Any]] = []
        added: dict[int, int] = {}
        for item in planned:
            task_id = task_of[item.task.id]
            for answer in item.answers:
                user_id = people[answer.person].account_id
                if (task_id, user_id) in answered:
                    report.answers_already_present += 1
                    continue
                answer_rows.append(_answer_row(client_id, project.id, task_id, user_id, item.task.id, answer, now))
                added[task_id] = added.get(task_id, 0) + 1
            for person in item.skips:
                user_id = people[person].account_id
                if (task_id, user_id) not in answered and (task_id, user_id) not in skipped:
                    skip_rows.append({"client_id": client_id, "project_id": project.id, "task_id": task_id,
                                      "user_id": user_id, "created_at": now})
        answer_ids = allocate_ids(session, Answer, len(answer_rows)) if answer_rows else []
        for answer_id, row in zip(answer_ids, answer_rows, strict=True):
            row["id"] = answer_id
            row["data_key_id"] = key_id
            row["value"] = cipher.seal("answer.value", answer_id, row.pop("_value"))
        for chunk in _chunks(answer_rows, _CHUNK):
            session.execute(insert(Answer), chunk)
        skip_ids = allocate_ids(session, Skip, len(skip_rows)) if skip_rows else []
        for skip_id, row in zip(skip_ids, skip_rows, strict=True):  # sealed as a labeler's reason is
            row.update(id=skip_id, data_key_id=key_id, sealed_reason=cipher.seal("skip.reason", skip_id, SKIP_REASON))
        for chunk in _chunks(skip_rows, _CHUNK):
            session.execute(insert(Skip), chunk)
        report.answers_created = len(answer_rows)
        report.skips_created = len(skip_rows)

        for task in existing.values():
            count = added.get(task.id, 0)
            if not count:
                continue
            task.answer_count += count
            task.open_slots = max(0, task.open_slots - count)
            if task.answer_count >= task.required_answers and task.review_state == "none":
                task.review_state = "done"
        session.flush()  # task rows before the project row, as a submit locks them
        if answer_rows:
            uow.quality_cache.bump_version(project.id)  # agreement and scores must be computed again

    def _accounts(
        self, uow: UnitOfWork, client_id: int, people: dict[str, _Person], report: LabelStudioReport,
        entries: list[tuple[str, str, int, dict[str, Any]]],
    ) -> None:
        """The imported accounts of the export's people: found again on a re-import, else created."""
        if not people:
            return
        client = uow.clients.get(client_id)
        if client is None:
            raise NotFound("client not found")
        for person in people.values():
            username = imported_username(client.slug, person.user_id, person.email)
            user = uow.users.by_username(username)
            if user is None:
                label = person.email or (f"user {person.user_id}" if person.user_id is not None else "a deleted user")
                user = User(username=username, display_name=f"{label} (from Label Studio)"[:200], password_hash=None,
                            is_operator=False, is_active=False)
                uow.session.add(user)
                uow.session.flush()
                entries.append(("user.created", "user", user.id, {"method": "label-studio import", "active": False}))
                report.accounts_created += 1
            elif user.is_active or user.password_hash is not None or user.is_operator:
                # Never attribute history to a real account that merely has the same name.
                raise Conflict(f"user {username!r} exists and is not an imported Label Studio account")
            elif person.email and person.email not in user.display_name:
                user.display_name = f"{person.email} (from Label Studio)"[:200]  # JSON-MIN gave only the id
            if uow.memberships.find(user.id, "labeler") is None:
                uow.session.add(Membership(user_id=user.id, role="labeler"))
            person.account_id = user.id
            report.accounts.append(username)
        uow.session.flush()


def imported_username(client_slug: str, user_id: int | None, email: str | None) -> str:
    """``ls:<client slug>:user-<Label Studio id>`` (or ``:<e-mail>`` when an export gives no id):
    one account per person and client. The id is what every export format gives (JSON-MIN has
    no e-mail) and what stays when a person changes their e-mail; the e-mail is the display name."""
    who = f"user-{user_id}" if user_id is not None else email or "deleted-user"
    name = f"ls:{client_slug}:{who}"
    if len(name) <= 100:
        return name
    digest = hashlib.sha256(who.encode()).hexdigest()[:12]
    return f"{name[:87]}~{digest}"


def _find_project(uow: UnitOfWork, reference: str | int | None, client_id: int) -> Project:
    """A project of the client by id, slug, or ``client-slug/project-slug``."""
    text = str(reference)
    client_slug, _, slug = text.rpartition("/")
    client = uow.clients.get(client_id)
    if client_slug and (client is None or client.slug != client_slug):
        project = None
    else:
        project = uow.projects.get(int(slug)) if slug.isdigit() else uow.projects.by_slug(slug)
    if project is None:
        raise NotFound(f"project {reference} not found")
    return project


def _existing_tasks(uow: UnitOfWork, project_id: int, external_ids: list[str]) -> dict[str, Task]:
    found: dict[str, Task] = {}
    for chunk in _chunks(external_ids, _CHUNK):
        query = select(Task).where(Task.project_id == project_id, Task.external_id.in_(chunk))
        for task in uow.session.scalars(query):
            assert task.external_id is not None
            found[task.external_id] = task
    return found


def _who_answered_or_skipped(uow: UnitOfWork, task_ids: list[int]) -> tuple[set[tuple[int, int]], set[tuple[int, int]]]:
    answered: set[tuple[int, int]] = set()
    skipped: set[tuple[int, int]] = set()
    for chunk in _chunks(task_ids, _CHUNK):
        answered.update((row[0], row[1]) for row in uow.session.execute(
            select(Answer.task_id, Answer.user_id).where(Answer.task_id.in_(chunk))))
        skipped.update((row[0], row[1]) for row in uow.session.execute(
            select(Skip.task_id, Skip.user_id).where(Skip.task_id.in_(chunk))))
    return answered, skipped


def _answer_row(
    client_id: int, project_id: int, task_id: int, user_id: int, external_id: str, answer: _PlannedAnswer,
    now: datetime,
) -> dict[str, Any]:
    annotation = answer.annotation
    created = annotation.created_at or now
    seconds = annotation.lead_time or 0.0
    spent = int(min(seconds * 1000, _MAX_SPENT_MS))
    # JSON-MIN may lack annotation ids; one answer per person and task makes the task id enough.
    reference = annotation.id if annotation.id is not None else f"task-{external_id}"
    return {
        "client_id": client_id, "project_id": project_id, "task_id": task_id, "user_id": user_id,
        # The project is part of the key: one export may go into two projects of a client.
        "idempotency_key": f"ls:{project_id}:{reference}"[:100],
        "status": "accepted", "started_at": created - timedelta(milliseconds=spent), "created_at": created,
        "time_spent_ms": spent, "_value": orjson.dumps(answer.value),
    }


def _moment(annotation: LsAnnotation) -> tuple[float, int]:
    created = annotation.created_at.timestamp() if annotation.created_at else 0.0
    return created, int(annotation.id) if annotation.id and annotation.id.isdigit() else 0


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _rejected(errors: list[LabelStudioInvalid], bad: int) -> ImportInvalid:
    things = "1 bad task" if bad == 1 else f"{bad} bad tasks"
    message = f"Label Studio import rejected, nothing was written ({things}): {errors[0].message}"
    return ImportInvalid(
        message,
        details={
            "invalid": bad,
            "errors": [
                {"task": e.task, "where": e.where, "question": e.question, "message": e.message} for e in errors
            ],
            "errors_omitted": max(0, bad - len(errors)),
        },
    )
