"""The year calendar as a web page: who gets what, when.

One lane per campaign in its colour (scheduled campaigns as bars on their
days, triggered journeys as a band of their expected daily volume), quiet
days and public holidays shaded by the policy's own rule (`QuietDays`), the
twelve months as grids, a click on a day listing its campaigns and variants
with counts, and a contact filter showing one person's year.

The figures come from `views.year_view` (GROUP BY statements, the same cost
for a hundred contacts or a million). A page cannot hold a million people's
years, so it embeds every contact's plan rows only for a small plan (up to
EMBED_ALL contacts); for a bigger one it embeds the contacts asked for and
one example contact per campaign variant, and says so. The preview server
looks any contact up instead (`lookup`).

`trouw calendar --html` writes the page (`calendar_html`); the preview
server's home page shows the same fragment (`calendar_fragment`).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from importlib.resources import files
from typing import Any

from jinja2 import Environment, StrictUndefined
from markupsafe import Markup, escape
from sqlalchemy import Connection, Select, func, select

from trouw.campaigns import Campaign, load_campaigns
from trouw.planning.policy import DEFERRED, DROPPED, PLANNED, QuietDays
from trouw.planning.runs import year_planned
from trouw.planning.views import SENDS, LogScale, YearView, contact_plan, year_days, year_view
from trouw.project import Project
from trouw.segments import load_catalog
from trouw.segments.compile import Clock, members_query
from trouw.store import contacts, plan

TEMPLATE = "templates/calendar.html"
# Up to this many contacts with plan rows in the year, every one's year is in the page;
# a bigger plan gets an example contact per variant (a different one where the first few
# receivers of each allow it).
EMBED_ALL = 200
EXAMPLE_CANDIDATES = 5
# Tableau 10: distinct hues that read on white, then darker twins for an 11th campaign on.
PALETTE = (
    "#4e79a7", "#f28e2b", "#e15759", "#59a14f", "#b07aa1",
    "#76b7b2", "#edc948", "#9c755f", "#ff9da7", "#bab0ac",
    "#2f4b7c", "#a05195", "#665191", "#d45087", "#003f5c",
)  # fmt: skip
# Heat levels of a day's sends (LogScale 1..4): light to strong, dark text reads on each.
HEAT = ("#ffffff", "#e3eefa", "#bcd6f0", "#8cb9e3", "#5b9ad4")
QUIET_FILL, HOLIDAY_FILL = "#eef0f4", "#fbe3d3"

# Lane geometry in pixels: the drawing is 1:1 beside the lanes' names (HTML, so they stay
# put when a phone scrolls the drawing); 2.5 px a day fits a 1280 px screen with the names.
DAY_W, X0, AXIS, LANE_H, LANE_GAP, TOTAL_H = 2.5, 2, 22, 30, 8, 16


@dataclass(frozen=True)
class Lane:
    """One campaign on the calendar: its colour and how it is dated."""

    name: str
    color: str
    kind: str
    when: str  # "2 Apr" or "trigger: birthday"
    journey: bool  # triggered: a band of daily volume rather than bars on its days
    planned: int = 0
    deferred: int = 0
    dropped: int = 0
    busiest: tuple[date, int] | None = None

    @property
    def sends(self) -> int:
        return self.planned + self.deferred


@dataclass(frozen=True)
class Person:
    """One contact's year: plan rows as [date, campaign, template, channel, status, reason]."""

    id: str
    name: str
    rows: list[list[str]]
    example: str = ""  # the campaign variant this contact is in the page for


@dataclass
class CalendarPage:
    """Everything the page shows, read from the database once."""

    name: str
    view: YearView
    lanes: list[Lane]
    quiet: dict[date, str]  # quiet day -> why (the weekday or the holiday's name)
    holidays: frozenset[date]
    people: list[Person] = field(default_factory=list)
    people_note: str = ""
    selected: str | None = None  # the contact to show when the page opens
    missing: list[str] = field(default_factory=list)  # asked-for contacts without plan rows
    unknown: list[str] = field(default_factory=list)  # asked-for ids no contact has
    segment: str | None = None  # only this segment's members (as of `as_of`)
    as_of: date | None = None
    segments: list[str] = field(default_factory=list)  # to choose from (the preview server)

    @property
    def scale(self) -> LogScale:
        return LogScale(self.view.busiest_day)

    @property
    def total_sends(self) -> int:
        return sum(lane.sends for lane in self.lanes)


