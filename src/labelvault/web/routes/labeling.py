"""The labeling and review screens. The pages carry the project's schema; the browser then
leases tasks, submits answers and records review decisions through the JSON API (same session
cookie, CSRF token in a header), so the next task appears without reloading the page."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from labelvault.web.markdown import render_markdown
from labelvault.web.render import PagesDep
from labelvault.web.sessions import FetchSessionDep, ServicesDep, SessionDep
from labelvault.workflow.projects import ProjectInfo

router = APIRouter()

ProjectId = Annotated[int, Path(ge=1)]


def _screen_config(project: ProjectInfo) -> dict[str, Any]:
    return {"project_id": project.id, "project": project.name, "schema": project.schema.to_dict()}


@router.get("/projects/{project_id}/label")
def label_page(request: Request, project_id: ProjectId, session: SessionDep, services: ServicesDep,
               pages: PagesDep) -> Response:
    client_id, _ = services.projects.locate(project_id)
    project = services.projects.get(session.actor, client_id, project_id)
    earned = services.reports.my_earnings(session.actor, client_id)
    client = next((c for c in services.web_sessions.memberships(session.actor) if c.client_id == client_id), None)
    return pages.render(request, "label.html", session=session, project=project, config=_screen_config(project),
                        earned=earned, currency=client.currency if client else "USD", client_id=client_id)


@router.get("/projects/{project_id}/review")
def review_page(request: Request, project_id: ProjectId, session: SessionDep, services: ServicesDep,
                pages: PagesDep) -> Response:
    client_id, _ = services.projects.locate(project_id)
    project = services.projects.get(session.actor, client_id, project_id)
    pending = services.reviews.pending(session.actor, client_id, project_id)
    return pages.render(request, "review.html", session=session, project=project, config=_screen_config(project),
                        pending=pending)


class MarkdownRender(BaseModel):
    texts: list[Annotated[str, Field(max_length=200_000)]] = Field(max_length=50)


@router.post("/render/markdown")
def markdown(body: MarkdownRender, _session: FetchSessionDep) -> dict[str, list[str]]:
    """Sanitised HTML for markdown fields of a task the browser holds (it stores nothing)."""
    return {"html": [str(render_markdown(text)) for text in body.texts]}
