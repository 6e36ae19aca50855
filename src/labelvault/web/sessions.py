"""The browser session on each request: the cookie, the person, and the CSRF checks.

The session itself lives in the database (``services.web_sessions``); this module only moves
its id between the cookie and the use case. The cookie is ``HttpOnly`` (scripts never see it),
``SameSite=Lax`` (other sites' forms and fetches do not carry it) and ``Secure`` when the request
came over TLS (directly or as ``X-Forwarded-Proto: https`` from a proxy).

Every form post carries the session's CSRF token in the field ``csrf_token``; ``fetch()`` calls
send it in the ``X-CSRF-Token`` header. The login form, which has no session yet, uses a
double-submit token: a random cookie that the form must repeat.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated

from fastapi import Depends, Form, Request
from starlette.responses import Response

from labelvault.bootstrap import Services
from labelvault.errors import PermissionDenied
from labelvault.web.security import is_https
from labelvault.workflow.web_sessions import (
    CSRF_HEADER,
    MAX_AGE,
    SESSION_COOKIE,
    WebSessionInfo,
)

LOGIN_CSRF_COOKIE = "lv_login_csrf"


def get_services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


ServicesDep = Annotated[Services, Depends(get_services)]


def current_session(request: Request, services: ServicesDep) -> WebSessionInfo:
    """The logged-in person; ``NotAuthenticated`` (a redirect to the login page) otherwise."""
    return services.web_sessions.lookup(request.cookies.get(SESSION_COOKIE, ""))


SessionDep = Annotated[WebSessionInfo, Depends(current_session)]


def form_session(session: SessionDep, csrf_token: Annotated[str, Form()] = "") -> WebSessionInfo:
    """The session of a form post whose CSRF token matches."""
    _check(session, csrf_token)
    return session


FormSessionDep = Annotated[WebSessionInfo, Depends(form_session)]


def fetch_session(request: Request, session: SessionDep) -> WebSessionInfo:
    """The session of a ``fetch()`` POST whose ``X-CSRF-Token`` header matches."""
    _check(session, request.headers.get(CSRF_HEADER, ""))
    return session


FetchSessionDep = Annotated[WebSessionInfo, Depends(fetch_session)]


def _check(session: WebSessionInfo, token: str) -> None:
    if not token or not hmac.compare_digest(token.encode(), session.csrf_token.encode()):
        raise PermissionDenied("the form is out of date or did not come from this site; reload and try again",
                               code="csrf_failed")


def set_session_cookie(response: Response, request: Request, session_id: str) -> None:
    response.set_cookie(
        SESSION_COOKIE, session_id, max_age=int(MAX_AGE.total_seconds()), path="/",
        httponly=True, samesite="lax", secure=is_https(request.scope),
    )


def clear_session_cookie(response: Response, request: Request) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=is_https(request.scope))


def login_csrf(request: Request) -> str:
    """The login form's double-submit token: the cookie's, or a new one."""
    token = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    return token if 20 <= len(token) <= 100 else secrets.token_urlsafe(32)


def set_login_csrf_cookie(response: Response, request: Request, token: str) -> None:
    response.set_cookie(LOGIN_CSRF_COOKIE, token, max_age=3600, path="/login", httponly=True, samesite="strict",
                        secure=is_https(request.scope))


def check_login_csrf(request: Request, token: str) -> None:
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not cookie or not token or not hmac.compare_digest(cookie.encode(), token.encode()):
        raise PermissionDenied("the login form is out of date; reload the page and try again", code="csrf_failed")
