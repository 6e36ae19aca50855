"""Request ids, one JSON log line per request, latency histograms; /readyz and /metrics."""

from __future__ import annotations

import ipaddress
import logging
import os
import re
import time
from collections.abc import Iterable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from labelvault import logs, monitoring
from labelvault.api.deps import ServicesDep
from labelvault.errors import LabelVaultError, NotAuthenticated, PermissionDenied

log = logging.getLogger("labelvault.http")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# The histogram's child per (method, route, status): labels() takes a lock and checks its values
# on every call. Bounded, as methods come from clients; past the bound labels() serves.
_CHILDREN: dict[tuple[str, str, int], Histogram] = {}
_CHILDREN_MAX = 1024


def _incoming_id(headers: Iterable[tuple[bytes, bytes]]) -> str:
    found = b""
    for name, value in headers:  # any iterable, as ASGI allows; the last one wins, as with dict()
        if name == b"x-request-id":
            found = value
    return found.decode("latin-1")


_V4_CLEAR = ~((0xC000 << 48) | (0xF000 << 64))  # the variant's and the version's bits
_V4_SET = (0x8000 << 48) | (4 << 76)


def _new_id() -> str:
    """``uuid.uuid4().hex``, without building the UUID object (half the cost)."""
    return f"{int.from_bytes(os.urandom(16)) & _V4_CLEAR | _V4_SET:032x}"


class RequestObserver:
    """Pure ASGI middleware: cheap enough for every request of the hot path."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = _incoming_id(scope.get("headers") or [])
        rid = incoming if incoming and _SAFE_ID.match(incoming) else _new_id()
        rid_header = (b"x-request-id", rid.encode())
        token = logs.request_id.set(rid)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), rid_header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            method = scope["method"]
            route = _route_template(scope)
            key = (method, route, status)
            child = _CHILDREN.get(key)
            if child is None:
                child = monitoring.REQUEST_SECONDS.labels(method, route, str(status))
                if len(_CHILDREN) < _CHILDREN_MAX:
                    _CHILDREN[key] = child
            child.observe(elapsed)
            level = logging.ERROR if status >= 500 else logging.INFO
            if log.isEnabledFor(level):
                # What log.log() does, less the walk up the stack: the caller is always this method.
                fields = {"method": method, "route": route, "status": status, "duration_ms": round(elapsed * 1000, 2)}
                log.handle(log.makeRecord(log.name, level, __file__, 0, "request", (), None, "__call__", fields))
            logs.request_id.reset(token)


def _route_template(scope: Scope) -> str:
    """The matched route's path template with its routers' prefixes (``/api/projects/{project_id}``)."""
    # FastAPI keeps included routers lazily and records the full template of the matched route here;
    # plain Starlette routes only have ``route``.
    effective = (scope.get("fastapi") or {}).get("effective_route_context")
    if effective is not None and getattr(effective, "path", None):
        return str(effective.path)
    matched = scope.get("route")
    return str(matched.path) if matched is not None else "unmatched"


router = APIRouter(include_in_schema=False)


@router.get("/readyz")
def readyz(services: ServicesDep) -> JSONResponse:
    readiness = services.status.readiness()
    return JSONResponse(
        {"ready": readiness.ready, "checks": readiness.checks}, status_code=200 if readiness.ready else 503
    )


class _ProjectGauges:
    """Collected at scrape time from the database, so every worker reports the same truth."""

    def __init__(self, services: object) -> None:
        self.services = services

    def collect(self):  # type: ignore[no-untyped-def]
        depth = GaugeMetricFamily(
            "labelvault_queue_open_slots", "Answers still wanted per project", labels=["project_id"]
        )
        leases = GaugeMetricFamily("labelvault_open_leases", "Open leases per project", labels=["project_id"])
        answers = GaugeMetricFamily("labelvault_project_answers", "Answers stored per project", labels=["project_id"])
        for row in self.services.status.project_gauges():  # type: ignore[attr-defined]
            depth.add_metric([str(row.project_id)], row.open_slots)
            leases.add_metric([str(row.project_id)], row.open_leases)
            answers.add_metric([str(row.project_id)], row.answers)
        yield from (depth, leases, answers)


def _metrics_allowed(request: Request, services: ServicesDep) -> None:
    allowed = [a.strip() for a in services.settings.metrics_allowed_addresses.split(",") if a.strip()]
    client = request.client.host if request.client else ""
    try:
        address = ipaddress.ip_address(client)
        if any(address in ipaddress.ip_network(a, strict=False) for a in allowed):
            return
    except ValueError:
        pass
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token:
        actor = services.accounts.actor_for_token(token.strip())
        if actor.is_operator:
            return
        raise PermissionDenied("metrics are for operators")
    raise NotAuthenticated("metrics: not an allowed address; send an operator token")


@router.get("/metrics")
def metrics(request: Request, services: ServicesDep) -> Response:
    try:
        _metrics_allowed(request, services)
    except LabelVaultError as refused:
        return JSONResponse({"error": refused.to_dict()}, status_code=refused.http_status)
    from prometheus_client import CollectorRegistry

    scrape = CollectorRegistry()
    scrape.register(_ProjectGauges(services))
    body = generate_latest(monitoring.registry) + generate_latest(scrape)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
