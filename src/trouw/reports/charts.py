"""Inline SVG charts, drawn in Python: no script, no network, readable by screen readers.

Each chart is an <svg role="img"> with a <title> and <desc> it is labelled
by, axis labels, and a <title> on every bar and point (the browser shows it
on hover). Sizes are in viewBox units; the page's CSS scales the SVG to its
column.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from trouw.reports.formatting import percent

WIDTH = 720
NARROW = 360  # the same chart for a phone: its text stays legible when scaled to the screen
HEIGHT = 300
LEFT, RIGHT, TOP, BOTTOM = 64, 24, 28, 56
AXIS = "#555"
GRID = "#e5e5e5"
CAP = "#c0392b"
PALETTE = ("#2f6db5", "#e08a1e", "#3a9b5c", "#8e44ad", "#c0392b", "#16a5a5", "#7f8c8d")

Format = Callable[[float], str]


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]
    color: str


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def nice_ticks(low: float, high: float, count: int = 5, *, whole: bool = False) -> list[float]:
    """Round tick values (1, 2 or 5 times a power of ten) covering low … high.

    `whole`: counts of things (mails) get no ticks between whole numbers.
    """
    if high <= low:
        high = low + 1
    raw = (high - low) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    if whole:
        step = max(step, 1)
    first = math.floor(low / step)
    last = math.ceil(high / step)  # the top tick is at or above the highest value
    return [round(index * step, 10) for index in range(first, last + 1)]


def _open(ident: str, title: str, description: str, height: int, width: int = WIDTH) -> list[str]:
    kind = "chart narrow" if width < WIDTH else "chart"
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="{kind}" role="img" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'aria-labelledby="{ident}-title {ident}-desc">',
        f'<title id="{ident}-title">{escape(title)}</title>',
        f'<desc id="{ident}-desc">{escape(description)}</desc>',
    ]


def _text(x: float, y: float, content: str, **attributes: str) -> str:
    # class_ stands for class; text_anchor for text-anchor.
    extra = "".join(
        f' {name.rstrip("_").replace("_", "-")}="{value}"' for name, value in attributes.items()
    )
    return f'<text x="{x:.1f}" y="{y:.1f}"{extra}>{escape(content)}</text>'


class _Frame:
    """The plot area of a chart with a value axis on the left and categories along the bottom."""

    def __init__(
        self, ticks: list[float], height: int, count: int, width: int = WIDTH, top: int = TOP
    ) -> None:
        self.low, self.high = ticks[0], ticks[-1]
        self.ticks = ticks
        self.height = height
        self.width = width
        self.top = top
        self.bottom = height - BOTTOM
        self.count = max(count, 1)
        self.slot = (width - LEFT - RIGHT) / self.count

    def y(self, value: float) -> float:
        share = (value - self.low) / (self.high - self.low)
        return self.bottom - share * (self.bottom - self.top)

    def x(self, index: int) -> float:
        """The middle of category `index`."""
        return LEFT + (index + 0.5) * self.slot

    def axes(
        self, labels: Sequence[str], x_label: str, y_label: str, tick_format: Format
    ) -> list[str]:
        parts = []
        right = self.width - RIGHT
        for tick in self.ticks:
            y = self.y(tick)
            parts.append(
                f'<line x1="{LEFT}" x2="{right}" y1="{y:.1f}" y2="{y:.1f}" stroke="{GRID}"/>'
            )
            parts.append(_text(LEFT - 6, y + 4, tick_format(tick), text_anchor="end"))
        parts.append(
            f'<line x1="{LEFT}" x2="{right}" y1="{self.bottom}" y2="{self.bottom}" '
            f'stroke="{AXIS}"/>'
        )
        parts.append(
            f'<line x1="{LEFT}" x2="{LEFT}" y1="{self.top}" y2="{self.bottom}" stroke="{AXIS}"/>'
        )
        fit = 12 if self.width >= WIDTH else 6  # at most a dozen labels fit, half on a phone
        every = max(1, math.ceil(len(labels) / fit))
        for index, label in enumerate(labels):
            if index % every == 0:
                parts.append(_text(self.x(index), self.bottom + 16, label, text_anchor="middle"))
        parts.append(
            _text((LEFT + right) / 2, self.height - 12, x_label, text_anchor="middle",
                  class_="axis-label")
        )  # fmt: skip
        middle = (self.top + self.bottom) / 2
        parts.append(
            f'<text x="16" y="{middle:.1f}" text-anchor="middle" class="axis-label" '
            f'transform="rotate(-90 16 {middle:.1f})">{escape(y_label)}</text>'
        )
        return parts


LEGEND_LINE = 18


def _legend(series: Sequence[Series], width: int = WIDTH) -> tuple[list[str], int]:
    """The legend's parts, wrapped into lines that fit `width`, and the number of lines."""
    parts = []
    x, y = float(LEFT), 8
    for one in series:
        item = 28 + 7.5 * len(one.name)
        if x > LEFT and x + item - 12 > width - RIGHT:
            x, y = float(LEFT), y + LEGEND_LINE
        parts.append(f'<rect x="{x:.1f}" y="{y}" width="12" height="12" fill="{one.color}"/>')
        parts.append(_text(x + 16, y + 10, one.name))
        x += item
    return parts, 1 + (y - 8) // LEGEND_LINE


