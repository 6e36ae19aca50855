"""Model suggestions (pre-annotations) added to existing tasks, in bulk."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from labelvault.api.deps import ActorDep, ServicesDep
from labelvault.api.routes.projects import ProjectRefDep
from labelvault.io.suggestions import MAX_ITEMS, SuggestionInput

router = APIRouter(tags=["import and export"])


class SuggestionItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    task_id: int | None = Field(default=None, description="The task, by id ...")
    external_id: str | None = Field(default=None, description="... or by its external id.")
    suggestions: list[dict[str, Any]] = Field(description='[{"model", "answer", "score"?}]', max_length=100)


class SuggestionsAdd(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[SuggestionItem] = Field(max_length=MAX_ITEMS)


class SuggestionsAdded(BaseModel):
    tasks: int = Field(description="Tasks whose suggestions changed.")
    suggestions: int = Field(description="Suggestions written.")


@router.post("/projects/{project_id}/suggestions", response_model=SuggestionsAdded)
def add_suggestions(
    ref: ProjectRefDep, body: SuggestionsAdd, actor: ActorDep, services: ServicesDep
) -> SuggestionsAdded:
    """Add suggestions to tasks; a model's new suggestions replace its earlier ones on the task, so
    repeating a request changes nothing (safe to retry). One bad item rejects the request."""
    report = services.suggestions.add(
        actor, ref.client_id, ref.project_id,
        [SuggestionInput(suggestions=i.suggestions, task_id=i.task_id, external_id=i.external_id) for i in body.items],
    )
    return SuggestionsAdded(tasks=report.tasks, suggestions=report.suggestions)