def _when(campaign: Campaign, year: int) -> str:
    if campaign.trigger is not None:
        steps = len(campaign.steps)
        return f"trigger: {campaign.trigger}" + (f", {steps} steps" if steps > 1 else "")
    if campaign.schedule is not None:
        days = campaign.schedule.days_in(year)
        if len(days) <= 3:
            return ", ".join(f"{d.day} {d:%b}" for d in days) or f"no day in {year}"
        return f"{len(days)} days"
    return ""


def _lanes(view: YearView, campaigns: Sequence[Campaign]) -> list[Lane]:
    known = {c.name: c for c in campaigns if c.on_calendar}
    names = sorted(set(known) | set(view.per_campaign))
    colors = {name: PALETTE[index % len(PALETTE)] for index, name in enumerate(names)}
    first_day: dict[str, date] = {}
    for day, name, _count in view.campaign_days():
        first_day.setdefault(name, day)
    lanes = []
    for name in names:
        campaign = known.get(name)
        counts = view.per_campaign.get(name, Counter())
        lanes.append(
            Lane(
                name=name,
                color=colors[name],
                kind=campaign.kind if campaign else "",
                when=_when(campaign, view.year) if campaign else "not in campaigns/ any more",
                journey=bool(campaign and campaign.trigger is not None),
                planned=counts[PLANNED],
                deferred=counts[DEFERRED],
                dropped=counts[DROPPED],
                busiest=view.busiest_day_of(name),
            )
        )
    # Scheduled campaigns in the order of their first day, then journeys, busiest first.
    end = date(view.year, 12, 31)
    return sorted(
        lanes,
        key=lambda lane: (lane.journey, -lane.sends if lane.journey else 0,
                          first_day.get(lane.name, end), lane.name),
    )  # fmt: skip


