"""The year as campaign lanes: an SVG of one lane per campaign, drawn 1:1 in pixels.

A scheduled campaign is a bar on each day it sends (its height on a log
scale), a triggered journey a band of its mails a day (a week's average);
quiet days and holidays are shaded columns, months are lines, and a
transparent column per day is what a click hits. The lanes' names are HTML
beside the drawing (`lane_rows`), so a phone scrolls the drawing and keeps
the names.
"""

from __future__ import annotations

import math
from collections import Counter

from markupsafe import Markup, escape

from trouw.planning.calendar_data import CalendarPage, Lane
from trouw.planning.views import YearView, year_days

# Heat levels of a day's sends (LogScale 1..4): light to strong, dark text reads on each.
HEAT = ("#ffffff", "#e3eefa", "#bcd6f0", "#8cb9e3", "#5b9ad4")
QUIET_FILL, HOLIDAY_FILL = "#eef0f4", "#fbe3d3"
# Lane geometry in pixels: 2.5 px a day fits a 1280 px screen beside the names.
DAY_W, X0, AXIS, LANE_H, LANE_GAP, TOTAL_H = 2.5, 2, 22, 30, 8, 16
GEOMETRY = {"axis": AXIS, "total": TOTAL_H + LANE_GAP, "lane": LANE_H + LANE_GAP}


def _smoothed(values: list[int], radius: int = 3) -> list[float]:
    """The mean over the week around each day: a journey's expected daily volume."""
    out = []
    for index in range(len(values)):
        window = values[max(0, index - radius) : index + radius + 1]
        out.append(sum(window) / len(window))
    return out


def _x(index: int) -> str:
    return f"{X0 + index * DAY_W:g}"


def lanes_svg(page: CalendarPage) -> Markup:
    """The year as an SVG: an 'all sends' heat strip, then one lane per campaign, in rows
    as high as the names beside it (`lane_rows`)."""
    view, scale = page.view, page.scale
    days = list(year_days(view.year))
    width = math.ceil(X0 + DAY_W * len(days) + 6)
    top = AXIS + TOTAL_H + LANE_GAP
    height = top + len(page.lanes) * (LANE_H + LANE_GAP)
    out = [
        f'<svg class="lanes" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="Sends per campaign and day in {view.year}">'
    ]
    # Quiet days and holidays: shaded columns behind everything.
    for index, day in enumerate(days):
        if day in page.quiet:
            fill = HOLIDAY_FILL if day in page.holidays else QUIET_FILL
            out.append(
                f'<rect x="{_x(index)}" y="{AXIS}" width="{DAY_W}" '
                f'height="{height - AXIS}" fill="{fill}"/>'
            )
    # Months: a line and a name at each first day.
    for index, day in enumerate(days):
        if day.day == 1:
            out.append(
                f'<line x1="{_x(index)}" y1="{AXIS - 6}" x2="{_x(index)}" y2="{height}" '
                'stroke="#c9ced6" stroke-width="0.6"/>'
                f'<text x="{X0 + index * DAY_W + 3:g}" y="{AXIS - 8}" class="axis">{day:%b}</text>'
            )
    # All sends: one cell per day, coloured by the log scale.
    for index, day in enumerate(days):
        level = scale.level(view.sends_on(day))
        if level:
            out.append(
                f'<rect x="{_x(index)}" y="{AXIS}" width="{DAY_W}" '
                f'height="{TOTAL_H}" fill="{HEAT[level]}"/>'
            )
    for number, lane in enumerate(page.lanes):
        base = top + number * (LANE_H + LANE_GAP) + LANE_H
        out.append(
            f'<g class="lane" data-campaign="{escape(lane.name)}">'
            f'<line x1="0" y1="{base + 0.5}" x2="{width}" y2="{base + 0.5}" '
            'stroke="#dde1e7" stroke-width="1"/>'
        )
        counts = [view.per_day.get(day, Counter())[lane.name] for day in days]
        draw = _band if lane.journey else _bars
        out.append(draw(counts, base, lane.color))
        out.append("</g>")
    # Click targets, one per day across every lane; the selected day's marker.
    out.append(
        f'<rect id="lane-selected" x="-10" y="{AXIS}" width="{DAY_W}" '
        f'height="{height - AXIS}" fill="none" stroke="#1f2933" stroke-width="1.2"/>'
    )
    out.append('<g class="hits">')
    for index, day in enumerate(days):
        out.append(
            f'<rect data-date="{day.isoformat()}" x="{_x(index)}" y="{AXIS}" '
            f'width="{DAY_W}" height="{height - AXIS}"><title>{day:%a %d %b}: '
            f"{view.sends_on(day):,} sends</title></rect>"
        )
    out.append("</g></svg>")
    return Markup("".join(out))


def lane_rows(page: CalendarPage) -> list[tuple[Lane, str]]:
    """Each lane with the note under its name."""
    return [(lane, _lane_note(lane, page.view)) for lane in page.lanes]


def _lane_note(lane: Lane, view: YearView) -> str:
    """Under a lane's name: when it goes out, for a journey with its mails a day (the page
    cuts it to fit and shows it whole on hover)."""
    if not lane.journey:
        return lane.when
    a_day = lane.sends / len(list(year_days(view.year)))
    volume = f"≈ {a_day:.1f} a day" if a_day >= 0.1 else f"{lane.sends:,} in the year"
    return f"{volume} · {lane.when}"


def _bars(counts: list[int], base: int, color: str) -> str:
    """A scheduled campaign: a bar on each day it sends, its height on a log scale."""
    most = max(counts, default=0)
    if not most:
        return ""
    out, labelled = [], -99
    for index, count in enumerate(counts):
        if count:
            share = math.log1p(count) / math.log1p(most)
            h = round(4 + (LANE_H - 6) * share, 1)
            out.append(
                f'<rect x="{_x(index)}" y="{base - h}" width="{DAY_W}" '
                f'height="{h}" fill="{color}"/>'
            )
            # The big days get their count, one label a week at most so none overlap.
            if count * 2 >= most and index - labelled > 7:
                labelled = index
                # Left of the bar, where the days before a send day are empty (deferrals
                # follow it), except at the start of the year, next to the lane's name.
                x, anchor = X0 + index * DAY_W - 2, "end"
                if index < 20:
                    x, anchor = X0 + index * DAY_W + DAY_W + 2, "start"
                out.append(
                    f'<text x="{x:g}" y="{base - LANE_H / 2 + 4}" text-anchor="{anchor}" '
                    f'class="peak">{count:,}</text>'
                )
    return "".join(out)


def _band(counts: list[int], base: int, color: str) -> str:
    """A triggered journey: its daily volume smoothed over a week, as a filled band."""
    smooth = _smoothed(counts)
    most = max(smooth, default=0.0)
    if not most:
        return ""
    points = [
        (X0 + index * DAY_W + DAY_W / 2, base - (LANE_H - 4) * value / most)
        for index, value in enumerate(smooth)
    ]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
    first, last = points[0][0], points[-1][0]
    return (
        f'<polygon points="{first:.1f},{base} {line} {last:.1f},{base}" fill="{color}" '
        f'fill-opacity="0.35"/><polyline points="{line}" fill="none" stroke="{color}" '
        'stroke-width="1.4"/>'
    )
