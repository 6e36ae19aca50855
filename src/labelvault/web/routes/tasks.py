"""The manager's task browser: a project's tasks by state or external id, one task with all that
happened to it, and forms to move it in the queue, ask for more answers, or remove it (if nobody
answered it).

The task's content is client text, untrusted: the page shows it as text (Jinja escapes it), and a
markdown field through the same sanitised rendering as the labeling screen. Answer values,
metadata and suggestions are shown as compact JSON text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import RedirectResponse, Response

from labelvault.domain.access import Role
from labelvault.errors import InvalidInput
from labelvault.web.forms import parse_int
from labelvault.web.render import PagesDep
from labelvault.web.sessions import FormSessionDep, ServicesDep, SessionDep
from labelvault.workflow.projects import ProjectInfo
from labelvault.workflow.tasks import MAX_ANSWERS, MAX_PAGE, PRIORITY_RANGE, TASK_STATES

router = APIRouter()

ProjectId = Annotated[int, Path(ge=1)]
TaskId = Annotated[int, Path(ge=1)]
PAGE_SIZE = 50
DATA_URL_SHOWN = 80  # characters of a data: URL shown before it is cut (the rest is the picture's bytes)

# How a task's state, an answer's status and a review's decision look (app.css badges).
BADGES = {
    "open": "", "in_review": "badge-accent", "complete": "badge-ok", "gold": "badge-warn",
    "submitted": "", "accepted": "badge-ok", "rejected": "badge-bad", "corrected": "badge-warn",
    "accept": "badge-ok", "reject": "badge-bad", "correct": "badge-warn",
}

# Notices after a form post are codes in the redirect, never text from the request.
NOTICES = {"priority_saved": "Priority saved: the queue follows it from the next task handed out.",
           "more_answers_asked": "More answers asked: the task is back in the queue.",
           "task_removed": "Task removed, with its skips and leases."}


def as_text(value: Any) -> str:
    """A value as people read it: text as it is, anything else as compact JSON."""
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


@dataclass(frozen=True, slots=True)
class FieldView:
    """One field of the task's payload, ready to be shown as text."""

    name: str
    title: str
    kind: str  # the schema's kind; "data" for a key the schema does not name, or a value of odd shape
    text: str = ""
    messages: list[tuple[str, str]] = field(default_factory=list)  # chat: (role, content)
    candidates: list[tuple[str, str]] = field(default_factory=list)  # candidates: (model, text)


def field_views(project: ProjectInfo, payload: dict[str, Any]) -> list[FieldView]:
    """The payload's fields in the schema's order, then any key the schema does not name."""
    views = []
    for spec in project.schema.fields:
        if payload.get(spec.name) is None:
            continue
        views.append(_field_view(spec.name, spec.title or spec.name, str(spec.kind), payload[spec.name]))
    named = {spec.name for spec in project.schema.fields}
    views += [FieldView(key, key, "data", as_text(value)) for key, value in payload.items() if key not in named]
    return views


def _field_view(name: str, title: str, kind: str, value: Any) -> FieldView:
    if kind == "chat" and isinstance(value, list) and all(isinstance(m, dict) for m in value):
        return FieldView(name, title, kind,
                         messages=[(as_text(m.get("role", "")), as_text(m.get("content", ""))) for m in value])
    if kind == "candidates" and isinstance(value, list):
        return FieldView(name, title, kind, candidates=[
            (as_text(c.get("model") or ""), as_text(c.get("text", ""))) if isinstance(c, dict) else ("", as_text(c))
            for c in value
        ])
    if kind == "image" and isinstance(value, str):
        # A data: URL is mostly the picture's bytes: its start says what it is.
        shown = value if not value.startswith("data:") or len(value) <= DATA_URL_SHOWN else (
            f"{value[:DATA_URL_SHOWN]}… ({len(value):,} characters)")
        return FieldView(name, title, kind, shown)
    if kind in ("text", "markdown", "image") and isinstance(value, str):
        return FieldView(name, title, kind, value)
    return FieldView(name, title, "data", as_text(value))


def answer_values(question_names: list[str], value: dict[str, Any]) -> list[tuple[str, str]]:
    """(question, its answer as text) in the schema's order, then any other key of the answer."""
    ordered = [q for q in question_names if q in value] + [q for q in value if q not in question_names]
    return [(q, as_text(value[q])) for q in ordered]


def _whole_number(text: str, field: str) -> int:
    value = parse_int(text, field)
    if value is None:
        raise InvalidInput(f"{field}: enter a whole number", details={"field": field})
    return value


