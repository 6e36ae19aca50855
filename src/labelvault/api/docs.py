"""The API docs page (Swagger UI) served from files shipped with the package: no CDN, no
inline script (promise 5: nothing leaves the building, not even a browser fetching a script)."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

ASSETS = "/api/docs/assets"
_PAGE = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>LabelVault API</title>
<link rel="stylesheet" href="{ASSETS}/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="{ASSETS}/swagger-ui-bundle.js"></script><script src="/api/docs/init.js"></script></body></html>"""
_INIT = 'window.ui = SwaggerUIBundle({url: "/api/openapi.json", dom_id: "#swagger-ui", deepLinking: true});\n'
_CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'")

router = APIRouter(include_in_schema=False)


@router.get("/api/docs", response_class=HTMLResponse)
def docs_page() -> HTMLResponse:
    return HTMLResponse(_PAGE, headers={"Content-Security-Policy": _CSP})


@router.get("/api/docs/init.js")
def docs_init() -> Response:
    return Response(_INIT, media_type="text/javascript")


def install_docs(app: FastAPI) -> None:
    app.mount(ASSETS, StaticFiles(directory=swagger_ui_path), name="api-docs-assets")
    app.include_router(router)
