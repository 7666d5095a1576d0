"""The year calendar as a web page: who gets what, when.

The campaign lanes (calendar_lanes.py) with a legend, the twelve months on a
log scale with quiet days and holidays hatched, a click on a day listing its
campaigns and variants with counts, a contact filter showing one person's
year and, on the preview server, a segment choice. Everything is inline (CSS,
SVG, script, the figures as JSON): the page opens offline and can be mailed
as one file.

`trouw calendar --html` writes the page (`calendar_html`); the preview
server's home page shows the same fragment (`calendar_fragment`), with a
`lookup` URL for the contacts the page does not hold.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import date, timedelta
from importlib.resources import files

from jinja2 import Environment, StrictUndefined
from markupsafe import Markup

from trouw.planning.calendar_data import CalendarPage
from trouw.planning.calendar_lanes import (
    GEOMETRY,
    HEAT,
    HOLIDAY_FILL,
    QUIET_FILL,
    lane_rows,
    lanes_svg,
)

TEMPLATE = "templates/calendar.html"


@dataclass(frozen=True)
class DayCell:
    day: date
    sends: int
    level: int
    quiet: str | None
    holiday: bool
    title: str
    stripes: list[tuple[str, float]]  # (colour, share of the day's sends)


def _months(page: CalendarPage) -> list[tuple[str, int, list[DayCell | None]]]:
    view, scale = page.view, page.scale
    colors = {lane.name: lane.color for lane in page.lanes}
    months = []
    for month in range(1, 13):
        first = date(view.year, month, 1)
        cells: list[DayCell | None] = [None] * first.weekday()
        day = first
        while day.month == month:
            counts = view.per_day.get(day, Counter())
            sends = sum(counts.values())
            listed = "\n".join(f"{c}: {n}" for c, n in sorted(counts.items())) or "no sends"
            quiet = page.quiet.get(day)
            cells.append(
                DayCell(
                    day=day,
                    sends=sends,
                    level=scale.level(sends),
                    quiet=quiet,
                    holiday=day in page.holidays,
                    title=f"{day.isoformat()}\n{listed}" + (f"\nquiet: {quiet}" if quiet else ""),
                    stripes=[
                        (colors.get(c, "#999"), 100 * n / sends)
                        for c, n in sorted(counts.items(), key=lambda item: -item[1])
                    ],
                )
            )
            day += timedelta(days=1)
        months.append((f"{first:%B}", month, cells))
    return months


def _data(page: CalendarPage, lookup: str | None) -> Markup:
    """The page's figures for its script, as JSON safe inside <script>."""
    data = {
        "year": page.view.year,
        "days": {
            day.isoformat(): {c: dict(sorted(t.items())) for c, t in sorted(campaigns.items())}
            for day, campaigns in sorted(page.view.per_variant.items())
        },
        "campaigns": {
            lane.name: {"color": lane.color, "kind": lane.kind, "when": lane.when}
            for lane in page.lanes
        },
        "quiet": {day.isoformat(): why for day, why in sorted(page.quiet.items())},
        "people": [
            {"id": p.id, "name": p.name, "rows": p.rows, "example": p.example} for p in page.people
        ],
        "segment": page.segment,
        "selected": page.selected,
        "unknown": page.unknown,
        "lookup": lookup,
    }
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


def _render(page: CalendarPage, *, standalone: bool, lookup: str | None) -> str:
    source = files("trouw.planning").joinpath(TEMPLATE).read_text(encoding="utf-8")
    environment = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True)
    template = environment.from_string(source)
    return template.render(
        page=page,
        view=page.view,
        scale=page.scale,
        heat=HEAT,
        quiet_fill=QUIET_FILL,
        holiday_fill=HOLIDAY_FILL,
        lanes_svg=lanes_svg(page),
        lane_rows=lane_rows(page),
        geometry=GEOMETRY,
        months=_months(page),
        data=_data(page, lookup),
        standalone=standalone,
        lookup=lookup,
    )


def calendar_html(page: CalendarPage) -> str:
    """A self-contained HTML page (inline CSS, SVG and script; nothing fetched)."""
    return _render(page, standalone=True, lookup=None)


def calendar_fragment(page: CalendarPage, *, lookup: str | None = None) -> Markup:
    """The calendar as a part of another page; `lookup` is a URL that takes `?contact=ID`
    for contacts not in the page (the preview server's home page)."""
    return Markup(_render(page, standalone=False, lookup=lookup))
