"""Log in and out. A login always starts a new session (and ends the one the browser had)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from labelvault.errors import LoginThrottled, NotAuthenticated
from labelvault.web.render import PagesDep
from labelvault.web.sessions import (
    LOGIN_CSRF_COOKIE,
    FormSessionDep,
    ServicesDep,
    check_login_csrf,
    clear_session_cookie,
    login_csrf,
    set_login_csrf_cookie,
    set_session_cookie,
)
from labelvault.workflow.web_sessions import SESSION_COOKIE

router = APIRouter()


def safe_next(target: str | None) -> str:
    """Only a path on this site (never ``//host`` or ``https://...``) may follow a login."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    if any(ord(c) < 33 or ord(c) == 127 for c in target):  # browsers drop tabs and newlines: "/\t/evil"
        return "/"
    return target


@router.get("/login")
def login_page(request: Request, pages: PagesDep, services: ServicesDep,
               next: Annotated[str | None, Query()] = None) -> Response:
    if request.cookies.get(SESSION_COOKIE):
        try:
            services.web_sessions.lookup(request.cookies[SESSION_COOKIE])
            return RedirectResponse(safe_next(next), status_code=303)
        except NotAuthenticated:
            pass
    token = login_csrf(request)
    response = pages.render(request, "login.html", login_token=token, next=safe_next(next), error=None, username="")
    set_login_csrf_cookie(response, request, token)
    return response


@router.post("/login")
def login(
    request: Request,
    pages: PagesDep,
    services: ServicesDep,
    username: Annotated[str, Form(max_length=100)],
    password: Annotated[str, Form(max_length=1000)],
    login_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    check_login_csrf(request, login_token)
    address = request.client.host if request.client else ""
    try:
        started = services.web_sessions.login(username, password, address=address,
                                              replacing=request.cookies.get(SESSION_COOKIE))
    except (NotAuthenticated, LoginThrottled) as refused:
        status = 429 if isinstance(refused, LoginThrottled) else 401
        return pages.render(request, "login.html", status_code=status, login_token=login_token,
                            next=safe_next(next), error=refused.message, username=username)
    response = RedirectResponse(safe_next(next), status_code=303)
    set_session_cookie(response, request, started.session_id)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
def logout(request: Request, _session: FormSessionDep, services: ServicesDep) -> Response:
    services.web_sessions.logout(request.cookies.get(SESSION_COOKIE, ""))
    response = RedirectResponse("/login", status_code=303)
    clear_session_cookie(response, request)
    return response