def _names(connection: Connection, ids: Iterable[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    wanted = sorted(set(ids))
    for start in range(0, len(wanted), 500):
        query = select(contacts.c.id, contacts.c.first_name, contacts.c.last_name).where(
            contacts.c.id.in_(wanted[start : start + 500])
        )
        for contact_id, first, last in connection.execute(query):
            found[contact_id] = " ".join(part for part in (first, last) if part)
    return found


def _in_year(year: int) -> list[Any]:
    return [plan.c.day >= date(year, 1, 1), plan.c.day <= date(year, 12, 31)]


def _people(
    connection: Connection,
    year: int,
    asked: Sequence[str],
    embed_all: int,
    members: Select[tuple[str]] | None,
) -> tuple[list[str], str, dict[str, str]]:
    """Which contacts' years go into the page, a sentence saying which, and the variant each
    example contact stands for."""
    among = [] if members is None else [plan.c.contact_id.in_(members)]
    planned = int(
        connection.execute(
            select(func.count(plan.c.contact_id.distinct())).where(*_in_year(year), *among)
        ).scalar_one()
    )
    if planned <= embed_all:
        everyone = connection.execute(
            select(plan.c.contact_id).where(*_in_year(year), *among).distinct()
        ).scalars()
        return sorted(set(everyone) | set(asked)), f"every contact in the plan ({planned})", {}
    # A different contact for each variant where one exists: the first few ids of each.
    receivers = (
        select(plan.c.campaign, plan.c.template, plan.c.contact_id)
        .where(plan.c.status.in_(SENDS), *_in_year(year), *among)
        .distinct()
        .subquery()
    )
    ranked = select(
        receivers,
        func.row_number()
        .over(
            partition_by=(receivers.c.campaign, receivers.c.template),
            order_by=receivers.c.contact_id,
        )
        .label("rank"),
    ).subquery()
    candidates = connection.execute(
        select(ranked.c.campaign, ranked.c.template, ranked.c.contact_id)
        .where(ranked.c.rank <= EXAMPLE_CANDIDATES)
        .order_by(ranked.c.campaign, ranked.c.template, ranked.c.rank)
    ).all()
    examples: dict[str, str] = {}
    chosen: set[tuple[str, str]] = set()
    for campaign, template, contact_id in candidates:
        if (campaign, template) not in chosen and contact_id not in examples:
            chosen.add((campaign, template))
            examples[contact_id] = f"{campaign} · {template}"
    ids = sorted(set(examples) | set(asked))
    return (
        ids,
        (
            f"{len(ids)} of the {planned:,} contacts in the plan: "
            + ("the ones asked for and " if asked else "")
            + "example contacts of the campaign variants"
        ),
        examples,
    )


def build_calendar(
    connection: Connection,
    *,
    name: str,
    view: YearView,
    campaigns: Sequence[Campaign],
    quiet: QuietDays,
    contact_ids: Sequence[str] = (),
    embed_all: int = EMBED_ALL,
    members: Select[tuple[str]] | None = None,
) -> CalendarPage:
    """The calendar of `view`'s year: lanes of `campaigns`, the days `quiet` marks, and the
    years of the contacts in `contact_ids` (the first one opened), plus examples; `members`
    (the view's, if it is a segment's) limits the examples to them."""
    year = view.year
    quiet_days = {day: why for day in year_days(year) if (why := quiet.reason(day))}
    holidays = frozenset(quiet.holidays_in(year))
    ids, note, examples = _people(connection, year, contact_ids, embed_all, members)
    names = _names(connection, ids)
    people, missing = [], []
    for contact_id in ids:
        rows = contact_plan(connection, contact_id, year=year)
        if not rows:
            missing.append(contact_id)
            continue
        people.append(
            Person(
                contact_id,
                names.get(contact_id, ""),
                [
                    [
                        row["day"].isoformat(),
                        row["campaign"],
                        row["template"] or "",
                        row["channel"],
                        row["status"],
                        row["reason"] or "",
                    ]
                    for row in rows
                ],
                examples.get(contact_id, ""),
            )
        )
    return CalendarPage(
        name=name,
        view=view,
        lanes=_lanes(view, campaigns),
        quiet=quiet_days,
        holidays=holidays,
        people=people,
        people_note=note,
        selected=contact_ids[0] if contact_ids else None,
        missing=[m for m in missing if m in contact_ids and m in names],
        unknown=[m for m in contact_ids if m not in names],
    )


# ---------------------------------------------------------------------- the lanes


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
    """Under a lane's name: its days, or a journey's trigger and mails a day (cut to fit)."""
    if not lane.journey:
        note = lane.when
    else:
        a_day = lane.sends / len(list(year_days(view.year)))
        volume = f"≈ {a_day:.1f} a day" if a_day >= 0.1 else f"{lane.sends:,} in the year"
        note = f"{volume} · {lane.when.removeprefix('trigger: ')}"
    return note if len(note) <= 40 else note[:39] + "…"


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


# ---------------------------------------------------------------------- the page


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
        geometry={"axis": AXIS, "total": TOTAL_H + LANE_GAP, "lane": LANE_H + LANE_GAP},
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


def project_calendar(
    connection: Connection,
    project: Project,
    year: int,
    *,
    contact_ids: Sequence[str] = (),
    segment: str | None = None,
    as_of: date | None = None,
) -> CalendarPage:
    """The calendar of `project`'s plan of `year`: its campaigns, its policy's quiet days;
    with `segment`, only the plan of that segment's members as of `as_of` (a SegmentError if
    there is no such valid segment)."""
    catalog = load_catalog(project.segments_dir)
    members = None
    if segment is not None:
        day = as_of or date(year, 1, 1)
        clock = Clock(day, project.settings.tz)
        members = members_query(catalog.get(segment), catalog, clock, connection.dialect.name)
    page = build_calendar(
        connection,
        name=project.settings.name,
        view=year_view(connection, year, members=members),
        campaigns=load_campaigns(project.campaigns_dir),
        quiet=QuietDays(project.settings.policy.quiet_days),
        contact_ids=contact_ids,
        members=members,
    )
    page.segment, page.as_of = segment, as_of
    page.segments = [name for name in catalog.names if name not in catalog.errors]
    return page


def calendar_years(connection: Connection, as_of: date, wanted: int | None = None) -> list[int]:
    """The planned years a page offers, the one to show first: `wanted` if it is planned,
    else as-of's year, else the next (in December the coming year is what is planned)."""
    candidates = [] if wanted is None else [wanted]
    candidates += [year for year in (as_of.year, as_of.year + 1) if year != wanted]
    return [year for year in candidates if year_planned(connection, year)]
