"""The start page: the projects a person works on, by what they may do there."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import APIRouter, Request
from fastapi.responses import Response

from labelvault.domain.access import Role
from labelvault.web.render import PagesDep
from labelvault.web.sessions import ServicesDep, SessionDep
from labelvault.workflow.projects import ProjectInfo
from labelvault.workflow.web_sessions import ClientRoles

router = APIRouter()


@dataclass
class ClientWork:
    client: ClientRoles
    projects: list[ProjectInfo]
    earned: int | None = None  # the person's own earnings from this client (labelers, reviewers)
    pending: dict[int, int] = field(default_factory=dict)  # reviews waiting, per project
    progress: dict[int, dict[str, int]] = field(default_factory=dict)  # answers given and needed


@router.get("/")
def home(request: Request, session: SessionDep, services: ServicesDep, pages: PagesDep) -> Response:
    actor = session.actor
    memberships = services.web_sessions.memberships(actor)
    work = []
    for client in memberships:
        projects, _ = services.projects.list(actor, client.client_id, limit=200)
        item = ClientWork(client, [p for p in projects if p.status != "archived"])
        item.progress = {p.id: services.projects.progress(actor, client.client_id, p.id) for p in item.projects}
        if client.has(Role.LABELER, Role.REVIEWER):
            item.earned = services.reports.my_earnings(actor, client.client_id)
        if client.has(Role.REVIEWER, Role.MANAGER):
            item.pending = {p.id: services.reviews.pending(actor, client.client_id, p.id)
                            for p in item.projects if p.review_policy != "none"}
        work.append(item)
    return pages.render(request, "home.html", session=session, nav=memberships, work=work, Role=Role)
