"""The labeler's loop over the API: next task (with a lease), submit an answer, skip.

This is the simple queue of the foundation: each task wants ``required_answers`` answers from
distinct labelers; ``open_slots`` counts what is still free (required - answers - open leases)
so that picking a task is one indexed read. Leases expire and give their slot back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy.exc import IntegrityError

from labelvault.domain.access import Actor, ProjectPolicy
from labelvault.domain.answers import validate_answer
from labelvault.errors import Conflict, InvalidInput, NotFound, QueueRefused
from labelvault.storage.ids import allocate_ids
from labelvault.storage.models import Answer, Skip, Task, utcnow
from labelvault.storage.unit_of_work import UnitOfWork, UnitOfWorkFactory
from labelvault.workflow.access import access_in
from labelvault.workflow.projects import load_project, schema_of

# Time between lease start and submit counts as work up to this much (a lunch break does not).
MAX_COUNTED_WORK = timedelta(minutes=30)


@dataclass(frozen=True, slots=True)
class LeasedTask:
    task_id: int
    project_id: int
    payload: dict[str, Any]
    suggestions: list[dict[str, Any]]
    lease_started_at: datetime
    lease_expires_at: datetime


@dataclass(frozen=True, slots=True)
class SubmittedAnswer:
    answer_id: int
    task_id: int
    created: bool  # False when an idempotent retry returned the first result
    submitted_at: datetime
    time_spent_ms: int


def open_task_content(uow: UnitOfWork, task: Task) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    cipher = uow.cipher(task.data_key_id)
    payload = orjson.loads(cipher.open("task.payload", task.id, task.payload))
    suggestions = orjson.loads(cipher.open("task.suggestions", task.id, task.suggestions)) if task.suggestions else []
    return payload, suggestions


def expire_leases(uow: UnitOfWork, now: datetime) -> int:
    """Give the slots of expired leases back (bounded work per call; any process may do it)."""
    expired = uow.leases.expired(now)
    for lease in expired:
        uow.leases.remove(lease)
        uow.tasks.adjust_slots(lease.task_id, open_slots=+1)
    return len(expired)


class LabelingService:
    def __init__(self, uow_factory: UnitOfWorkFactory) -> None:
        self.uow_factory = uow_factory

    def next_task(self, actor: Actor, client_id: int, project_id: int) -> LeasedTask:
        now = utcnow()
        with self.uow_factory.for_client(client_id, write=True) as uow:
            ProjectPolicy.label(access_in(uow, actor))
            project = load_project(uow, project_id)
            if project.status != "active":
                raise QueueRefused("project_inactive", f"project {project.slug} is {project.status}")
            expire_leases(uow, now)
            lease = uow.leases.open_for(actor.user_id, project_id, now)
            if lease is not None:
                # No hoarding: whoever holds a lease gets the same task back.
                task = uow.tasks.get(lease.task_id)
                assert task is not None
                started, expires = lease.started_at, lease.expires_at
            else:
                task = uow.tasks.next_for(project_id, actor.user_id)
                if task is None:
                    raise QueueRefused("no_tasks", "no tasks left for you in this project")
                started, expires = now, now + timedelta(seconds=project.lease_seconds)
                uow.leases.insert(
                    client_id=client_id, project_id=project_id, task_id=task.id,
                    user_id=actor.user_id, started_at=started, expires_at=expires,
                )
                uow.tasks.adjust_slots(task.id, open_slots=-1)
            payload, suggestions = open_task_content(uow, task)
            uow.commit()
        return LeasedTask(task.id, project_id, payload, suggestions, started, expires)

    def submit(
        self,
        actor: Actor,
        client_id: int,
        project_id: int,
        task_id: int,
        answer: dict[str, Any],
        *,
        idempotency_key: str | None = None,
    ) -> SubmittedAnswer:
        if idempotency_key is not None and not 1 <= len(idempotency_key) <= 100:
            raise InvalidInput("idempotency_key must be 1 to 100 characters", details={"field": "idempotency_key"})
        try:
            return self._submit(actor, client_id, project_id, task_id, answer, idempotency_key)
        except IntegrityError:
            # A concurrent twin of this request won the race (PostgreSQL); answer as it did.
            if idempotency_key is None:
                raise Conflict(f"task {task_id} was answered by you already") from None
            return self._submit(actor, client_id, project_id, task_id, answer, idempotency_key)

    def _submit(
        self,
        actor: Actor,
        client_id: int,
        project_id: int,
        task_id: int,
        answer: dict[str, Any],
        idempotency_key: str | None,
    ) -> SubmittedAnswer:
        now = utcnow()
        with self.uow_factory.for_client(client_id, write=True) as uow:
            ProjectPolicy.label(access_in(uow, actor))
            project = load_project(uow, project_id)
            if idempotency_key is not None:
                earlier = uow.answers.by_idempotency_key(actor.user_id, idempotency_key)
                if earlier is not None:
                    if earlier.task_id != task_id:
                        raise Conflict("idempotency_key was used for another task", details={"field": "idempotency_key"})
                    return SubmittedAnswer(earlier.id, task_id, False, earlier.created_at, earlier.time_spent_ms)
            task = uow.tasks.get(task_id)
            if task is None or task.project_id != project_id:
                raise NotFound(f"task {task_id} not found")
            if uow.answers.of(task_id, actor.user_id) is not None:
                raise Conflict(f"task {task_id} was answered by you already")
            payload, _ = open_task_content(uow, task)
            normalized = validate_answer(schema_of(project), payload, answer)
            lease = uow.leases.of(task_id, actor.user_id)
            if lease is not None:
                uow.leases.remove(lease)
                uow.tasks.adjust_slots(task_id, answers=+1)  # the lease's slot becomes the answer
                started = lease.started_at
            elif task.open_slots > 0 and uow.skips.of(task_id, actor.user_id) is None:
                uow.tasks.adjust_slots(task_id, open_slots=-1, answers=+1)  # lease lapsed; slot still free
                started = now
            else:
                raise Conflict(f"your lease on task {task_id} expired and the task has all its answers")
            answer_id = allocate_ids(uow.session, Answer, 1)[0]
            key_id, cipher = uow.active_cipher()
            spent = int(min(now - started, MAX_COUNTED_WORK).total_seconds() * 1000)
            uow.answers.add(
                Answer(
                    id=answer_id, project_id=project_id, task_id=task_id, user_id=actor.user_id,
                    data_key_id=key_id, value=cipher.seal("answer.value", answer_id, orjson.dumps(normalized)),
                    idempotency_key=idempotency_key, started_at=started, created_at=now, time_spent_ms=spent,
                )
            )
            uow.commit()
        return SubmittedAnswer(answer_id, task_id, True, now, spent)

    def skip(self, actor: Actor, client_id: int, project_id: int, task_id: int, reason: str = "") -> None:
        with self.uow_factory.for_client(client_id, write=True) as uow:
            ProjectPolicy.label(access_in(uow, actor))
            load_project(uow, project_id)
            task = uow.tasks.get(task_id)
            if task is None or task.project_id != project_id:
                raise NotFound(f"task {task_id} not found")
            lease = uow.leases.of(task_id, actor.user_id)
            if lease is None:
                raise Conflict(f"you hold no lease on task {task_id}")
            uow.leases.remove(lease)
            uow.tasks.adjust_slots(task_id, open_slots=+1)
            uow.skips.add(Skip(project_id=project_id, task_id=task_id, user_id=actor.user_id, reason=reason[:500]))
            uow.commit()
