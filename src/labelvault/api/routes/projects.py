"""One project: settings and progress (its tasks: tasks.py)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path
from starlette.concurrency import run_in_threadpool

from labelvault.api.deps import ActorDep, ServicesDep
from labelvault.api.schemas import Progress, ProjectRead, ProjectUpdate
from labelvault.workflow.projects import ProjectInfo, ProjectSettings

router = APIRouter(tags=["projects"])


def project_read(info: ProjectInfo) -> ProjectRead:
    return ProjectRead(
        id=info.id, client_id=info.client_id, slug=info.slug, name=info.name,
        project_schema=info.schema.to_dict(), overlap=info.overlap, lease_seconds=info.lease_seconds,
        status=info.status, created_at=info.created_at, review_policy=info.review_policy,
        review_sample_rate=info.review_sample_rate, pay_on=info.pay_on, rate_per_answer=info.rate_per_answer,
        rate_per_review=info.rate_per_review, question_rates=info.question_rates, budget_cap=info.budget_cap,
        spent=info.spent,
    )


class ProjectRef:
    """A project id from the path, resolved to (client, project); access is checked by the use case."""

    def __init__(self, client_id: int, project_id: int) -> None:
        self.client_id, self.project_id = client_id, project_id


async def project_ref(services: ServicesDep, project_id: Annotated[int, Path(ge=1)]) -> ProjectRef:
    # Async, so that a project already located by this process costs no hop to a worker thread.
    located = services.projects.located(project_id)
    if located is None:
        located = await run_in_threadpool(services.projects.locate, project_id)
    return ProjectRef(*located)


ProjectRefDep = Annotated[ProjectRef, Depends(project_ref)]


@router.get("/projects/{project_id}", response_model=ProjectRead, response_model_by_alias=True)
def get_project(ref: ProjectRefDep, actor: ActorDep, services: ServicesDep) -> ProjectRead:
    return project_read(services.projects.get(actor, ref.client_id, ref.project_id))


@router.patch("/projects/{project_id}", response_model=ProjectRead, response_model_by_alias=True)
def update_project(
    ref: ProjectRefDep, body: ProjectUpdate, actor: ActorDep, services: ServicesDep
) -> ProjectRead:
    changes = ProjectSettings(**body.model_dump())
    return project_read(services.projects.update(actor, ref.client_id, ref.project_id, changes))


@router.get("/projects/{project_id}/progress", response_model=Progress)
def project_progress(ref: ProjectRefDep, actor: ActorDep, services: ServicesDep) -> Progress:
    return Progress(**services.projects.progress(actor, ref.client_id, ref.project_id))
