"""Log in and out. A login always starts a new session (and ends the one the browser had)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from labelvault.bootstrap import Services
from labelvault.errors import InvalidInput, LoginThrottled, NotAuthenticated
from labelvault.web.forms import NOTICES
from labelvault.web.render import Pages, PagesDep
from labelvault.web.sessions import (
    LOGIN_CSRF_COOKIE,
    FormSessionDep,
    ServicesDep,
    SessionDep,
    check_login_csrf,
    clear_session_cookie,
    login_csrf,
    set_login_csrf_cookie,
    set_session_cookie,
)
from labelvault.workflow.web_sessions import SESSION_COOKIE, WebSessionInfo

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


@router.get("/account")
def account_page(request: Request, session: SessionDep, services: ServicesDep, pages: PagesDep,
                 done: Annotated[str | None, Query()] = None) -> Response:
    return _account(request, session, services, pages, notice=NOTICES.get(done or ""))


@router.post("/account/password")
def change_password(
    request: Request,
    session: FormSessionDep,
    services: ServicesDep,
    pages: PagesDep,
    current_password: Annotated[str, Form(max_length=1000)],
    new_password: Annotated[str, Form(max_length=1000)],
    confirm_password: Annotated[str, Form(max_length=1000)],
) -> Response:
    """The person's own password; their other sessions end, this one goes on."""
    address = request.client.host if request.client else ""
    try:
        if new_password != confirm_password:
            raise InvalidInput("the two new passwords differ", details={"field": "confirm_password"})
        services.accounts.change_password(session.actor, current_password, new_password, address=address,
                                          keep_session=request.cookies.get(SESSION_COOKIE))
    except (NotAuthenticated, LoginThrottled, InvalidInput) as refused:
        status = {NotAuthenticated: 401, LoginThrottled: 429}.get(type(refused), 400)
        return _account(request, session, services, pages, error=refused.message, status_code=status)
    return RedirectResponse("/account?done=password_changed", status_code=303)


def _account(request: Request, session: WebSessionInfo, services: Services, pages: Pages, *,
             notice: str | None = None, error: str | None = None, status_code: int = 200) -> Response:
    settings = services.settings
    # Only a person with a password may change it: on an install with both ways in, people created
    # by single sign-on have none.
    has_password = services.accounts.get_user(session.actor, session.actor.user_id).has_password
    return pages.render(request, "account.html", session=session, status_code=status_code, notice=notice,
                        error=error, passwords=settings.password_login and has_password,
                        provider=settings.sso_provider_name)
