"""The labeler's loop: next task, submit, skip."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, status

from labelvault.api.deps import ActorDep, ServicesDep
from labelvault.api.routes.projects import ProjectRefDep
from labelvault.api.schemas import AnswerReceipt, AnswerSubmit, LeasedTaskRead, SkipCreate

router = APIRouter(tags=["labeling"])


@router.post("/projects/{project_id}/tasks/next", response_model=LeasedTaskRead)
def next_task(ref: ProjectRefDep, actor: ActorDep, services: ServicesDep) -> LeasedTaskRead:
    """Lease the next task for the caller (the same one again while a lease is open)."""
    leased = services.labeling.next_task(actor, ref.client_id, ref.project_id)
    return LeasedTaskRead(
        task_id=leased.task_id, project_id=leased.project_id, data=leased.payload,
        suggestions=leased.suggestions, lease_started_at=leased.lease_started_at,
        lease_expires_at=leased.lease_expires_at,
    )


@router.post("/projects/{project_id}/tasks/{task_id}/answers", response_model=AnswerReceipt)
def submit_answer(
    ref: ProjectRefDep,
    task_id: int,
    body: AnswerSubmit,
    actor: ActorDep,
    services: ServicesDep,
    idempotency_key: Annotated[str | None, Header(max_length=100)] = None,
) -> AnswerReceipt:
    """Submit an answer. Repeating a request with the same idempotency key returns the first result."""
    receipt = services.labeling.submit(
        actor, ref.client_id, ref.project_id, task_id, body.answer,
        idempotency_key=body.idempotency_key or idempotency_key,
    )
    return AnswerReceipt.model_validate(receipt, from_attributes=True)


@router.post("/projects/{project_id}/tasks/{task_id}/skip", status_code=status.HTTP_204_NO_CONTENT)
def skip_task(ref: ProjectRefDep, task_id: int, body: SkipCreate, actor: ActorDep, services: ServicesDep) -> None:
    services.labeling.skip(actor, ref.client_id, ref.project_id, task_id, body.reason)
