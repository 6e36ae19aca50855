"""Request dependencies: the services, the authenticated actor, pagination."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from labelvault.api.group_commit import GroupCommit, NoBatchNow
from labelvault.bootstrap import Services
from labelvault.domain.access import Actor
from labelvault.errors import LockWaitTooLong, NotAuthenticated
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
    thread (the queue's requests do this on every call); other lookups run in the thread pool."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token:
        if (actor := services.accounts.cached_actor(token.strip())) is not None:
            return actor
        if services.uow_factory.serialize_writers:
            # SQLite: a token lookup is a short read that no writer blocks (WAL); in a worker thread
            # it waited for the GIL behind the queue steps running on the loop (see run_queue_step).
            return services.accounts.actor_for_token(token.strip())
    return await run_in_threadpool(_actor_of, request, services)


ActorDep = Annotated[Actor, Depends(get_actor)]

T = TypeVar("T")


async def run_queue_step(services: Services, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run one short writing step of the labeler's loop (next, submit).

    On SQLite a process runs one write transaction at a time (its writers queue on one lock), so
    the step runs right here on the event loop: handing it to a worker thread and back cost more
    CPU than the step itself (two thread wake-ups and GIL hand-overs, about 0.8 ms a request on
    the machine of docs/benchmarks.md), and steps in threads queue on the lock in no fair order.
    Steps that arrive together share one transaction and one commit (``group_commit.py``). While
    another writer holds the database's writer lock (an import, a background thread, another
    server process), the step waits for it without blocking the loop. While a program that does
    not take that lock writes to the database, no batch can start: the step then runs in the
    thread pool, where SQLite makes it wait as long as it must.

    On PostgreSQL the step runs on the loop too, for the same reason (a thread hand-over cost a
    quarter of a request's CPU, and steps in threads took turns on the GIL at every round trip), but
    with short lock waits: a step that would wait longer than ``SHORT_LOCK_WAIT_MS`` for a row
    another transaction holds (an administrator's long transaction, say) rolls back at once and
    runs again in the thread pool, where it waits as long as it must, while the loop serves others.
    """
    factory = services.uow_factory
    if not factory.serialize_writers:
        try:
            with factory.short_lock_waits():
                return function(*args, **kwargs)
        except LockWaitTooLong:
            return await run_in_threadpool(function, *args, **kwargs)
    group = GroupCommit.of(factory)
    try:
        return await group.run(function, *args, **kwargs)
    except NoBatchNow:
        return await run_in_threadpool(function, *args, **kwargs)


class Page:
    def __init__(
        self,
        offset: Annotated[int, Query(ge=0, description="Items to skip.")] = 0,
        limit: Annotated[int, Query(ge=1, le=1000, description="Items to return (at most 1000).")] = 100,
    ) -> None:
        self.offset = offset
        self.limit = limit


PageDep = Annotated[Page, Depends(Page)]
