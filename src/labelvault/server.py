"""Run the HTTP server (uvicorn) on the app built by the bootstrap."""

from __future__ import annotations

import uvicorn
from fastapi import FastAPI

from labelvault import logs
from labelvault.api.app import create_app
from labelvault.bootstrap import Services, build_services
from labelvault.settings import Settings
from labelvault.web import install_web


def build_app(services: Services) -> FastAPI:
    """The API (``/api``) and the web pages (everything else) on one application.

    The interfaces may not import each other, so they meet here, in the wiring."""
    app = create_app(services)
    install_web(app, services)
    return app


def app_from_environment() -> FastAPI:
    """App factory for worker processes: each builds its own services from LABELVAULT_* settings.

    Workers share nothing in memory: leases, sessions, login failures and the audit head are in
    the database, so any number of processes (on any number of machines) can serve one install.
    """
    settings = Settings()
    logs.configure(settings.log_level)
    return build_app(build_services(settings))


def run(settings: Settings, *, host: str, port: int, workers: int = 1) -> None:
    if workers > 1:
        uvicorn.run("labelvault.server:app_from_environment", factory=True, host=host, port=port,
                    workers=workers, log_config=None, access_log=False)
        return
    logs.configure(settings.log_level)
    services = build_services(settings)
    app = build_app(services)
    try:
        uvicorn.run(app, host=host, port=port, log_config=None, access_log=False)
    finally:
        services.close()
