"""Put the pages on the application: static files, page routes, error pages, security headers."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from labelvault.bootstrap import Services
from labelvault.web.errors import install_error_pages
from labelvault.web.render import Pages
from labelvault.web.routes import auth, clients, earnings, home, labeling, manage, operator, sso, tasks
from labelvault.web.security import SecurityHeaders


def install_web(app: FastAPI, services: Services) -> None:
    """Add the web pages to ``app`` (built by the API's ``create_app`` on the same services)."""
    app.state.services = services
    pages = Pages()
    app.state.pages = pages
    app.mount("/static", StaticFiles(packages=[("labelvault.web", "static")]), name="static")
    pages.env.globals.update(sso=services.sso.login_options)  # the login page's sign-in choices
    for module in (auth, sso, home, labeling, manage, tasks, clients, earnings, operator):
        app.include_router(module.router, include_in_schema=False)
    install_error_pages(app, pages)
    app.add_middleware(SecurityHeaders)
