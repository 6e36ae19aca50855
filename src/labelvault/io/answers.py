"""Reading a project's answers, and its skips with their reasons, page by page.

    page = answers.page(actor, client_id, project_id, after_id=0, limit=1000)
    # page.items: answers in id order; page.next_after_id: pass it back for the next page
    skips = answers.skips(actor, client_id, project_id, after_id=0)  # why labelers passed on tasks

Pages are keyset-paginated by answer id (``after_id``), so walking a large project stays cheap
and an answer submitted meanwhile is never skipped nor seen twice; ``offset`` is accepted as on
every other list. Reading answers shows the client's data like an export does: the same policy
(``ProjectPolicy.export``), the conflict wall is checked and the touch recorded, and each page is
witnessed in the audit log (``answers.read``, with the page asked for, never content) before it is
read. Skips likewise (``skips.read``): a labeler's reason may quote the task.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import func, select

from labelvault.audit.log import AuditService
from labelvault.domain.access import Actor, ProjectPolicy
from labelvault.errors import InvalidInput
from labelvault.storage.models import Answer, Skip, Task, User
from labelvault.storage.unit_of_work import UnitOfWorkFactory
from labelvault.workflow.access import access_in
from labelvault.workflow.auditing import witness_read
from labelvault.workflow.labeling import skip_reason

ANSWER_STATUSES = ("submitted", "accepted", "rejected", "corrected")
MAX_PAGE = 1000


@dataclass(frozen=True, slots=True)
class AnswerRecord:
    id: int
    task_id: int
    external_id: str | None
    labeler_id: int
    labeler: str
    value: dict[str, Any]
    status: str
    started_at: datetime
    submitted_at: datetime
    time_spent_ms: int
    reviewed_at: datetime | None


@dataclass(frozen=True, slots=True)
class SkipRecord:
    id: int
    task_id: int
    external_id: str | None
    labeler_id: int
    labeler: str
    reason: str
    skipped_at: datetime


@dataclass(frozen=True, slots=True)
class SkipPage:
    items: list[SkipRecord]
    total: int
    next_after_id: int | None


@dataclass(frozen=True, slots=True)
class AnswerPage:
    items: list[AnswerRecord]
    total: int  # answers of the project (with the status asked for), whatever the cursor
    next_after_id: int | None  # None: this was the last page


class AnswerService:
    def __init__(self, uow_factory: UnitOfWorkFactory, *, audit: AuditService | None = None) -> None:
        self.uow_factory = uow_factory
        self.audit = audit

    def page(
        self,
        actor: Actor,
        client_id: int,
        project_id: int,
        *,
        after_id: int = 0,
        offset: int = 0,
        limit: int = 100,
        status: str | None = None,
    ) -> AnswerPage:
        if status is not None and status not in ANSWER_STATUSES:
            raise InvalidInput(f"status must be one of {', '.join(ANSWER_STATUSES)}", details={"field": "status"})
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit must be from 1 to {MAX_PAGE}", details={"field": "limit"})
        witness_read(self.uow_factory, self.audit, actor, client_id, project_id, "answers.read",
                     {"after_id": after_id, "offset": offset, "limit": limit, "status": status})
        with self.uow_factory.for_client(client_id) as uow:
            ProjectPolicy.export(access_in(uow, actor))  # every unit of work asks (a role may go meanwhile)
            filters = [Answer.project_id == project_id]
            if status is not None:
                filters.append(Answer.status == status)
            total = uow.session.scalar(select(func.count()).select_from(Answer).where(*filters)) or 0
            rows = uow.session.execute(
                select(Answer, Task.external_id, User.username)
                .join(Task, Task.id == Answer.task_id)
                .join(User, User.id == Answer.user_id)
                .where(*filters, Answer.id > after_id)
                .order_by(Answer.id)
                .offset(offset)
                .limit(limit + 1)  # one more tells whether another page follows
            ).all()
            more = len(rows) > limit
            items = [
                AnswerRecord(
                    id=answer.id, task_id=answer.task_id, external_id=external_id, labeler_id=answer.user_id,
                    labeler=username,
                    value=orjson.loads(uow.cipher(answer.data_key_id).open("answer.value", answer.id, answer.value)),
                    status=answer.status, started_at=answer.started_at, submitted_at=answer.created_at,
                    time_spent_ms=answer.time_spent_ms, reviewed_at=answer.reviewed_at,
                )
                for answer, external_id, username in rows[:limit]
            ]
        return AnswerPage(items=items, total=total, next_after_id=items[-1].id if more else None)

    def skips(
        self, actor: Actor, client_id: int, project_id: int, *, after_id: int = 0, offset: int = 0, limit: int = 100
    ) -> SkipPage:
        """The project's skips in id order, each with the labeler's reason (opened)."""
        if not 1 <= limit <= MAX_PAGE:
            raise InvalidInput(f"limit must be from 1 to {MAX_PAGE}", details={"field": "limit"})
        witness_read(self.uow_factory, self.audit, actor, client_id, project_id, "skips.read",
                     {"after_id": after_id, "offset": offset, "limit": limit})
        with self.uow_factory.for_client(client_id) as uow:
            ProjectPolicy.export(access_in(uow, actor))
            total = uow.session.scalar(select(func.count()).select_from(Skip).where(Skip.project_id == project_id))
            rows = uow.session.execute(
                select(Skip, Task.external_id, User.username)
                .join(Task, Task.id == Skip.task_id)
                .join(User, User.id == Skip.user_id)
                .where(Skip.project_id == project_id, Skip.id > after_id)
                .order_by(Skip.id)
                .offset(offset)
                .limit(limit + 1)
            ).all()
            items = [
                SkipRecord(id=skip.id, task_id=skip.task_id, external_id=external_id, labeler_id=skip.user_id,
                           labeler=username, reason=skip_reason(uow, skip), skipped_at=skip.created_at)
                for skip, external_id, username in rows[:limit]
            ]
        return SkipPage(items, total or 0, items[-1].id if len(rows) > limit else None)

