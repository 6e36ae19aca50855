"""Errors become HTML pages on the web, as they become JSON on the API: one translation each.

The API's handlers stay in charge of ``/api`` and of ``fetch()`` calls that ask for JSON; every
other request gets a page with the error's message and status. A missing or ended session on a
page is a redirect to the login page, which comes back afterwards.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from labelvault.errors import LabelVaultError, NotAuthenticated
from labelvault.web.render import Pages
from labelvault.workflow.web_sessions import SESSION_COOKIE, WebSessionInfo

TITLES = {
    400: "That did not work",
    401: "Please log in",
    403: "Not allowed",
    404: "Not found",
    405: "Not allowed",
    409: "Conflict",
    413: "Too large",
    429: "Too many attempts",
}


def wants_json(request: Request) -> bool:
    path = request.url.path
    if path.startswith("/api/") or path == "/healthz":
        return True
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path
    if request.method == "GET" and request.url.query:
        target += "?" + request.url.query
    if request.method != "GET" or target.startswith("/login"):
        target = "/"
    return RedirectResponse(f"/login?next={quote(target, safe='/')}", status_code=303)


def _session_of(request: Request) -> WebSessionInfo | None:
    """The session, if any, so an error page still shows who is logged in."""
    session_id = request.cookies.get(SESSION_COOKIE)
    if not session_id:
        return None
    try:
        return request.app.state.services.web_sessions.lookup(session_id)  # type: ignore[no-any-return]
    except LabelVaultError:
        return None


def install_error_pages(app: FastAPI, pages: Pages) -> None:
    api_error = app.exception_handlers[LabelVaultError]
    api_validation = app.exception_handlers[RequestValidationError]
    api_http = app.exception_handlers[StarletteHTTPException]

    async def page(request: Request, status: int, code: str, message: str) -> Response:
        session = await run_in_threadpool(_session_of, request)
        return pages.render(request, "error.html", session=session, status_code=status,
                            title=TITLES.get(status, "Something went wrong"), status=status, code=code, message=message)

    async def domain_error(request: Request, exc: Exception) -> Response:
        if wants_json(request):
            return await api_error(request, exc)  # type: ignore[no-any-return]
        assert isinstance(exc, LabelVaultError)
        if isinstance(exc, NotAuthenticated):
            return login_redirect(request)
        return await page(request, exc.http_status, exc.code, exc.message)

    async def validation_error(request: Request, exc: Exception) -> Response:
        if wants_json(request):
            return await api_validation(request, exc)  # type: ignore[no-any-return]
        assert isinstance(exc, RequestValidationError)
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'] if p not in ('body', 'query', 'path'))}: {e['msg']}"
            for e in exc.errors()
        )
        return await page(request, 400, "invalid_input", problems or "the request is not valid")

    async def http_error(request: Request, exc: Exception) -> Response:
        if wants_json(request):
            return await api_http(request, exc)  # type: ignore[no-any-return]
        assert isinstance(exc, StarletteHTTPException)
        message = "there is no page at this address" if exc.status_code == 404 else str(exc.detail)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return await page(request, exc.status_code, code, message)

    app.add_exception_handler(LabelVaultError, domain_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