def bar_chart(
    ident: str,
    title: str,
    description: str,
    labels: Sequence[str],
    bars: Series,
    *,
    inner: Series | None = None,
    cap: float | None = None,
    cap_label: str = "cap",
    x_label: str,
    y_label: str,
    width: int = WIDTH,
) -> Markup:
    """Bars per category, optionally a narrower bar inside each, and a horizontal cap line."""
    values = [v for v in bars.values if v is not None]
    top = max([*values, cap or 0, 1])
    legend = [bars, *([inner] if inner else [])]
    if cap is not None:
        legend.append(Series(f"{cap_label} ({_number(cap)})", [], CAP))
    key, lines = _legend(legend, width)
    extra = (lines - 1) * LEGEND_LINE
    ticks = nice_ticks(0, top * 1.1, whole=True)
    frame = _Frame(ticks, HEIGHT + extra, len(labels), width, TOP + extra)
    parts = _open(ident, title, description, HEIGHT + extra, width)
    parts += frame.axes(labels, x_label, y_label, _number)
    parts += key
    bar_width = min(frame.slot * 0.7, 48)  # a handful of weeks should not look like a wall
    for index, label in enumerate(labels):
        for one, share in ((bars, 1.0), (inner, 0.45)):
            if one is None or one.values[index] is None:
                continue
            value = float(one.values[index] or 0)
            y = frame.y(value)
            w = bar_width * share
            parts.append(
                f'<rect class="bar" x="{frame.x(index) - w / 2:.1f}" y="{y:.1f}" '
                f'width="{w:.1f}" height="{frame.bottom - y:.1f}" fill="{one.color}">'
                f"<title>{escape(label)}: {escape(one.name)} {_number(value)}</title></rect>"
            )
    if cap is not None:
        y = frame.y(cap)
        parts.append(
            f'<line class="cap" x1="{LEFT}" x2="{width - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="{CAP}" stroke-width="2" stroke-dasharray="6 4">'
            f"<title>{escape(cap_label)}: {_number(cap)}</title></line>"
        )
    parts.append("</svg>")
    return Markup("\n".join(parts))


def line_chart(
    ident: str,
    title: str,
    description: str,
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    low: float | None = None,
    high: float | None = None,
    value_format: Format = _number,
    x_label: str,
    y_label: str,
    width: int = WIDTH,
) -> Markup:
    """A line per series over the categories; an unknown value breaks the line."""
    known = [v for one in series for v in one.values if v is not None]
    bottom = low if low is not None else min([*known, 0])
    top = high if high is not None else max([*known, 1])
    key, lines = _legend(series, width)
    extra = (lines - 1) * LEGEND_LINE
    frame = _Frame(nice_ticks(bottom, top), HEIGHT + extra, len(labels), width, TOP + extra)
    parts = _open(ident, title, description, HEIGHT + extra, width)
    parts += frame.axes(labels, x_label, y_label, value_format)
    parts += key
    for one in series:
        runs: list[list[tuple[float, float]]] = [[]]
        for index, value in enumerate(one.values):
            if value is None:
                runs.append([])
                continue
            x, y = frame.x(index), frame.y(value)
            runs[-1].append((x, y))
            parts.append(
                f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="3.5" fill="{one.color}">'
                f"<title>{escape(labels[index])}: {escape(one.name)} "
                f"{escape(value_format(value))}</title></circle>"
            )
        for run in runs:
            if len(run) > 1:
                points = " ".join(f"{x:.1f},{y:.1f}" for x, y in run)
                parts.append(
                    f'<polyline class="line" points="{points}" fill="none" '
                    f'stroke="{one.color}" stroke-width="2"/>'
                )
    parts.append("</svg>")
    return Markup("\n".join(parts))


