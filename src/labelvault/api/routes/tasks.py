"""A project's tasks: list and find them, open one with all that happened to it, reprioritise them,
remove unanswered ones."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from labelvault.api.deps import ActorDep, PageDep, ServicesDep
from labelvault.api.routes.projects import ProjectRefDep
from labelvault.api.schemas import KeysetPage
from labelvault.workflow.tasks import MAX_ANSWERS, MAX_PER_CALL, PRIORITY_RANGE

router = APIRouter(tags=["tasks"])

TaskState = Literal["open", "in_review", "complete", "gold"]


class TaskSummary(BaseModel):
    id: int
    external_id: str | None
    state: TaskState = Field(description="open: wants answers (leased or not); in_review: awaiting a "
                                         "reviewer; complete: has its answers; gold: a known-answer check")
    priority: int
    required_answers: int
    answer_count: int
    created_at: datetime


class TaskAnswer(BaseModel):
    id: int
    labeler_id: int
    labeler: str
    status: str = Field(description="submitted, accepted, rejected or corrected")
    value: dict[str, Any]
    started_at: datetime
    submitted_at: datetime
    time_spent_ms: int
    reviewed_at: datetime | None
    review_note: str | None = Field(description="The reviewer's reason, for a rejected answer.")


class TaskSkip(BaseModel):
    labeler_id: int
    labeler: str
    reason: str
    skipped_at: datetime


class TaskLease(BaseModel):
    holder_id: int
    holder: str
    purpose: Literal["label", "review"]
    started_at: datetime
    expires_at: datetime


class TaskReview(BaseModel):
    id: int
    reviewer_id: int
    reviewer: str
    decision: str = Field(description="accept, reject or correct")
    reason: str | None
    corrected_value: dict[str, Any] | None
    decided_at: datetime


class TaskDetail(BaseModel):
    id: int
    project_id: int
    external_id: str | None
    state: TaskState
    priority: int
    uncertainty: float
    required_answers: int
    answer_count: int
    open_slots: int = Field(description="Answers still wanted that nobody holds a lease for.")
    is_gold: bool
    created_at: datetime
    payload: dict[str, Any]
    metadata: dict[str, Any] | None
    suggestions: list[dict[str, Any]]
    gold_answer: dict[str, Any] | None
    answers: list[TaskAnswer]
    skips: list[TaskSkip]
    leases: list[TaskLease]
    reviews: list[TaskReview]


class TaskSelection(BaseModel):
    """Tasks named by id, by external id, or both (at most 10,000 in all)."""

    task_ids: list[int] = Field(default_factory=list, max_length=MAX_PER_CALL)
    external_ids: list[str] = Field(default_factory=list, max_length=MAX_PER_CALL)


class PriorityChange(TaskSelection):
    priority: int = Field(ge=PRIORITY_RANGE[0], le=PRIORITY_RANGE[1], description="Higher is labeled first.")


class MoreAnswers(TaskSelection):
    more: int = Field(ge=1, le=MAX_ANSWERS, description="Answers each task wants beyond those it wanted.")


class MoreAnswersAsked(BaseModel):
    tasks: int


class TasksRemoved(BaseModel):
    removed: int


class PriorityChanged(BaseModel):
    changed: int = Field(description="Tasks whose priority moved (those that had it already are not counted).")


@router.get("/projects/{project_id}/tasks", response_model=KeysetPage[TaskSummary])
def list_tasks(
    ref: ProjectRefDep,
    actor: ActorDep,
    services: ServicesDep,
    page: PageDep,
    state: Annotated[TaskState | None, Query(description="Only tasks in this state.")] = None,
    external_id: Annotated[str | None, Query(max_length=200, description="The task with this external id.")] = None,
    after_id: Annotated[int, Query(ge=0, description="Only tasks with a larger id (keyset pagination: every "
                                                      "page of a large project costs the same).")] = 0,
) -> KeysetPage[TaskSummary]:
    """The project's tasks in id order: ids, counters and states, no content (anyone in the client).
    ``total`` counts the tasks of the filter, whatever the page."""
    found = services.tasks.page(actor, ref.client_id, ref.project_id, state=state, external_id=external_id,
                                after_id=after_id, offset=page.offset, limit=page.limit)
    items = [TaskSummary.model_validate(t, from_attributes=True) for t in found.items]
    return KeysetPage(items=items, total=found.total, offset=page.offset, limit=page.limit,
                      next_after_id=found.next_after_id)


# ":int": /tasks/next (POST) is not a task id, so a GET there stays a 405, not a 400 about the id.
@router.get("/projects/{project_id}/tasks/{task_id:int}", response_model=TaskDetail)
def open_task(
    ref: ProjectRefDep, actor: ActorDep, services: ServicesDep, task_id: Annotated[int, Path(ge=1)]
) -> TaskDetail:
    """One task with its content, answers, skips, leases and reviews (managers; the conflict wall is
    checked and the opening audited as ``task.read``)."""
    detail = services.tasks.open(actor, ref.client_id, ref.project_id, task_id)
    return TaskDetail.model_validate(detail, from_attributes=True)


@router.post("/projects/{project_id}/tasks/priority", response_model=PriorityChanged)
def set_priority(ref: ProjectRefDep, body: PriorityChange, actor: ActorDep, services: ServicesDep) -> PriorityChanged:
    """Give tasks, by id or external id, a new priority (managers). All or nothing: a task not in
    the project is a 404 that names it, and nothing changes."""
    changed = services.tasks.set_priority(actor, ref.client_id, ref.project_id, body.priority,
                                          task_ids=body.task_ids, external_ids=body.external_ids)
    return PriorityChanged(changed=changed)


@router.post("/projects/{project_id}/tasks/more-answers", response_model=MoreAnswersAsked)
def ask_more_answers(ref: ProjectRefDep, body: MoreAnswers, actor: ActorDep, services: ServicesDep) -> MoreAnswersAsked:
    """Ask for ``more`` answers on tasks, from labelers who have not answered them (managers). A
    complete task goes back to the queue; one awaiting review goes back to the labelers first. All
    or nothing: a task not in the project is a 404, a gold task or one past 100 answers a 400."""
    asked = services.tasks.ask_more_answers(actor, ref.client_id, ref.project_id, body.more, task_ids=body.task_ids,
                                            external_ids=body.external_ids)
    return MoreAnswersAsked(tasks=asked)


@router.post("/projects/{project_id}/tasks/remove", response_model=TasksRemoved)
def remove_tasks(ref: ProjectRefDep, body: TaskSelection, actor: ActorDep, services: ServicesDep) -> TasksRemoved:
    """Delete tasks nobody has answered, with their skips and leases (managers). All or nothing: a
    task not in the project is a 404, one with an answer a 409, each naming the tasks, and nothing
    is deleted."""
    removed = services.tasks.remove(actor, ref.client_id, ref.project_id, task_ids=body.task_ids,
                                    external_ids=body.external_ids)
    return TasksRemoved(removed=removed)
