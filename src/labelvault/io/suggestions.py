"""Adding model suggestions (pre-annotations) to tasks that exist already.

    report = suggestions.add(actor, client_id, project_id, [
        SuggestionInput(external_id="t1", suggestions=[{"model": "clf-v2", "answer": {...}, "score": 0.9}]),
    ])

Suggestions of a model replace that model's earlier suggestions on the task; those of other models
stay. So sending the same request twice leaves the same state: the call is idempotent, and a client
may retry it after a lost response. Each suggestion is checked as the import checks it (a partial
answer that fits the schema, a score from 0 to 1), against the task's own data (spans must fit its
text). The task's uncertainty, which orders the queue, is recomputed from its best score.

One request is one transaction: one bad item rejects them all, and the error lists every bad item.
``suggestions.added`` is appended to the audit log with the counts, never content.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import select

from labelvault.audit import log as audit_log
from labelvault.audit.log import AuditService
from labelvault.domain.access import Actor, ProjectPolicy
from labelvault.errors import InvalidInput
from labelvault.io.rows import RowInvalid, RowParser
from labelvault.storage.models import Task
from labelvault.storage.unit_of_work import UnitOfWorkFactory
from labelvault.workflow.access import access_in
from labelvault.workflow.auditing import recording_denials
from labelvault.workflow.projects import load_project, schema_of

MAX_ITEMS = 5000
MAX_REPORTED_ERRORS = 100
_LOOKUP_CHUNK = 500  # ids per IN (...) list: well under SQLite's bound-parameter limit


@dataclass(frozen=True, slots=True)
class SuggestionInput:
    """Suggestions for one task, named by ``task_id`` or by ``external_id``."""

    suggestions: list[dict[str, Any]]
    task_id: int | None = None
    external_id: str | None = None


@dataclass
class SuggestionReport:
    tasks: int = 0
    suggestions: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)


class SuggestionService:
    def __init__(self, uow_factory: UnitOfWorkFactory, *, audit: AuditService | None = None) -> None:
        self.uow_factory = uow_factory
        self.audit = audit

    def add(
        self, actor: Actor, client_id: int, project_id: int, items: Sequence[SuggestionInput]
    ) -> SuggestionReport:
        if len(items) > MAX_ITEMS:
            raise InvalidInput(f"at most {MAX_ITEMS} items per request, got {len(items)}", details={"field": "items"})
        with (
            recording_denials(self.audit, actor, client_id, "suggestions.add", "project", project_id),
            self.uow_factory.for_client(client_id, write=True) as uow,
        ):
            ProjectPolicy.import_tasks(access_in(uow, actor))
            project = load_project(uow, project_id)
            # The import's own checks, so a suggestion is accepted here exactly when it would be in a file.
            parser = RowParser(schema_of(project), default_overlap=project.overlap)
            tasks = _find_tasks(uow.session, project_id, items)
            report = SuggestionReport()
            updates: list[tuple[Task, list[dict[str, Any]], float]] = []
            for index, item in enumerate(items):
                where = f"items[{index}]"
                if item.task_id is None and item.external_id is None:
                    _note(report, index, where, "name the task by task_id or external_id")
                    continue
                key = ("id", item.task_id) if item.task_id is not None else ("external_id", item.external_id)
                task = tasks.get(key)
                if task is None:
                    _note(report, index, f"{where}.{key[0]}", f"no task {key[1]!r} in this project")
                    continue
                cipher = uow.cipher(task.data_key_id)
                data = orjson.loads(cipher.open("task.payload", task.id, task.payload))
                try:
                    checked, _ = parser.check_suggestions(item.suggestions, data)
                except RowInvalid as exc:
                    _note(report, index, f"{where}.{exc.field}" if exc.field else where, exc.message)
                    continue
                new = checked or []
                models = {s["model"] for s in new}
                old = []
                if task.suggestions:
                    old = orjson.loads(cipher.open("task.suggestions", task.id, task.suggestions))
                merged = [s for s in old if s.get("model") not in models] + new
                scores = [s["score"] for s in merged if s.get("score") is not None]
                updates.append((task, merged, 1.0 - max(scores) if scores else 0.0))
                report.suggestions += len(new)
            if report.errors:
                count = len(report.errors)
                raise InvalidInput(
                    f"suggestions rejected, nothing was written ({count} bad item{'s' if count != 1 else ''}): "
                    f"{report.errors[0]['message']}",
                    details=report.errors[:MAX_REPORTED_ERRORS],
                )
            for task, merged, uncertainty in updates:
                cipher = uow.cipher(task.data_key_id)
                task.suggestions = cipher.seal("task.suggestions", task.id, orjson.dumps(merged)) if merged else None
                task.uncertainty = uncertainty
            report.tasks = len({task.id for task, _, _ in updates})
            audit_log.append(uow, "suggestions.added", actor=actor, client_id=client_id, object_kind="project",
                             object_id=project_id, details={"tasks": report.tasks, "suggestions": report.suggestions})
            uow.commit()
            return report


def _note(report: SuggestionReport, index: int, where: str, message: str) -> None:
    report.errors.append({"item": index, "field": where, "message": f"{where}: {message}"})


def _find_tasks(session: Any, project_id: int, items: Sequence[SuggestionInput]) -> dict[tuple[str, Any], Task]:
    ids = sorted({i.task_id for i in items if i.task_id is not None})
    external = sorted({i.external_id for i in items if i.task_id is None and i.external_id is not None})
    found: dict[tuple[str, Any], Task] = {}
    for start in range(0, len(ids), _LOOKUP_CHUNK):
        chunk = ids[start:start + _LOOKUP_CHUNK]
        for task in session.scalars(select(Task).where(Task.project_id == project_id, Task.id.in_(chunk))):
            found[("id", task.id)] = task
    for start in range(0, len(external), _LOOKUP_CHUNK):
        chunk = external[start:start + _LOOKUP_CHUNK]
        for task in session.scalars(select(Task).where(Task.project_id == project_id, Task.external_id.in_(chunk))):
            found[("external_id", task.external_id)] = task
    return found
