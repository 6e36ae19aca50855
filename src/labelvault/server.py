"""Run the HTTP server (uvicorn) on the app built by the bootstrap."""

from __future__ import annotations

import uvicorn

from labelvault.api.app import create_app
from labelvault.bootstrap import build_services
from labelvault.settings import Settings


def run(settings: Settings, *, host: str, port: int) -> None:
    services = build_services(settings)
    app = create_app(services)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
    finally:
        services.close()
