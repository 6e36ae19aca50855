"""Answers of a project, page by page (keyset by answer id), for clients pulling labels."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from labelvault.api.deps import ActorDep, PageDep, ServicesDep
from labelvault.api.routes.projects import ProjectRefDep
from labelvault.api.schemas import KeysetPage

router = APIRouter(tags=["answers"])


class AnswerRead(BaseModel):
    id: int
    task_id: int
    external_id: str | None
    labeler_id: int
    labeler: str
    value: dict[str, Any]
    status: str = Field(description="submitted, accepted, rejected or corrected")
    started_at: datetime
    submitted_at: datetime
    time_spent_ms: int
    reviewed_at: datetime | None


class AnswerPageRead(KeysetPage[AnswerRead]):
    pass


@router.get("/projects/{project_id}/answers", response_model=AnswerPageRead)
def list_answers(
    ref: ProjectRefDep,
    actor: ActorDep,
    services: ServicesDep,
    page: PageDep,
    after_id: Annotated[int, Query(ge=0, description="Only answers with a larger id (keyset pagination).")] = 0,
    status: Annotated[str | None, Query(description="submitted, accepted, rejected or corrected")] = None,
) -> AnswerPageRead:
    """The project's answers in id order with their values, labeler and times (managers; audited)."""
    found = services.answers.page(actor, ref.client_id, ref.project_id, after_id=after_id, offset=page.offset,
                                  limit=page.limit, status=status)
    return AnswerPageRead(
        items=[AnswerRead.model_validate(a, from_attributes=True) for a in found.items], total=found.total,
        offset=page.offset, limit=page.limit, next_after_id=found.next_after_id,
    )


class SkipRead(BaseModel):
    id: int
    task_id: int
    external_id: str | None
    labeler_id: int
    labeler: str
    reason: str = Field(description="The labeler's reason, as they wrote it (may be empty).")
    skipped_at: datetime


class SkipPageRead(KeysetPage[SkipRead]):
    pass


@router.get("/projects/{project_id}/skips", response_model=SkipPageRead)
def list_skips(
    ref: ProjectRefDep,
    actor: ActorDep,
    services: ServicesDep,
    page: PageDep,
    after_id: Annotated[int, Query(ge=0, description="Only skips with a larger id (keyset pagination).")] = 0,
) -> SkipPageRead:
    """The project's skips in id order with the labelers' reasons (managers; audited)."""
    found = services.answers.skips(actor, ref.client_id, ref.project_id, after_id=after_id, offset=page.offset,
                                   limit=page.limit)
    return SkipPageRead(
        items=[SkipRead.model_validate(s, from_attributes=True) for s in found.items], total=found.total,
        offset=page.offset, limit=page.limit, next_after_id=found.next_after_id,
    )
