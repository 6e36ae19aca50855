"""A person's own earnings from one client: every money event, newest first, with the manager's
note on a bonus and the reviewer's reason on a reversal (both untrusted text, shown as text)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from labelvault.web.render import PagesDep
from labelvault.web.sessions import ServicesDep, SessionDep

router = APIRouter()

PAGE_SIZE = 50

KIND_TITLES = {"answer": "Answer paid", "review": "Review paid", "bonus": "Bonus",
               "reversal": "Answer rejected: pay taken back"}


@router.get("/clients/{client_id}/earnings")
def earnings_page(
    request: Request,
    client_id: Annotated[int, Path(ge=1)],
    session: SessionDep,
    services: ServicesDep,
    pages: PagesDep,
    project: Annotated[int | None, Query(ge=1)] = None,
    after: Annotated[int, Query(ge=0)] = 0,
) -> Response:
    actor = session.actor
    # The ledger read first: it applies the policy (404 for a stranger to the client), the wall and
    # the audit entry before anything else of the client is read for the page.
    ledger = services.reports.own_ledger(actor, client_id, project_id=project, after_id=after, limit=PAGE_SIZE,
                                         newest_first=True)
    client = services.clients.get(actor, client_id)
    projects, _ = services.projects.list(actor, client_id, limit=200)
    return pages.render(request, "earnings.html", session=session, nav=services.web_sessions.memberships(actor),
                        client=client, ledger=ledger, projects=projects, project=project, after=after,
                        kinds=KIND_TITLES)
