"""A client's own pages: its projects and spend, its audit trail ("who saw my data"), and the
request to leave."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from labelvault.errors import InvalidInput, PermissionDenied
from labelvault.web.charts import Series, line_chart
from labelvault.web.forms import NOTICES, minor_unit_step
from labelvault.web.render import PagesDep, money
from labelvault.web.sessions import FormSessionDep, ServicesDep, SessionDep

router = APIRouter()

ClientId = Annotated[int, Path(ge=1)]
SPEND_DAYS = 30
PAGE_SIZE = 100

# Audit actions in which a person was given the client's data.
DATA_ACCESS = ("task.shown", "task.shown_for_review", "project.exported", "export", "audit.trail_exported")


@router.get("/clients/{client_id}")
def client_page(request: Request, client_id: ClientId, session: SessionDep, services: ServicesDep,
                pages: PagesDep, done: Annotated[str | None, Query()] = None) -> Response:
    actor = session.actor
    client = services.clients.get(actor, client_id)
    projects, _ = services.projects.list(actor, client_id, limit=200)
    try:
        since = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=SPEND_DAYS - 1)
        totals = services.reports.spend(actor, client_id)
        daily = services.reports.spend(actor, client_id, by_day=True, since=since)
    except PermissionDenied:
        totals = daily = None  # spend is for the client's managers
    spend_chart = None
    if daily is not None and totals is not None:
        days = [(since + timedelta(days=i)).date() for i in range(SPEND_DAYS)]
        per_day: Counter[date] = Counter()
        for row in daily:
            if row.day is not None:
                per_day[row.day] += row.amount
        running = sum(r.amount for r in totals) - sum(per_day.values())
        cumulative = []
        for day in days:
            running += per_day[day]
            cumulative.append(running)
        spend_chart = line_chart([d.strftime("%m-%d") for d in days], [Series("spent", cumulative)],
                                 title=f"Spend over the last {SPEND_DAYS} days", width=960,
                                 fmt=lambda v: money(round(v), client.currency),
                                 min_step=minor_unit_step(client.currency))
    spent = {row.project_id: row.amount for row in totals or []}
    nav = services.web_sessions.memberships(actor)
    roles = next((c.roles for c in nav if c.client_id == client_id), frozenset())
    return pages.render(request, "client.html", session=session, nav=nav, client=client, projects=projects,
                        spent=spent, total=sum(spent.values()) if totals is not None else None,
                        spend_chart=spend_chart, roles=roles, notice=NOTICES.get(done or ""))


@router.post("/clients/{client_id}/offboarding")
def request_offboarding(client_id: ClientId, session: FormSessionDep, services: ServicesDep,
                        confirm: Annotated[bool, Form()] = False) -> Response:
    if not confirm:
        raise InvalidInput("tick the box to confirm that you ask to leave", details={"field": "confirm"})
    services.web_sessions.request_offboarding(session.actor, client_id)
    return RedirectResponse(f"/clients/{client_id}?done=offboarding_requested", status_code=303)


@dataclass(frozen=True, slots=True)
class Viewer:
    actor: str
    accesses: int
    tasks: int
    first: str
    last: str


def _parse_day(text: str | None, field: str) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{field}: expected a date as YYYY-MM-DD", details={"field": field}) from None


@router.get("/clients/{client_id}/audit")
def audit_trail(
    request: Request,
    client_id: ClientId,
    session: SessionDep,
    services: ServicesDep,
    pages: PagesDep,
    actor: Annotated[str, Query(max_length=100)] = "",
    action: Annotated[str, Query(max_length=60)] = "",
    outcome: Annotated[str, Query(max_length=20)] = "",
    since: Annotated[str, Query(max_length=10)] = "",
    until: Annotated[str, Query(max_length=10)] = "",
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    """Every audit entry about this client, newest first, filtered; and who was shown its data."""
    client = services.clients.get(session.actor, client_id)
    first_day, last_day = _parse_day(since, "since"), _parse_day(until, "until")
    lines = services.trails.trail(session.actor, client_id)
    # The trail streams oldest first; keep only what the asked page needs of the newest matches.
    matches: deque[dict[str, Any]] = deque(maxlen=page * PAGE_SIZE)
    total = 0
    viewers: dict[str, dict[str, Any]] = {}
    actions: Counter[str] = Counter()
    for line in lines:
        entry = orjson.loads(line)
        name, time = entry.get("action", ""), entry.get("time", "")
        actions[name] += 1
        if name in DATA_ACCESS and entry.get("outcome") == "ok":
            seen = viewers.setdefault(entry.get("actor", "?"),
                                      {"accesses": 0, "tasks": set(), "first": time, "last": time})
            seen["accesses"] += 1
            if entry.get("object_kind") == "task":
                seen["tasks"].add(entry.get("object_id"))
            seen["last"] = time
        day = time[:10]
        if ((actor and entry.get("actor") != actor) or (action and not name.startswith(action))
                or (outcome and entry.get("outcome") != outcome)
                or (first_day and day < first_day.isoformat()) or (last_day and day > last_day.isoformat())):
            continue
        matches.append(entry)
        total += 1
    newest_first = list(reversed(matches))
    shown = newest_first[(page - 1) * PAGE_SIZE: page * PAGE_SIZE]
    who = sorted((Viewer(name, v["accesses"], len(v["tasks"]), v["first"], v["last"]) for name, v in viewers.items()),
                 key=lambda v: -v.accesses)
    filters = {"actor": actor, "action": action, "outcome": outcome, "since": since, "until": until}
    return pages.render(request, "audit.html", session=session, client=client, entries=shown, total=total,
                        page=page, pages_count=max(1, -(-total // PAGE_SIZE)), viewers=who, filters=filters,
                        actions=sorted(actions), page_size=PAGE_SIZE,
                        query=urlencode({k: v for k, v in filters.items() if v}))
