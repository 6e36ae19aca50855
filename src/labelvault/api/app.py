"""The FastAPI application factory: interfaces only parse, authenticate, call a use case, render."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI

import labelvault
from labelvault.api.docs import install_docs
from labelvault.api.errors import install_error_handlers
from labelvault.api.limits import BodySizeLimit
from labelvault.api.observability import RequestObserver
from labelvault.api.observability import router as observability_router
from labelvault.api.queue_gateway import QueueGateway
from labelvault.api.routes import (
    accounts,
    answers,
    audit,
    clients,
    files,
    io,
    label_studio,
    labeling,
    predictors,
    projects,
    quality,
    reports,
    review,
    suggestions,
    tasks,
    url_imports,
    walls,
    webhooks,
)
from labelvault.bootstrap import Services


def create_app(services: Services) -> FastAPI:
    app = FastAPI(
        title="LabelVault",
        version=labelvault.__version__,
        docs_url=None,  # our own page, with the Swagger UI files shipped in the package
        redoc_url=None,
        openapi_url="/api/openapi.json",
        # Nothing leaves (docs/security.md): no OpenTelemetry export, whatever the environment or a
        # library configures; we have our own logs and /metrics, and the per-request check is spared.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False,
                   "auto_configure": False},
    )
    app.state.services = services
    install_error_handlers(app)
    api = APIRouter(prefix="/api")
    # The queue's routes first: Starlette tries routes in order, and next/submit are most requests.
    for module in (
        labeling,
        webhooks,
        accounts,
        clients,
        projects,
        tasks,
        label_studio,
        review,
        reports,
        walls,
        audit,
        files,
        io,
        url_imports,
        quality,
        answers,
        suggestions,
        predictors,
    ):
        api.include_router(module.router)
    app.include_router(api)
    app.include_router(observability_router)
    install_docs(app)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.add_middleware(QueueGateway, application=app)  # innermost of ours: see queue_gateway.py
    app.add_middleware(BodySizeLimit, max_bytes=services.settings.max_request_bytes)
    app.add_middleware(RequestObserver)  # outermost: every response gets its request id
    return app