@router.get("/projects/{project_id}/tasks")
def task_list(
    request: Request,
    project_id: ProjectId,
    session: SessionDep,
    services: ServicesDep,
    pages: PagesDep,
    state: Annotated[str, Query(max_length=20)] = "",
    external_id: Annotated[str, Query(max_length=200)] = "",
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = PAGE_SIZE,
    done: Annotated[str | None, Query()] = None,
) -> Response:
    actor = session.actor
    client_id, _ = services.projects.locate(project_id)
    wanted = external_id.strip()
    # The listing first: it applies the policy (404 for a stranger to the client, a bad state is 400).
    tasks, total = services.tasks.list(actor, client_id, project_id, state=state or None,
                                       external_id=wanted or None, offset=offset, limit=limit)
    project = services.projects.get(actor, client_id, project_id)
    memberships = services.web_sessions.memberships(actor)
    # Only managers may open a task (the use case decides; this only spares others a dead link).
    manages = actor.is_operator or any(c.client_id == client_id and c.has(Role.MANAGER) for c in memberships)
    filters = {k: v for k, v in {"state": state, "external_id": wanted}.items() if v}
    if limit != PAGE_SIZE:
        filters["limit"] = str(limit)

    def page_query(at: int) -> str:
        return urlencode({**filters, **({"offset": at} if at else {})})

    return pages.render(
        request, "tasks.html", session=session, project=project, tasks=tasks, total=total,
        badges=BADGES, state=state, external_id=wanted, offset=offset, limit=limit, manages=manages,
        notice=NOTICES.get(done or ""),
        # Each state's link keeps the search and the page size, and starts at the first page.
        state_query={s: urlencode({k: v for k, v in {**filters, "state": s}.items() if v}) for s in ("", *TASK_STATES)},
        previous_query=page_query(max(0, offset - limit)) if offset > 0 else None,
        next_query=page_query(offset + limit) if offset + limit < total else None,
    )


@router.get("/projects/{project_id}/tasks/{task_id}")
def task_page(request: Request, project_id: ProjectId, task_id: TaskId, session: SessionDep,
              services: ServicesDep, pages: PagesDep, done: Annotated[str | None, Query()] = None) -> Response:
    actor = session.actor
    client_id, _ = services.projects.locate(project_id)
    # Opening the task first: a manager's read, walled and audited before any content is read.
    task = services.tasks.open(actor, client_id, project_id, task_id)
    project = services.projects.get(actor, client_id, project_id)
    questions = project.schema.question_names
    return pages.render(
        request, "task.html", session=session, project=project, task=task, badges=BADGES,
        fields=field_views(project, task.payload), as_text=as_text,
        answer_values=lambda value: answer_values(questions, value or {}),
        priority_range=PRIORITY_RANGE, max_answers=MAX_ANSWERS, notice=NOTICES.get(done or ""),
    )


@router.post("/projects/{project_id}/tasks/{task_id}/priority")
def change_priority(project_id: ProjectId, task_id: TaskId, session: FormSessionDep, services: ServicesDep,
                    priority: Annotated[str, Form(max_length=20)] = "") -> Response:
    client_id, _ = services.projects.locate(project_id)
    value = _whole_number(priority, "priority")
    services.tasks.set_priority(session.actor, client_id, project_id, value, task_ids=[task_id])
    return RedirectResponse(f"/projects/{project_id}/tasks/{task_id}?done=priority_saved#priority", status_code=303)


@router.post("/projects/{project_id}/tasks/{task_id}/more-answers")
def ask_more_answers(project_id: ProjectId, task_id: TaskId, session: FormSessionDep, services: ServicesDep,
                     more: Annotated[str, Form(max_length=20)] = "") -> Response:
    client_id, _ = services.projects.locate(project_id)
    value = _whole_number(more, "more")
    services.tasks.ask_more_answers(session.actor, client_id, project_id, value, task_ids=[task_id])
    return RedirectResponse(f"/projects/{project_id}/tasks/{task_id}?done=more_answers_asked", status_code=303)


@router.post("/projects/{project_id}/tasks/{task_id}/remove")
def remove_task(project_id: ProjectId, task_id: TaskId, session: FormSessionDep, services: ServicesDep,
                confirm: Annotated[str, Form(max_length=10)] = "") -> Response:
    client_id, _ = services.projects.locate(project_id)
    if confirm != "true":
        raise InvalidInput("tick the box to confirm the removal", details={"field": "confirm"})
    services.tasks.remove(session.actor, client_id, project_id, task_ids=[task_id])
    return RedirectResponse(f"/projects/{project_id}/tasks?done=task_removed", status_code=303)
