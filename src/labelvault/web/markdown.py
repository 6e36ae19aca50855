"""Markdown to safe HTML: markdown-it (raw HTML off) and then nh3 (Ammonia) on the server.

Task fields of kind ``markdown`` and a schema's ``instructions`` are client text. They are
rendered with raw HTML disabled, and the result is sanitised again with an allow-list, so no
script, event handler, style or foreign URL scheme survives, whatever the text holds.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

import nh3
from markupsafe import Markup

if TYPE_CHECKING:
    from markdown_it import MarkdownIt

ALLOWED_TAGS = {
    "p", "br", "hr", "em", "strong", "code", "pre", "blockquote", "ul", "ol", "li",
    "h1", "h2", "h3", "h4", "h5", "h6", "a", "img", "table", "thead", "tbody", "tr", "th", "td", "del",
}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "title"}, "ol": {"start"}}
MAX_MARKDOWN = 200_000  # characters rendered; longer text is cut (the page shows the rest as text)


@cache
def _parser() -> MarkdownIt:
    """Built at the first page that renders Markdown: importing markdown-it compiles its HTML
    patterns, a tenth of a second at every server start otherwise."""
    from markdown_it import MarkdownIt

    options = {"html": False, "linkify": False, "typographer": False, "breaks": True}
    return MarkdownIt("commonmark", options).enable("table")


def render_markdown(text: str) -> Markup:
    """Sanitised HTML for ``text``; safe to put into a page as it is."""
    html = _parser().render(text[:MAX_MARKDOWN])
    clean = nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )
    return Markup(clean)
