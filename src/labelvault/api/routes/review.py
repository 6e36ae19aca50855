"""Review: the reviewer queue, decisions, and the labeler's feedback on rejected answers."""

from __future__ import annotations

from fastapi import APIRouter

from labelvault.api.deps import ActorDep, PageDep, ServicesDep
from labelvault.api.routes.projects import ProjectRefDep
from labelvault.api.schemas import (
    Page,
    RejectionRead,
    ReviewAnswerRead,
    ReviewDecision,
    ReviewItemRead,
    ReviewRecorded,
)

router = APIRouter(tags=["review"])


@router.post("/projects/{project_id}/reviews/next", response_model=ReviewItemRead)
def next_review(ref: ProjectRefDep, actor: ActorDep, services: ServicesDep) -> ReviewItemRead:
    """Lease the next task awaiting review, with its answers side by side."""
    item = services.reviews.next_item(actor, ref.client_id, ref.project_id)
    return ReviewItemRead(
        task_id=item.task_id, project_id=item.project_id, data=item.payload,
        answers=[ReviewAnswerRead.model_validate(a, from_attributes=True) for a in item.answers],
        lease_expires_at=item.lease_expires_at,
    )


@router.post("/projects/{project_id}/reviews/{task_id}", response_model=ReviewRecorded)
def decide(
    ref: ProjectRefDep, task_id: int, body: ReviewDecision, actor: ActorDep, services: ServicesDep
) -> ReviewRecorded:
    """Accept, reject (with a reason; the task goes back to the queue) or correct."""
    review_id = services.reviews.decide(
        actor, ref.client_id, ref.project_id, task_id, decision=body.decision,
        reject_answer_ids=body.answer_ids, reason=body.reason, correction=body.answer,
    )
    return ReviewRecorded(review_id=review_id)


@router.get("/projects/{project_id}/feedback", response_model=Page[RejectionRead])
def my_feedback(ref: ProjectRefDep, actor: ActorDep, services: ServicesDep, page: PageDep) -> Page[RejectionRead]:
    """The caller's rejected answers in this project with the reviewers' reasons."""
    rows = services.reviews.rejected_feedback(actor, ref.client_id, ref.project_id,
                                              offset=page.offset, limit=page.limit + 1)
    items = [RejectionRead.model_validate(r, from_attributes=True) for r in rows[: page.limit]]
    return Page(items=items, total=page.offset + len(rows), offset=page.offset, limit=page.limit)
