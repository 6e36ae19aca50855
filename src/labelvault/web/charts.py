"""Small SVG charts drawn on the server: readable without JavaScript, styled by the stylesheet.

    bar_chart([("11-24", 3), ("11-25", 12)], title="Answers per day")
    line_chart(["11-24", "11-25"], [Series("spent", [120, 480])], title="Spend", reference=("budget", 1000))

Every text that goes into the markup is escaped here; the result is ``Markup``. Colours come
from CSS classes (``chart-bar``, ``chart-line-0`` ...), so the charts follow the page's theme and
need no ``style`` attribute (which the Content-Security-Policy would refuse). Bars carry their
value in ``data-value`` and every point a ``<title>`` (a tooltip, and text for screen readers).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

Format = Callable[[float], str]

WIDTH = 640
HEIGHT = 220
LEFT, RIGHT, TOP, BOTTOM = 58, 14, 22, 30
TICKS = 4
MAX_X_LABELS = 8


def _plain(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def axis_top(value: float, min_step: float = 1.0) -> float:
    """The top of an axis of :data:`TICKS` equal steps, each a round number (1, 2, 2.5 or 5 x 10^k,
    at least ``min_step``), so every tick is round: 2 -> 4 (ticks 1, 2, 3, 4), 37 -> 40."""
    needed = max(value / TICKS, min_step)
    power = 10 ** math.floor(math.log10(needed))
    for step in (1, 2, 2.5, 5, 10):
        if needed <= step * power * (1 + 1e-9):
            return step * power * TICKS
    return 10 * power * TICKS


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    values: Sequence[float]


class _Canvas:
    def __init__(self, title: str, width: int) -> None:
        self.title = title
        self.width = width
        self.plot_w = width - LEFT - RIGHT
        self.plot_h = HEIGHT - TOP - BOTTOM
        self.body: list[str] = []

    def y(self, value: float, top: float) -> float:
        return TOP + self.plot_h - self.plot_h * value / top

    def axis(self, top: float, fmt: Format) -> None:
        for i in range(TICKS + 1):
            value = top * i / TICKS
            y = self.y(value, top)
            self.body.append(f'<line class="chart-grid" x1="{LEFT}" x2="{self.width - RIGHT}" '
                             f'y1="{y:.1f}" y2="{y:.1f}"/>')
            self.body.append(f'<text class="chart-tick" x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">'
                             f"{escape(fmt(value))}</text>")
        base = TOP + self.plot_h
        self.body.append(f'<line class="chart-axis" x1="{LEFT}" x2="{self.width - RIGHT}" y1="{base}" y2="{base}"/>')

    def x_labels(self, labels: Sequence[str], xs: Sequence[float]) -> None:
        every = max(1, math.ceil(len(labels) / MAX_X_LABELS))
        last = len(labels) - 1
        for i, (label, x) in enumerate(zip(labels, xs, strict=True)):
            if (last - i) % every == 0:  # counted from the newest, which is always labelled
                self.body.append(f'<text class="chart-tick" x="{x:.1f}" y="{HEIGHT - BOTTOM + 18}" '
                                 f'text-anchor="middle">{escape(label)}</text>')

    def empty(self) -> Markup:
        self.body.append(f'<text class="chart-empty" x="{self.width / 2}" y="{HEIGHT / 2}" '
                         'text-anchor="middle">nothing yet</text>')
        return self.svg()

    def svg(self, legend: Sequence[str] = ()) -> Markup:
        label = escape(self.title)
        head = (f'<svg class="chart" viewBox="0 0 {self.width} {HEIGHT}" role="img" aria-label="{label}" '
                f'xmlns="http://www.w3.org/2000/svg"><title>{label}</title>')
        return Markup(head + "".join([*self.body, *legend]) + "</svg>")  # all text in it was escaped


def bar_chart(bars: Sequence[tuple[str, float]], *, title: str, fmt: Format = _plain, min_step: float = 1.0,
              width: int = WIDTH) -> Markup:
    """Vertical bars, one per (label, value), on an axis from zero."""
    canvas = _Canvas(title, width)
    if not bars:
        return canvas.empty()
    top = axis_top(max(value for _, value in bars), min_step)
    canvas.axis(top, fmt)
    slot = canvas.plot_w / len(bars)
    bar_w = max(2.0, slot * 0.68)
    centers = []
    for i, (label, value) in enumerate(bars):
        x = LEFT + slot * i + (slot - bar_w) / 2
        y = canvas.y(value, top)
        centers.append(x + bar_w / 2)
        tip = escape(f"{label}: {fmt(value)}")
        canvas.body.append(
            f'<rect class="chart-bar" x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" '
            f'height="{TOP + canvas.plot_h - y:.1f}" '
            f'rx="2" data-value="{escape(str(value))}"><title>{tip}</title></rect>'
        )
        if value and len(bars) <= 31:
            canvas.body.append(f'<text class="chart-value" x="{x + bar_w / 2:.1f}" y="{y - 4:.1f}" '
                               f'text-anchor="middle">{escape(fmt(value))}</text>')
    canvas.x_labels([label for label, _ in bars], centers)
    return canvas.svg()


def line_chart(
    x_labels: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    fmt: Format = _plain,
    reference: tuple[str, float] | None = None,
    min_step: float = 1.0,
    width: int = WIDTH,
) -> Markup:
    """Lines over shared x labels; ``reference`` draws a dashed horizontal line (a budget)."""
    canvas = _Canvas(title, width)
    values = [v for s in series for v in s.values]
    if not x_labels or not values:
        return canvas.empty()
    top = axis_top(max([*values, reference[1] if reference else 0]), min_step)
    canvas.axis(top, fmt)
    step = canvas.plot_w / max(1, len(x_labels) - 1)
    xs = [LEFT + step * i if len(x_labels) > 1 else LEFT + canvas.plot_w / 2 for i in range(len(x_labels))]
    if reference is not None:
        name, level = reference
        y = canvas.y(level, top)
        canvas.body.append(f'<line class="chart-reference" x1="{LEFT}" x2="{width - RIGHT}" '
                           f'y1="{y:.1f}" y2="{y:.1f}"/>')
        canvas.body.append(f'<text class="chart-reference-label" x="{width - RIGHT - 4}" y="{y - 5:.1f}" '
                           f'text-anchor="end">{escape(f"{name} {fmt(level)}")}</text>')
    legend = []
    for index, s in enumerate(series):
        css = f"chart-line-{index % 4}"
        points = [(xs[i], canvas.y(v, top)) for i, v in enumerate(s.values[: len(xs)])]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        canvas.body.append(f'<polyline class="chart-line {css}" points="{path}"/>')
        radius = 3 if len(points) <= 16 else 2
        for (x, y), label, value in zip(points, x_labels, s.values, strict=False):
            tip = escape(f"{s.name} {label}: {fmt(value)}")
            canvas.body.append(f'<circle class="chart-dot {css}" cx="{x:.1f}" cy="{y:.1f}" r="{radius}" '
                               f'data-value="{escape(str(value))}"><title>{tip}</title></circle>')
        lx = LEFT + 8 + index * 150
        legend.append(f'<rect class="chart-key {css}" x="{lx}" y="4" width="10" height="10" rx="2"/>'
                      f'<text class="chart-legend" x="{lx + 14}" y="13">{escape(s.name)}</text>')
    canvas.x_labels(x_labels, xs)
    return canvas.svg(legend)
