"""A project's tasks one at a time: find them, open one with all that happened to it, move them in
the queue, ask for more answers, remove the ones nobody answered.

    summaries, total = tasks.list(actor, client_id, project_id, state="open")  # counters, no content
    detail = tasks.open(actor, client_id, project_id, task_id)   # content, answers, skips, leases, reviews
    moved = tasks.set_priority(actor, client_id, project_id, 10, external_ids=["r7", "r9"])
    removed = tasks.remove(actor, client_id, project_id, external_ids=["broken-1"])  # unanswered only
    asked = tasks.ask_more_answers(actor, client_id, project_id, 2, external_ids=["r7"])  # two more opinions

A listing shows ids, counters and states, no content, to anyone who may view the project. Opening a
task shows the client's data as reading its answers does: a manager's right, the conflict wall
checked and the touch recorded, and the opening witnessed in the audit log (``task.read``) before
anything is read. A new priority is a manager's change, all or nothing, audited
(``tasks.reprioritized``); labelers' next tasks follow it at once (queue_cursors.py). So are asking
for more answers on tasks (``tasks.more_answers_asked``) and removing tasks that nobody answered
(``tasks.removed``): answered ones are paid work and stay.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from labelvault.audit import log as audit_log
from labelvault.audit.log import AuditService
from labelvault.domain.access import Actor, ProjectPolicy
from labelvault.errors import Conflict, InvalidInput, NotFound
from labelvault.storage.models import Task
from labelvault.storage.repositories import TASK_STATES
from labelvault.storage.unit_of_work import UnitOfWork, UnitOfWorkFactory
from labelvault.workflow.access import access_in
from labelvault.workflow.auditing import recording_denials, witness_read
from labelvault.workflow.content import open_task_content
from labelvault.workflow.labeling import skip_reason
from labelvault.workflow.projects import load_project

MAX_PAGE = 1000
MAX_PER_CALL = 10_000  # tasks named per change: a request's worth, in one transaction
PRIORITY_RANGE = (-1_000_000, 1_000_000)
MAX_ANSWERS = 100  # answers one task may want, as a project's overlap


@dataclass(frozen=True, slots=True)
class TaskSummary:
    id: int
    external_id: str | None
    state: str  # one of TASK_STATES
    priority: int
    required_answers: int
    answer_count: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class TaskPage:
    items: list[TaskSummary]
    total: int  # tasks of the filter, whatever the page
    next_after_id: int | None  # None: this was the last page


@dataclass(frozen=True, slots=True)
class TaskAnswerRecord:
    id: int
    labeler_id: int
    labeler: str
    status: str  # submitted, accepted, rejected or corrected
    value: dict[str, Any]
    started_at: datetime
    submitted_at: datetime
    time_spent_ms: int
    reviewed_at: datetime | None
    review_note: str | None  # the reviewer's reason for a rejection


@dataclass(frozen=True, slots=True)
class TaskSkipRecord:
    labeler_id: int
    labeler: str
    reason: str
    skipped_at: datetime


@dataclass(frozen=True, slots=True)
class TaskLeaseRecord:
    holder_id: int
    holder: str
    purpose: str  # "label" or "review"
    started_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class TaskReviewRecord:
    id: int
    reviewer_id: int
    reviewer: str
    decision: str  # accept, reject or correct
    reason: str | None
    corrected_value: dict[str, Any] | None
    decided_at: datetime


@dataclass(frozen=True, slots=True)
class TaskDetail:
    id: int
    project_id: int
    external_id: str | None
    state: str
    priority: int
    uncertainty: float
    required_answers: int
    answer_count: int
    open_slots: int
    is_gold: bool
    created_at: datetime
    payload: dict[str, Any]
    metadata: dict[str, Any] | None
    suggestions: list[dict[str, Any]]
    gold_answer: dict[str, Any] | None
    answers: list[TaskAnswerRecord]
    skips: list[TaskSkipRecord]
    leases: list[TaskLeaseRecord]
    reviews: list[TaskReviewRecord]


class TaskService:
    def __init__(self, uow_factory: UnitOfWorkFactory, *, audit: AuditService | None = None) -> None:
        self.uow_factory = uow_factory
        self.audit = audit

    def list(
        self, actor: Actor, client_id: int, project_id: int, *, state: str | None = None,
        external_id: str | None = None, offset: int = 0, limit: int = 100,
    ) -> tuple[list[TaskSummary], int]:
        """A page of the project's tasks in id order (of one state, or the one with this external
        id, when asked) and how many there are in all."""
        found = self.page(actor, client_id, project_id, state=state, external_id=external_id, offset=offset,
                          limit=limit)
        return found.items, found.total

    def page(
        self, actor: Actor, client_id: int, project_id: int, *, state: str | None = None,
        external_id: str | None = None, after_id: int = 0, offset: int = 0, limit: int = 100,
    ) -> TaskPage:
        """As ``list``, walked by ``after_id`` (every page of a large project costs the same; an
        offset makes the database pass over every task before it)."""
        if state is not None and state not in TASK_STATES:
            raise InvalidInput(f"state must be one of {', '.join(TASK_STATES)}", details={"field": "state"})
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit must be from 1 to {MAX_PAGE}", details={"field": "limit"})
        with self.uow_factory.for_client(client_id) as uow:
            ProjectPolicy.view(access_in(uow, actor))
            load_project(uow, project_id)
            rows = uow.tasks.list_with_states(project_id, offset=offset, limit=limit + 1, state=state,
                                              external_id=external_id, after_id=after_id)
            items = [
                TaskSummary(t.id, t.external_id, task_state, t.priority, t.required_answers, t.answer_count,
                            t.created_at)
                for t, task_state in rows[:limit]
            ]
            total = uow.tasks.count(project_id, state=state, external_id=external_id)
        # One row more than asked tells whether another page follows.
        return TaskPage(items, total, items[-1].id if len(rows) > limit else None)

    def open(self, actor: Actor, client_id: int, project_id: int, task_id: int) -> TaskDetail:
        """The task with its content and everything that happened to it (a manager's read: the wall
        is checked and the opening audited before anything is read)."""
        witness_read(self.uow_factory, self.audit, actor, client_id, project_id, "task.read", {"task_id": task_id})
        with self.uow_factory.for_client(client_id) as uow:
            ProjectPolicy.export(access_in(uow, actor))  # every unit of work asks (a role may go meanwhile)
            task = uow.tasks.get(task_id)
            if task is None or task.project_id != project_id:
                raise NotFound(f"task {task_id} not found in project {project_id}")
            return _detail(uow, task)

    def set_priority(
        self, actor: Actor, client_id: int, project_id: int, priority: int, *,
        task_ids: Sequence[int] = (), external_ids: Sequence[str] = (),
    ) -> int:
        """Give these tasks (by id, by external id, or both) a new priority; how many changed. Every
        one must be in the project, or nothing changes and the error names what was not found."""
        low, high = PRIORITY_RANGE
        if isinstance(priority, bool) or not isinstance(priority, int) or not low <= priority <= high:
            raise InvalidInput(f"priority must be an integer from {low} to {high}", details={"field": "priority"})
        _check_count(task_ids, external_ids)
        with self._changing(actor, client_id, project_id, "tasks.reprioritized") as uow:
            ids = _resolve(uow, project_id, task_ids, external_ids)
            moved = uow.tasks.set_priority(sorted(ids), priority)
            audit_log.append(uow, "tasks.reprioritized", actor=actor, client_id=client_id, object_kind="project",
                             object_id=project_id, details={"priority": priority, "tasks": len(ids), "moved": moved})
            uow.commit()
            return moved

    def remove(
        self, actor: Actor, client_id: int, project_id: int, *,
        task_ids: Sequence[int] = (), external_ids: Sequence[str] = (),
    ) -> int:
        """Delete tasks nobody has answered (imported by mistake, or broken: everyone skips them),
        with their skips and leases; returns how many. All or nothing: a task not in the project,
        or one with an answer (paid work, in the ledger and the statistics), is named and nothing
        is deleted. Audited (``tasks.removed``, with the ids)."""
        _check_count(task_ids, external_ids)
        with self._changing(actor, client_id, project_id, "tasks.removed") as uow:
            ids = sorted(_resolve(uow, project_id, task_ids, external_ids))
            answered = uow.tasks.answered_among(ids)
            if answered:
                named = [f"{task_id}" + (f" ({external_id!r})" if external_id else "")
                         for task_id, external_id in answered]
                raise Conflict(f"{len(named)} task(s) have answers and cannot be removed: {_first_ten(named)}",
                               details={"answered": [task_id for task_id, _ in answered][:100]})
            removed = uow.tasks.remove(ids)
            audit_log.append(uow, "tasks.removed", actor=actor, client_id=client_id, object_kind="project",
                             object_id=project_id, details={"tasks": removed, "task_ids": ids[:1000]})
            uow.commit()
            return removed

    def ask_more_answers(
        self, actor: Actor, client_id: int, project_id: int, more: int, *,
        task_ids: Sequence[int] = (), external_ids: Sequence[str] = (),
    ) -> int:
        """Ask for ``more`` answers on these tasks, from labelers who have not answered them (a
        second opinion where answers disagree, beyond what adaptive overlap asks); returns how many
        tasks. A task that is complete goes back to the queue; one awaiting review goes back to the
        labelers first and is reviewed when complete again. All or nothing: a task not in the
        project, a gold task (it wants no answers of its own) or one past 100 answers is named and
        nothing changes. Audited (``tasks.more_answers_asked``)."""
        if isinstance(more, bool) or not isinstance(more, int) or not 1 <= more <= MAX_ANSWERS:
            raise InvalidInput(f"more must be a whole number from 1 to {MAX_ANSWERS}", details={"field": "more"})
        _check_count(task_ids, external_ids)
        with self._changing(actor, client_id, project_id, "tasks.more_answers_asked") as uow:
            ids = sorted(_resolve(uow, project_id, task_ids, external_ids))
            rows = uow.tasks.counts_of(ids)
            refused = [(row, "a gold task") for row in rows if row.is_gold]
            refused += [(row, f"would want {row.required_answers + more}") for row in rows
                        if not row.is_gold and row.required_answers + more > MAX_ANSWERS]
            if refused:
                named = [f"{row.id}" + (f" ({row.external_id!r})" if row.external_id else "") + f": {why}"
                         for row, why in refused]
                raise InvalidInput(f"{len(named)} task(s) cannot take more answers (at most {MAX_ANSWERS} each; "
                                   f"gold tasks none): {_first_ten(named)}", details={"field": "task_ids"})
            asked = uow.tasks.want_more_answers(ids, more)
            audit_log.append(uow, "tasks.more_answers_asked", actor=actor, client_id=client_id,
                             object_kind="project", object_id=project_id,
                             details={"more": more, "tasks": asked, "task_ids": ids[:1000]})
            uow.commit()
            return asked

    @contextmanager
    def _changing(self, actor: Actor, client_id: int, project_id: int, action: str) -> Iterator[UnitOfWork]:
        """A manager's change to the project's tasks, in one transaction; a refusal is audited."""
        with (
            recording_denials(self.audit, actor, client_id, action, "project", project_id),
            self.uow_factory.for_client(client_id, write=True) as uow,
        ):
            ProjectPolicy.manage(access_in(uow, actor))
            load_project(uow, project_id)
            yield uow


def _first_ten(named: list[str]) -> str:
    return ", ".join(named[:10]) + (f" and {len(named) - 10} more" if len(named) > 10 else "")


def _check_count(task_ids: Sequence[int], external_ids: Sequence[str]) -> None:
    asked = len(task_ids) + len(external_ids)
    if asked == 0:
        raise InvalidInput("name the tasks: task_ids, external_ids or both", details={"field": "task_ids"})
    if asked > MAX_PER_CALL:
        raise InvalidInput(f"at most {MAX_PER_CALL} tasks per call", details={"field": "task_ids"})


def _resolve(uow: UnitOfWork, project_id: int, task_ids: Sequence[int], external_ids: Sequence[str]) -> set[int]:
    """The ids of the tasks named, all in the project; NotFound names the first ones that are not."""
    found = uow.tasks.ids_in_project(project_id, list(set(task_ids)))
    by_external = uow.tasks.ids_by_external_id(project_id, list(set(external_ids)))
    missing = [str(t) for t in dict.fromkeys(task_ids) if t not in found]
    missing += [repr(e) for e in dict.fromkeys(external_ids) if e not in by_external]
    if missing:
        raise NotFound(f"{len(missing)} task(s) not found in project {project_id}: {_first_ten(missing)}",
                       details={"missing": missing[:100]})
    return found | set(by_external.values())


def _detail(uow: UnitOfWork, task: Task) -> TaskDetail:
    cipher = uow.cipher(task.data_key_id)
    payload, suggestions = open_task_content(uow, task)
    answers = uow.answers.of_task(task.id)
    skips = uow.skips.of_task(task.id)
    leases = uow.leases.on_task(task.id)
    review_lease = uow.reviews.lease_on(task.id)
    reviews = uow.reviews.of_task(task.id)
    names = uow.users.usernames(
        {a.user_id for a in answers} | {s.user_id for s in skips} | {lease.user_id for lease in leases}
        | {r.reviewer_id for r in reviews} | ({review_lease.user_id} if review_lease is not None else set())
    )

    def opened(kind: str, object_id: int, sealed: bytes | None, key_id: int) -> Any:
        return None if sealed is None else orjson.loads(uow.cipher(key_id).open(kind, object_id, sealed))

    def opened_text(kind: str, object_id: int, sealed: bytes | None, key_id: int) -> str | None:
        return None if sealed is None else uow.cipher(key_id).open(kind, object_id, sealed).decode()

    held = [TaskLeaseRecord(lease.user_id, names.get(lease.user_id, "?"), "label", lease.started_at,
                            lease.expires_at) for lease in leases]
    if review_lease is not None:
        held.append(TaskLeaseRecord(review_lease.user_id, names.get(review_lease.user_id, "?"), "review",
                                    review_lease.started_at, review_lease.expires_at))
    return TaskDetail(
        id=task.id, project_id=task.project_id, external_id=task.external_id,
        state=uow.tasks.state_of(task.id) or "open", priority=task.priority, uncertainty=task.uncertainty,
        required_answers=task.required_answers, answer_count=task.answer_count, open_slots=task.open_slots,
        is_gold=task.is_gold, created_at=task.created_at, payload=payload,
        metadata=(orjson.loads(cipher.open("task.metadata", task.id, task.metadata_blob))
                  if task.metadata_blob else None),
        suggestions=suggestions,
        gold_answer=opened("task.gold", task.id, task.gold_answer, task.data_key_id),
        answers=[
            TaskAnswerRecord(
                id=a.id, labeler_id=a.user_id, labeler=names.get(a.user_id, "?"), status=a.status,
                value=opened("answer.value", a.id, a.value, a.data_key_id), started_at=a.started_at,
                submitted_at=a.created_at, time_spent_ms=a.time_spent_ms, reviewed_at=a.reviewed_at,
                review_note=opened_text("answer.review_note", a.id, a.review_note, a.data_key_id),
            )
            for a in answers
        ],
        skips=[TaskSkipRecord(s.user_id, names.get(s.user_id, "?"), skip_reason(uow, s), s.created_at) for s in skips],
        leases=held,
        reviews=[
            TaskReviewRecord(
                id=r.id, reviewer_id=r.reviewer_id, reviewer=names.get(r.reviewer_id, "?"), decision=r.decision,
                reason=opened_text("review.reason", r.id, r.reason, r.data_key_id),
                corrected_value=opened("review.correction", r.id, r.corrected_value, r.data_key_id),
                decided_at=r.created_at,
            )
            for r in reviews
        ],
    )
