"""Run the HTTP server (uvicorn) on the app built by the bootstrap."""

from __future__ import annotations

import uvicorn
from fastapi import FastAPI

from labelvault.api.app import create_app
from labelvault.bootstrap import build_services
from labelvault.settings import Settings


def app_from_environment() -> FastAPI:
    """App factory for worker processes: each builds its own services from LABELVAULT_* settings.

    Workers share nothing in memory: leases, sessions, login failures and the audit head are in
    the database, so any number of processes (on any number of machines) can serve one install.
    """
    return create_app(build_services(Settings()))


def run(settings: Settings, *, host: str, port: int, workers: int = 1) -> None:
    if workers > 1:
        uvicorn.run("labelvault.server:app_from_environment", factory=True, host=host, port=port,
                    workers=workers, log_level="warning", access_log=False)
        return
    services = build_services(settings)
    app = create_app(services)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    finally:
        services.close()
