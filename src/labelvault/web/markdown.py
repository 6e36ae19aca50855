"""Markdown to safe HTML: markdown-it (raw HTML off) and then nh3 (Ammonia) on the server.

Task fields of kind ``markdown`` and a schema's ``instructions`` are client text. They are
rendered with raw HTML disabled, and the result is sanitised again with an allow-list, so no
script, event handler, style or foreign URL scheme survives, whatever the text holds.
"""

from __future__ import annotations

import nh3
from markdown_it import MarkdownIt
from markupsafe import Markup

_md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False, "breaks": True}).enable("table")

ALLOWED_TAGS = {
    "p", "br", "hr", "em", "strong", "code", "pre", "blockquote", "ul", "ol", "li",
    "h1", "h2", "h3", "h4", "h5", "h6", "a", "img", "table", "thead", "tbody", "tr", "th", "td", "del",
}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "img": {"src", "alt", "title"}, "ol": {"start"}}
MAX_MARKDOWN = 200_000  # characters rendered; longer text is cut (the page shows the rest as text)


def render_markdown(text: str) -> Markup:
    """Sanitised HTML for ``text``; safe to put into a page as it is."""
    html = _md.render(text[:MAX_MARKDOWN])
    clean = nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )
    return Markup(clean)
