"""Request dependencies: the services, the authenticated actor, pagination."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from labelvault.bootstrap import Services
from labelvault.domain.access import Actor
from labelvault.errors import NotAuthenticated
from labelvault.workflow.web_sessions import CSRF_HEADER, SESSION_COOKIE


def get_services(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]


ServicesDep = Annotated[Services, Depends(get_services)]


def _actor_of(request: Request, services: Services) -> Actor:
    header = request.headers.get("authorization", "")
    if not header and SESSION_COOKIE in request.cookies:
        # The web pages call the API with their session cookie; unsafe methods need its CSRF token.
        session = services.web_sessions.lookup(request.cookies[SESSION_COOKIE])
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            services.web_sessions.check_csrf(session, request.headers.get(CSRF_HEADER))
        return session.actor
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise NotAuthenticated("send an API token as 'Authorization: Bearer lv_...'")
    return services.accounts.actor_for_token(token.strip())


async def get_actor(request: Request, services: ServicesDep) -> Actor:
    """The caller. Async, so that a token already in the short-lived cache costs no hop to a worker
    thread (the queue's requests do this on every call); a database lookup runs in the thread pool."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and (actor := services.accounts.cached_actor(token.strip())) is not None:
        return actor
    return await run_in_threadpool(_actor_of, request, services)


ActorDep = Annotated[Actor, Depends(get_actor)]


class Page:
    def __init__(
        self,
        offset: Annotated[int, Query(ge=0, description="Items to skip.")] = 0,
        limit: Annotated[int, Query(ge=1, le=1000, description="Items to return (at most 1000).")] = 100,
    ) -> None:
        self.offset = offset
        self.limit = limit


PageDep = Annotated[Page, Depends(Page)]
