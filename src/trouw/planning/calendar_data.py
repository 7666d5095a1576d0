"""The year calendar's figures: campaign lanes, quiet days, and the years of a few people.

`build_calendar` reads everything a calendar shows, once: the summary of
`views.year_view` (GROUP BY statements, the same cost for a hundred contacts
or a million), each campaign's colour and how it is dated, the quiet days and
holidays of the policy's own rule (`QuietDays`), and the plan rows of the
contacts whose year the page can show. A page cannot hold a million people's
years: it holds every contact's year only for a small plan (up to EMBED_ALL
contacts), else the contacts asked for and an example contact per campaign
variant, and says which. calendar_page.py turns it into the page; the
terminal view (cli/calendar.py) prints it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import Connection, Select, func, select

from trouw.campaigns import Campaign, load_campaigns
from trouw.planning.next_sends import describe_when
from trouw.planning.policy import DEFERRED, DROPPED, PLANNED, QuietDays
from trouw.planning.runs import year_planned
from trouw.planning.views import SENDS, LogScale, YearView, contact_plan, year_days, year_view
from trouw.project import Project
from trouw.segments import load_catalog
from trouw.segments.compile import Clock, members_query
from trouw.store import contacts, plan

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
    """The schedule or trigger in words (the preview's own wording), a journey's steps, and
    a schedule without a day in the year said so."""
    when = describe_when(campaign)
    if campaign.trigger is not None and len(campaign.steps) > 1:
        return f"{when}, {len(campaign.steps)} steps"
    if campaign.schedule is not None and not campaign.schedule.days_in(year):
        return f"{when} (no day in {year})"
    return when


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
