"""Single sign-on pages: off to the OpenID provider, and back with a new session.

``GET /login/sso`` records a pending login and sends the browser to the provider, with the
login's state also in a short-lived cookie (``HttpOnly``, ``SameSite=Lax``, path ``/login/sso``):
the callback is only accepted in the browser that started it, so nobody can log a victim into
their own account by sending them a callback link. ``GET /login/sso/callback`` finishes the login
(``SsoService.complete``) and starts a session like the password login does; a refusal is shown
on the login page with its reason.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from labelvault.errors import NotAuthenticated
from labelvault.web.render import Pages, PagesDep
from labelvault.web.routes.auth import safe_next
from labelvault.web.security import is_https
from labelvault.web.sessions import ServicesDep, login_csrf, set_login_csrf_cookie, set_session_cookie
from labelvault.workflow.web_sessions import SESSION_COOKIE

router = APIRouter()

STATE_COOKIE = "lv_sso_state"
STATE_COOKIE_PATH = "/login/sso"


def refused_page(request: Request, pages: Pages, refused: NotAuthenticated) -> Response:
    """The login page again, saying why single sign-on did not work."""
    token = login_csrf(request)
    response = pages.render(request, "login.html", status_code=401, login_token=token, next="/",
                            error=f"Single sign-on failed: {refused.message}.", username="")
    set_login_csrf_cookie(response, request, token)
    return response


@router.get("/login/sso")
async def start(request: Request, pages: PagesDep, services: ServicesDep,
                next: Annotated[str | None, Query()] = None) -> Response:
    try:
        started = await run_in_threadpool(services.sso.begin, safe_next(next))
    except NotAuthenticated as refused:  # the provider cannot be reached, or its discovery is wrong
        return refused_page(request, pages, refused)
    response = RedirectResponse(started.authorization_url, status_code=303)
    response.set_cookie(STATE_COOKIE, started.state, max_age=600, path=STATE_COOKIE_PATH, httponly=True,
                        samesite="lax", secure=is_https(request.scope))
    return response


@router.get("/login/sso/callback")
async def callback(request: Request, pages: PagesDep, services: ServicesDep) -> Response:
    address = request.client.host if request.client else ""
    try:
        done = await run_in_threadpool(
            services.sso.complete, dict(request.query_params), bound_state=request.cookies.get(STATE_COOKIE),
            address=address, replacing=request.cookies.get(SESSION_COOKIE),
        )
    except NotAuthenticated as refused:
        response = refused_page(request, pages, refused)
    else:
        response = RedirectResponse(safe_next(done.next_path), status_code=303)
        set_session_cookie(response, request, done.login.session_id)
    response.delete_cookie(STATE_COOKIE, path=STATE_COOKIE_PATH, httponly=True, samesite="lax",
                           secure=is_https(request.scope))
    return response
