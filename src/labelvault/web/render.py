"""Jinja2 pages: one environment, autoescaped, with the filters the pages share."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from labelvault.web.markdown import render_markdown
from labelvault.workflow.reports import major_units
from labelvault.workflow.web_sessions import CSRF_FIELD, ClientRoles, WebSessionInfo

CURRENCY_SIGNS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥"}


def money(amount: int | None, currency: str = "USD") -> str:
    """Minor units as people read them: 12345 USD -> "$123.45", 500 CHF -> "5.00 CHF"."""
    if amount is None:
        return "—"
    text = major_units(int(amount), currency)
    sign = CURRENCY_SIGNS.get(currency)
    if sign is None:
        return f"{text} {currency}"
    return f"-{sign}{text[1:]}" if text.startswith("-") else f"{sign}{text}"


def when(value: datetime | str | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def duration(ms: int | float | None) -> str:
    if ms is None:
        return "—"
    seconds = round(ms / 1000)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class Pages:
    def __init__(self) -> None:
        self.env = Environment(
            loader=PackageLoader("labelvault.web", "templates"),
            autoescape=select_autoescape(default=True, default_for_string=True),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters.update(money=money, when=when, duration=duration, markdown=render_markdown)
        self.env.globals.update(csrf_field=CSRF_FIELD)

    def render(
        self,
        request: Request,
        template: str,
        *,
        session: WebSessionInfo | None = None,
        nav: list[ClientRoles] | None = None,
        status_code: int = 200,
        **context: Any,
    ) -> HTMLResponse:
        html = self.env.get_template(template).render(
            request=request,
            path=request.url.path,
            user=session.actor if session else None,
            csrf=session.csrf_token if session else "",
            nav=nav or [],
            **context,
        )
        return HTMLResponse(html, status_code=status_code)


def get_pages(request: Request) -> Pages:
    return request.app.state.pages  # type: ignore[no-any-return]


PagesDep = Annotated[Pages, Depends(get_pages)]
