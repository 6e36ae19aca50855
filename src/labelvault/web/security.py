"""Security headers on every page: a Content-Security-Policy without inline scripts, and friends.

Pages load scripts, styles and images only from this server (images also from ``data:`` URLs,
which imported tasks use), connect only to this server, cannot be framed, and post forms only
here. Inline ``<script>`` and ``style`` attributes are refused by the browser, so text that slips
into a page as markup cannot run. HTML is never cached (it holds client data).
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data: blob:",
    "font-src 'self'",
    "connect-src 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
    "manifest-src 'self'",
])

PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
}


def is_https(scope: Scope) -> bool:
    """The request came over TLS, directly or through a proxy that says so."""
    if scope.get("scheme") == "https":
        return True
    for name, value in scope.get("headers", []):
        if name == b"x-forwarded-proto":
            return value.split(b",")[0].strip().lower() == b"https"
    return False


class SecurityHeaders:
    """ASGI middleware: adds the headers to every response outside ``/api`` (whose docs page
    is FastAPI's own) and ``/healthz``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path.startswith("/api/") or path == "/healthz":
            await self.app(scope, receive, send)
            return
        https = is_https(scope)
        static = path.startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in PAGE_HEADERS.items():
                    headers[name] = value
                if https:
                    headers["Strict-Transport-Security"] = "max-age=31536000"
                # Static files revalidate (ETag); pages hold client data and are never stored.
                headers["Cache-Control"] = "no-cache" if static else "no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)