RATE_WIDTH = 360  # narrow: the labels stay legible when a phone scales the chart down


def rate_chart(
    ident: str,
    title: str,
    description: str,
    rows: Sequence[tuple[str, Sequence[float | None]]],
    series: Sequence[tuple[str, str]],
    *,
    x_label: str,
) -> Markup:
    """Per row (a campaign), a horizontal bar per rate (fractions 0-1), its value at its end.

    The name of each row stands above its bars, so the bars keep the whole
    width on a phone; the scale is 0-100% or, for small rates, up to a round
    number just above the largest. `series` is (name, colour) per rate.
    """
    known = [v for _, values in rows for v in values if v is not None]
    top = max([*known, 0.0])
    ticks = [0.0, 0.25, 0.5, 0.75, 1.0] if top > 0.4 else nice_ticks(0, max(top, 0.01), 4)
    high = ticks[-1]
    left, right, bar, gap, name_line = 10, 62, 16, 12, 20
    span = RATE_WIDTH - left - right
    legend_height = 30
    height = legend_height + len(rows) * (name_line + len(series) * bar + gap) + 40
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart rates" role="img" font-size="14" '
        f'viewBox="0 0 {RATE_WIDTH} {height}" width="{RATE_WIDTH}" height="{height}" '
        f'aria-labelledby="{ident}-title {ident}-desc">',
        f'<title id="{ident}-title">{escape(title)}</title>',
        f'<desc id="{ident}-desc">{escape(description)}</desc>',
    ]
    x = float(left)
    for name, color in series:
        parts.append(f'<rect x="{x:.1f}" y="5" width="13" height="13" fill="{color}"/>')
        parts.append(_text(x + 17, 16, name))
        x += 34 + 7.6 * len(name)
    bottom = height - 34

    def at(value: float) -> float:
        return left + span * min(value, high) / high

    for tick in ticks:
        parts.append(
            f'<line x1="{at(tick):.1f}" x2="{at(tick):.1f}" y1="{legend_height}" '
            f'y2="{bottom}" stroke="{GRID}"/>'
        )
        parts.append(_text(at(tick), bottom + 16, _percent(tick), text_anchor="middle"))
    parts.append(
        f'<line x1="{left}" x2="{left}" y1="{legend_height}" y2="{bottom}" stroke="{AXIS}"/>'
    )
    parts.append(
        _text(left + span / 2, height - 4, x_label, text_anchor="middle", class_="axis-label")
    )
    y = float(legend_height)
    for label, values in rows:
        parts.append(_text(left, y + 15, label, class_="row-label"))
        y += name_line
        for (name, color), value in zip(series, values, strict=True):
            shown = "no data" if value is None else percent(value)  # as in the table
            if value is not None:
                width = max(at(value) - left, 1.0)
                parts.append(
                    f'<rect class="bar" x="{left}" y="{y:.1f}" width="{width:.1f}" '
                    f'height="{bar - 3}" fill="{color}"><title>{escape(label)}: '
                    f"{escape(name)} {shown}</title></rect>"
                )
            end = at(value or 0) + 4
            parts.append(_text(end, y + bar - 3, shown, class_="value"))
            y += bar
        y += gap
    parts.append("</svg>")
    return Markup("\n".join(parts))


def _percent(value: float) -> str:
    """A fraction as an axis tick: "25%", "0.5%"."""
    number = 100 * value
    return f"{number:.0f}%" if float(round(number, 6)).is_integer() else f"{number:.1f}%"
