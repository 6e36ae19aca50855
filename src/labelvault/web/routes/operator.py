"""Operator pages: clients, conflict-of-interest classes, users and their roles."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from labelvault.domain.access import Role, UserPolicy
from labelvault.errors import InvalidInput
from labelvault.web.forms import NOTICES
from labelvault.web.render import PagesDep
from labelvault.web.sessions import FormSessionDep, ServicesDep, SessionDep

router = APIRouter(prefix="/operator")

Notice = Annotated[str | None, Query(alias="done")]


def _done(path: str, code: str) -> RedirectResponse:
    return RedirectResponse(f"/operator/{path}?done={code}", status_code=303)


@router.get("")
def operator_home() -> Response:
    return RedirectResponse("/operator/clients", status_code=303)


@router.get("/clients")
def clients_page(request: Request, session: SessionDep, services: ServicesDep, pages: PagesDep,
                 done: Notice = None) -> Response:
    UserPolicy.administer(session.actor)  # operator pages are for operators: others get 403
    clients, total = services.clients.list(session.actor, limit=1000)
    return pages.render(request, "operator.html", session=session, tab="clients", clients=clients, total=total,
                        notice=NOTICES.get(done or ""))


@router.post("/clients")
def create_client(session: FormSessionDep, services: ServicesDep,
                  slug: Annotated[str, Form(max_length=63)], name: Annotated[str, Form(max_length=200)] = "",
                  currency: Annotated[str, Form(max_length=3)] = "USD") -> Response:
    services.clients.create(session.actor, slug.strip(), name.strip(), currency=currency.strip().upper())
    return _done("clients", "client_created")


@router.get("/walls")
def walls_page(request: Request, session: SessionDep, services: ServicesDep, pages: PagesDep,
               done: Notice = None) -> Response:
    UserPolicy.administer(session.actor)
    classes = services.walls.list_classes(session.actor)
    clients, _ = services.clients.list(session.actor, limit=1000)
    return pages.render(request, "operator.html", session=session, tab="walls", classes=classes,
                        clients=clients, names={c.id: c.name for c in clients}, notice=NOTICES.get(done or ""))


@router.post("/walls")
def create_class(session: FormSessionDep, services: ServicesDep, name: Annotated[str, Form(max_length=100)],
                 description: Annotated[str, Form(max_length=500)] = "") -> Response:
    services.walls.create_class(session.actor, name.strip(), description.strip())
    return _done("walls", "class_created")


@router.post("/walls/members")
def add_to_class(session: FormSessionDep, services: ServicesDep, class_name: Annotated[str, Form()],
                 client_id: Annotated[int, Form()]) -> Response:
    services.walls.add_client(session.actor, class_name, client_id)
    return _done("walls", "client_added")


@router.post("/walls/members/remove")
def remove_from_class(session: FormSessionDep, services: ServicesDep, class_name: Annotated[str, Form()],
                      client_id: Annotated[int, Form()]) -> Response:
    services.walls.remove_client(session.actor, class_name, client_id)
    return _done("walls", "client_removed")


@router.get("/users")
def users_page(request: Request, session: SessionDep, services: ServicesDep, pages: PagesDep,
               done: Notice = None) -> Response:
    users, total = services.accounts.list_users(session.actor, limit=1000)
    roles = {u.id: services.web_sessions.memberships(session.actor, u.id) for u in users}
    clients, _ = services.clients.list(session.actor, limit=1000)
    return pages.render(request, "operator.html", session=session, tab="users", users=users, total=total,
                        roles=roles, clients=clients, role_names=[r.value for r in Role],
                        notice=NOTICES.get(done or ""))


@router.post("/users")
def create_user(session: FormSessionDep, services: ServicesDep, username: Annotated[str, Form(max_length=100)],
                password: Annotated[str, Form(max_length=1000)] = "",
                display_name: Annotated[str, Form(max_length=200)] = "",
                is_operator: Annotated[bool, Form()] = False) -> Response:
    if not password:
        raise InvalidInput("give the new user a password (at least 10 characters)", details={"field": "password"})
    services.accounts.create_user(session.actor, username, password, is_operator=is_operator,
                                  display_name=display_name.strip())
    return _done("users", "user_created")


@router.post("/users/active")
def set_user_active(session: FormSessionDep, services: ServicesDep, username: Annotated[str, Form(max_length=100)],
                    active: Annotated[bool, Form()]) -> Response:
    """Deactivate a person who leaves (every way in closes at once), or bring them back."""
    services.accounts.set_active(session.actor, username, active=active)
    return _done("users", "user_reactivated" if active else "user_deactivated")


@router.post("/roles")
def grant_role(session: FormSessionDep, services: ServicesDep, client_id: Annotated[int, Form()],
               username: Annotated[str, Form(max_length=100)], role: Annotated[str, Form()]) -> Response:
    services.accounts.grant_role(session.actor, client_id, username.strip(), role)
    return _done("users", "role_granted")


@router.post("/roles/revoke")
def revoke_role(session: FormSessionDep, services: ServicesDep, client_id: Annotated[int, Form()],
                username: Annotated[str, Form(max_length=100)], role: Annotated[str, Form()]) -> Response:
    services.accounts.revoke_role(session.actor, client_id, username, role)
    return _done("users", "role_revoked")
