"""The queue's two hot routes (next, submit), dispatched before FastAPI's router.

Next and submit are nearly every request a busy server gets. FastAPI's router finds a route by
walking its included routers with Python-level matching on every request, and its request
handler adds dependency resolution and an exit stack: on the machine of docs/benchmarks.md that
was more CPU than the use case itself. This middleware, the innermost of ours, matches the two
paths with one regular expression each and calls the very same endpoint functions
(``routes/labeling.py``), then turns errors into responses with the application's own exception
handlers. So the checks, the answers and the error bodies are the ones of the regular path, and
everything outside it (request id, log line, metrics, body size limit) still applies; anything
that does not match exactly (another method, an id that is not a positive number) goes on to
FastAPI, which answers as it always did. The OpenAPI document still describes both routes.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from labelvault.api.routes import labeling
from labelvault.errors import LabelVaultError


@dataclass(frozen=True, slots=True)
class _RouteTemplate:
    """What the request observer reads from ``scope["route"]`` for its metrics and log line."""

    path: str


_NEXT = re.compile(r"/api/projects/([1-9][0-9]{0,17})/tasks/next")
_SUBMIT = re.compile(r"/api/projects/([1-9][0-9]{0,17})/tasks/([1-9][0-9]{0,17})/answers")
_NEXT_ROUTE = _RouteTemplate("/api/projects/{project_id}/tasks/next")
_SUBMIT_ROUTE = _RouteTemplate("/api/projects/{project_id}/tasks/{task_id}/answers")


class QueueGateway:
    def __init__(self, app: ASGIApp, application: FastAPI) -> None:
        self.app = app
        self.application = application

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path: str = scope["path"]
            if (match := _NEXT.fullmatch(path)) is not None:
                scope["route"] = _NEXT_ROUTE
                request = Request(scope, receive)
                await self._respond(request, send, lambda: labeling.next_task(int(match[1]), request))
                return
            if (match := _SUBMIT.fullmatch(path)) is not None:
                scope["route"] = _SUBMIT_ROUTE
                request = Request(scope, receive)
                await self._respond(
                    request, send, lambda: labeling.submit_answer(int(match[1]), int(match[2]), request)
                )
                return
        await self.app(scope, receive, send)

    async def _respond(self, request: Request, send: Send, endpoint: Callable[[], Awaitable[Response]]) -> None:
        try:
            response = await endpoint()
        except (LabelVaultError, RequestValidationError) as refused:
            # The handlers registered by api/errors.py: the same bodies as every other route.
            kind = RequestValidationError if isinstance(refused, RequestValidationError) else LabelVaultError
            response = await self.application.exception_handlers[kind](request, refused)  # type: ignore[misc]
        await response(request.scope, request.receive, send)
