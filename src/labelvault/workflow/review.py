"""Review: which completed tasks are reviewed, the reviewer queue, and the three decisions.

Policies: ``none`` (answers are accepted as they complete), ``sample`` (a random share of
completed tasks), ``all``, and ``disagreement`` (only tasks whose answers differ). A reviewer
accepts, rejects some answers with a reason (they stop counting and the task goes back to the
queue for new labelers), or corrects (their answer is final and marked as a correction).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson

from labelvault.audit import log as audit_log
from labelvault.audit.log import AuditService
from labelvault.domain.access import Actor, ClientAccess, Role, Scope
from labelvault.domain.answers import validate_answer
from labelvault.errors import Conflict, InvalidInput, NotFound, PermissionDenied, QueueRefused
from labelvault.storage.ids import allocate_ids, one_id_read
from labelvault.storage.models import Answer, Project, Review, Task, utcnow
from labelvault.storage.unit_of_work import UnitOfWork, UnitOfWorkFactory
from labelvault.workflow import ledger
from labelvault.workflow.access import access_in
from labelvault.workflow.auditing import recording_denials
from labelvault.workflow.completion import CompletedTask
from labelvault.workflow.content import open_answer_values, open_task_content
from labelvault.workflow.projects import load_project, load_project_settings, schema_of
from labelvault.workflow.walls import check_and_record, wall_reads
from labelvault.workflow.work_time import counted_work_ms

REVIEW_POLICIES = ("none", "sample", "all", "disagreement")
_random = random.SystemRandom()


def needs_review(uow: UnitOfWork, project: Project, task: CompletedTask) -> bool:
    if task.is_gold:  # its answer is known: scoring against it is the review
        return False
    policy = project.review_policy
    if policy == "all":
        return True
    if policy == "sample":
        return _random.random() < project.review_sample_rate
    if policy == "disagreement":
        values = open_answer_values(uow, list(uow.answers.counted_for_task(task.id)))
        canonical = {orjson.dumps(v, option=orjson.OPT_SORT_KEYS) for v in values}
        return len(canonical) > 1
    return False


def accept_answers(uow: UnitOfWork, project: Project, answers: list[Answer], now: datetime) -> None:
    uow.answers.set_status([a.id for a in answers], "accepted", reviewed_at=now)
    if project.pay_on == "accept":
        for answer in answers:
            value = open_answer_values(uow, [answer])[0]
            ledger.append(
                uow,
                project,
                user_id=answer.user_id,
                kind="answer",
                amount=ledger.answer_rate(project, list(value)),
                answer_id=answer.id,
                task_id=answer.task_id,
            )


def on_task_complete(uow: UnitOfWork, project: Project, task: CompletedTask) -> None:
    """Called in the submit transaction when a task reaches its required answers.

    One submit in k runs this: the state and the acceptance are single statements on the rows
    (the task object is not changed, nor flushed)."""
    if needs_review(uow, project, task):
        uow.tasks.set_review_state(task.id, "pending", project_id=project.id)
        return
    uow.tasks.set_review_state(task.id, "done")
    if project.pay_on == "accept":  # each answer is paid by its own rate: the answers are read
        pending = [a for a in uow.answers.counted_for_task(task.id) if a.status == "submitted"]
        accept_answers(uow, project, pending, utcnow())
    else:
        uow.answers.accept_submitted(task.id, utcnow())


@dataclass(frozen=True, slots=True)
class AnswerForReview:
    answer_id: int
    labeler_id: int
    labeler: str
    value: dict[str, Any]
    submitted_at: datetime
    time_spent_ms: int


@dataclass(frozen=True, slots=True)
class ReviewItem:
    task_id: int
    project_id: int
    payload: dict[str, Any]
    answers: list[AnswerForReview]
    lease_expires_at: datetime


@dataclass(frozen=True, slots=True)
class RejectionFeedback:
    answer_id: int
    task_id: int
    value: dict[str, Any]
    reason: str
    reviewed_at: datetime | None


def _require_reviewer(access: ClientAccess) -> None:
    if not access.is_member:
        raise NotFound("project not found")
    access.actor.require_scope(Scope.LABEL)
    if not (Role.REVIEWER in access.roles or Role.MANAGER in access.roles):
        raise PermissionDenied("reviewing needs the role reviewer or manager in this client")


def _created(project: Project) -> int:
    """What tells a project from a deleted one whose id SQLite gave again: its creation, in µs."""
    return int(project.created_at.timestamp() * 1_000_000)


class ReviewService:
    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        audit: AuditService | None = None,
        *,
        on_reject: list[Callable[[UnitOfWork, Project, Task, list[Answer]], None]] | None = None,
    ) -> None:
        self.uow_factory = uow_factory
        self.audit = audit
        # Webhooks (answer.rejected): called in the decision's transaction with the rejected answers.
        self.on_reject = on_reject or []

    def next_item(self, actor: Actor, client_id: int, project_id: int) -> ReviewItem:
        with recording_denials(self.audit, actor, client_id, "review.lease", "project", project_id):
            return self._next_item(actor, client_id, project_id)

    def _next_item(self, actor: Actor, client_id: int, project_id: int) -> ReviewItem:
        now = utcnow()
        reviewer = actor.user_id
        with self.uow_factory.for_client(client_id, write=True) as uow:
            # The walk starts at this reviewer's place (queue_cursors.py), once the project's
            # creation read with the settings says it is the same project.
            cursors = self.uow_factory.review_cursors
            known = cursors.known(project_id, reviewer)
            # The reads up to the pick, in one round trip (PostgreSQL); with a place not yet known
            # to be this project's (or none), from the start.
            if uow.sql.fetches_ahead:
                uow.sql.prefetch(
                    uow.projects.row_with_roles_read(project_id, reviewer),
                    uow.users.lock_read(reviewer),
                    *wall_reads(uow, reviewer),
                    uow.reviews.lease_of_reviewer_read(reviewer, project_id, now),
                    uow.reviews.place_read(project_id, reviewer, known),
                    uow.reviews.pick_read(project_id, reviewer, now, known),
                )
            project, access = load_project_settings(uow, project_id, actor)
            _require_reviewer(access)
            uow.users.lock(reviewer)
            check_and_record(uow, reviewer, client_id, "review")
            lease = uow.reviews.lease_of_reviewer(reviewer, project_id, now)
            if lease is not None:  # asking again returns the open lease
                task = uow.tasks.row(lease.task_id)
                assert task is not None
                expires = lease.expires_at
            else:
                start = cursors.start(project_id, reviewer, _created(project))
                task, place = uow.reviews.next_for(project_id, reviewer, now, start)
                cursors.advance(project_id, reviewer, _created(project), place)
                if task is None:
                    raise QueueRefused("no_tasks", "nothing awaits review in this project")
                expires = now + timedelta(seconds=project.lease_seconds)
                uow.reviews.take_over(project_id=project_id, task_id=task.id, user_id=reviewer, started_at=now,
                                      expires_at=expires)
            payload, _ = open_task_content(uow, task)
            answers = uow.reviews.answers(task.id)
            values = open_answer_values(uow, list(answers))  # type: ignore[arg-type]
            items = [
                AnswerForReview(a.id, a.user_id, a.username, v, a.created_at, a.time_spent_ms)
                for a, v in zip(answers, values, strict=True)
            ]
            audit_log.append(
                uow,
                "task.shown_for_review",
                actor=actor,
                client_id=client_id,
                object_kind="task",
                object_id=task.id,
                details={"project_id": project_id, "answers": len(items)},
            )
            uow.commit()
        return ReviewItem(task.id, project_id, payload, items, expires)

    def decide(
        self,
        actor: Actor,
        client_id: int,
        project_id: int,
        task_id: int,
        *,
        decision: str,
        reject_answer_ids: list[int] | None = None,
        reason: str = "",
        correction: dict[str, Any] | None = None,
    ) -> int:
        """Record a decision on a task under review; returns the review id."""
        if decision not in ("accept", "reject", "correct"):
            raise InvalidInput("decision must be accept, reject or correct", details={"field": "decision"})
        if decision == "reject" and not reason.strip():
            raise InvalidInput("a rejection needs a reason the labeler will read", details={"field": "reason"})
        if decision == "correct" and correction is None:
            raise InvalidInput("a correction needs the corrected answer", details={"field": "answer"})
        now = utcnow()
        reviewer = actor.user_id
        with self.uow_factory.for_client(client_id, write=True) as uow:
            # The reads up to the review's id, in one round trip (PostgreSQL). The task's row is
            # locked before its lease is read: a reviewer taking the task over (the pick locks it)
            # is waited for, so a late decision sees their lease and is refused (below).
            if uow.sql.fetches_ahead:
                uow.sql.prefetch(
                    uow.projects.row_with_roles_read(project_id, reviewer),
                    uow.users.lock_read(reviewer),
                    uow.tasks.row_locked_read(task_id),
                    uow.reviews.lease_on_read(task_id),
                    uow.reviews.answers_read(task_id),
                    one_id_read(uow.sql, Review),
                )
            project, access = load_project_settings(uow, project_id, actor)
            _require_reviewer(access)
            uow.users.lock(reviewer)
            task = uow.tasks.row_locked(task_id)
            if task is None or task.project_id != project_id:
                raise NotFound(f"task {task_id} not found")
            # A lease that expired still lets its reviewer decide while nobody took the task over
            # (as a labeler's late submit counts while a slot is free); once another reviewer has,
            # the task is theirs and the late decision is refused, nothing written.
            lease = uow.reviews.lease_on(task_id)
            if task.review_state == "pending" and lease is not None and lease.user_id != reviewer:
                raise Conflict(f"task {task_id} is under review by another reviewer (a review lease lapses "
                               "after the project's lease time); your decision was not recorded",
                               details={"task_id": task_id})
            if task.review_state != "pending" or lease is None:
                raise Conflict(f"task {task_id} is not under review by you; ask for the next review item",
                               details={"task_id": task_id})
            answers = list(uow.reviews.answers(task_id))
            review_id = allocate_ids(uow.sql, Review, 1)[0]
            key_id, cipher = uow.active_cipher()  # read with the settings
            sealed_reason = cipher.seal("review.reason", review_id, reason.encode()) if reason else None
            corrected = None
            if decision == "accept":
                self._accept(uow, project, task_id, answers, now, review_id)
                uow.tasks.set_review_state(task_id, "done")
            elif decision == "reject":
                chosen = set(reject_answer_ids or [a.id for a in answers])
                unknown = chosen - {a.id for a in answers}
                if unknown:
                    raise InvalidInput(
                        f"answer {min(unknown)} is not an answer of task {task_id} under review",
                        details={"field": "answer_ids"},
                    )
                rejected = [a for a in answers if a.id in chosen]
                self._reject(uow, project, task, rejected, reason, now, review_id)
                self._accept(uow, project, task_id, [a for a in answers if a.id not in chosen], now, review_id)
            else:
                payload, _ = open_task_content(uow, task)
                value = validate_answer(schema_of(project), payload, correction or {})
                corrected = cipher.seal("review.correction", review_id, orjson.dumps(value))
                uow.reviews.set_counted_status(task_id, "corrected", now)
                uow.tasks.set_review_state(task_id, "done")
            uow.reviews.insert(
                id=review_id,
                project_id=project_id,
                task_id=task_id,
                reviewer_id=reviewer,
                decision=decision,
                data_key_id=key_id,
                corrected_value=corrected,
                reason=sealed_reason,
                started_at=lease.started_at,
                created_at=now,
                time_spent_ms=counted_work_ms(lease.started_at, now),
            )
            ledger.append(
                uow,
                project,
                user_id=reviewer,
                kind="review",
                amount=project.rate_per_review,
                review_id=review_id,
                task_id=task_id,
            )
            uow.reviews.drop_lease_on(task_id)
            audit_log.append(
                uow,
                f"review.{decision}",
                actor=actor,
                client_id=client_id,
                object_kind="task",
                object_id=task_id,
                details={"review_id": review_id},
            )
            uow.commit()
            return review_id

    @staticmethod
    def _accept(uow: UnitOfWork, project: Project, task_id: int, answers: list[Any], now: datetime,
                review_id: int) -> None:
        """The answers of the task that still count are accepted (after a rejection: the others);
        paid now under pay_on ``accept``, each by its own rate, unless accepted (and paid) already:
        an answer accepted beside a rejection counts on when the task is reviewed again. The
        payment names the review that accepted it."""
        uow.reviews.set_counted_status(task_id, "accepted", now)
        if project.pay_on == "accept":
            unpaid = [answer for answer in answers if answer.status == "submitted"]
            for answer, value in zip(unpaid, open_answer_values(uow, unpaid), strict=True):
                ledger.append(uow, project, user_id=answer.user_id, kind="answer",
                              amount=ledger.answer_rate(project, list(value)), answer_id=answer.id,
                              review_id=review_id, task_id=answer.task_id)

    def _reject(
        self, uow: UnitOfWork, project: Project, task: Task, rejected: list[Any], reason: str, now: datetime,
        review_id: int,
    ) -> None:
        for answer in rejected:
            # Sealed under the answer's own key and id, so it stays with the answer.
            note = uow.cipher(answer.data_key_id).seal("answer.review_note", answer.id, reason.encode())
            uow.reviews.reject_answer(answer.id, now, note)
            paid = ledger.paid_for_answer(uow, answer.id)
            if paid:
                ledger.append(
                    uow,
                    project,
                    user_id=answer.user_id,
                    kind="reversal",
                    amount=-paid,
                    answer_id=answer.id,
                    review_id=review_id,  # the rejection that took the earning back
                    task_id=task.id,
                )  # no note: the kind says why, and the rejection's reason is sealed on the answer
        # Rejected answers stop counting: their slots go back to the queue for new labelers.
        uow.tasks.move_slots(task.id, open_slots=len(rejected), answers=-len(rejected))
        uow.tasks.set_review_state(task.id, "none")
        for hook in self.on_reject:
            hook(uow, project, task, rejected)

    def rejected_feedback(
        self, actor: Actor, client_id: int, project_id: int, *, offset: int = 0, limit: int = 100
    ) -> list[RejectionFeedback]:
        """A labeler's own rejected answers with the reviewer's reasons."""
        with self.uow_factory.for_client(client_id) as uow:
            if not access_in(uow, actor).is_member:
                raise NotFound("project not found")
            load_project(uow, project_id)
            rows = uow.reviews.rejected_answers_of(actor.user_id, project_id, offset=offset, limit=limit)
            feedback = []
            for answer in rows:
                cipher = uow.cipher(answer.data_key_id)
                reason = (
                    cipher.open("answer.review_note", answer.id, answer.review_note).decode()
                    if answer.review_note
                    else ""
                )
                value = orjson.loads(cipher.open("answer.value", answer.id, answer.value))
                feedback.append(RejectionFeedback(answer.id, answer.task_id, value, reason, answer.reviewed_at))
            return feedback

    def pending(self, actor: Actor, client_id: int, project_id: int) -> int:
        with self.uow_factory.for_client(client_id) as uow:
            if not access_in(uow, actor).is_member:
                raise NotFound("project not found")
            load_project(uow, project_id)
            return uow.reviews.pending_count(project_id)
