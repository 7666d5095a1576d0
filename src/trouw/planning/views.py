"""Reading the plan back: export rows, one contact's plan, and the year calendar.

The calendar is two GROUP BY statements (sends per day, campaign and template,
and rows per campaign and status); the terminal heatmap, the HTML page
(calendar_page.py) and the ICS file are built from that summary, so they cost
the same for a hundred contacts or a million.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import icalendar
from sqlalchemy import Connection, Select, func, select

from trouw.planning.policy import DEFERRED, PLANNED
from trouw.store import contacts, plan

EXPORT_COLUMNS = (
    "contact_id",
    "date",
    "campaign",
    "step",
    "template",
    "channel",
    "priority",
    "status",
    "reason",
)
SENDS = (PLANNED, DEFERRED)


def _in_year(year: int | None) -> list[Any]:
    if year is None:
        return []
    return [plan.c.day >= date(year, 1, 1), plan.c.day <= date(year, 12, 31)]


def _among(members: Select[tuple[str]] | None) -> list[Any]:
    return [] if members is None else [plan.c.contact_id.in_(members)]


def export_rows(connection: Connection, *, year: int | None = None) -> Iterator[dict[str, Any]]:
    """Every plan row (of one year, if given) as a dict of EXPORT_COLUMNS, streamed."""
    query = (
        select(
            plan.c.contact_id,
            plan.c.day,
            plan.c.campaign,
            plan.c.step,
            plan.c.template,
            plan.c.channel,
            plan.c.priority,
            plan.c.status,
            plan.c.reason,
        )
        .where(*_in_year(year))
        .order_by(plan.c.contact_id, plan.c.day, plan.c.campaign, plan.c.step, plan.c.occurrence)
    )
    result = connection.execution_options(stream_results=True, yield_per=5000).execute(query)
    for row in result:
        values = dict(zip(EXPORT_COLUMNS, row, strict=True))
        values["date"] = row.day.isoformat()
        yield values


def contact_plan(
    connection: Connection, contact_id: str, *, year: int | None = None
) -> list[dict[str, Any]]:
    """One contact's plan rows (sends, deferrals and drops) in day order, with occurrences."""
    query = (
        select(plan)
        .where(plan.c.contact_id == contact_id, *_in_year(year))
        .order_by(plan.c.day, plan.c.priority.desc(), plan.c.campaign, plan.c.step)
    )
    return [dict(row._mapping) for row in connection.execute(query)]


@dataclass
class YearView:
    """The plan of a year, summed up for calendars."""

    year: int
    contacts: int
    per_day: dict[date, Counter[str]] = field(default_factory=dict)  # sends per campaign
    per_campaign: dict[str, Counter[str]] = field(default_factory=dict)  # rows per status
    # sends per day, campaign and template (the variant): what a click on a day lists
    per_variant: dict[date, dict[str, Counter[str]]] = field(default_factory=dict)

    def sends_on(self, day: date) -> int:
        return sum(self.per_day.get(day, Counter()).values())

    @property
    def busiest_day(self) -> int:
        return max((sum(c.values()) for c in self.per_day.values()), default=0)

    def campaign_days(self) -> Iterator[tuple[date, str, int]]:
        for day in sorted(self.per_day):
            for campaign, count in sorted(self.per_day[day].items()):
                yield day, campaign, count

    def busiest_campaigns(self) -> list[tuple[str, int]]:
        sends = {name: sum(counts[s] for s in SENDS) for name, counts in self.per_campaign.items()}
        return sorted(sends.items(), key=lambda item: (-item[1], item[0]))

    def busiest_day_of(self, campaign: str) -> tuple[date, int] | None:
        """The day `campaign` sends the most (the earliest of equals), with its sends."""
        days = [(-c[campaign], d) for d, c in self.per_day.items() if c[campaign]]
        if not days:
            return None
        count, day = min(days)
        return day, -count


def year_view(
    connection: Connection, year: int, *, members: Select[tuple[str]] | None = None
) -> YearView:
    """The year's sends (planned and deferred) per day, campaign and template, and its rows
    per campaign and status: two GROUP BY statements, whatever the number of contacts.

    `members` (a select of contact ids, e.g. a segment's) limits it to those contacts.
    """
    among = _among(members)
    if members is None:
        total = connection.execute(select(func.count()).select_from(contacts)).scalar_one()
    else:
        total = connection.execute(
            select(func.count()).select_from(members.subquery())
        ).scalar_one()
    view = YearView(year, int(total))
    per_variant = connection.execute(
        select(plan.c.day, plan.c.campaign, plan.c.template, func.count())
        .where(plan.c.status.in_(SENDS), *_in_year(year), *among)
        .group_by(plan.c.day, plan.c.campaign, plan.c.template)
    )
    for day, campaign, template, count in per_variant:
        view.per_day.setdefault(day, Counter())[campaign] += int(count)
        variants = view.per_variant.setdefault(day, {}).setdefault(campaign, Counter())
        variants[template or ""] += int(count)
    per_status = connection.execute(
        select(plan.c.campaign, plan.c.status, func.count())
        .where(*_in_year(year), *among)
        .group_by(plan.c.campaign, plan.c.status)
    )
    for campaign, status, count in per_status:
        view.per_campaign.setdefault(campaign, Counter())[status] = int(count)
    return view


@dataclass(frozen=True)
class LogScale:
    """Sends per day in a few levels on a logarithmic scale, so one busy day does not
    flatten the rest: with 389 on the busiest day the levels are 1-4, 5-20, 21-88, 89-389.

    Level 0 is a day without sends. The terminal heatmap and the HTML page both use it.
    """

    busiest: int
    levels: int = 4

    @property
    def uppers(self) -> tuple[int, ...]:
        """The highest count of each level 1..n (fewer levels when the busiest day is small)."""
        found: list[int] = []
        if self.busiest <= 0:
            return ()
        for k in range(1, self.levels + 1):
            upper = min(self.busiest, max(round(self.busiest ** (k / self.levels)), 1))
            if not found or upper > found[-1]:
                found.append(upper)
        return tuple(found)

    def level(self, sends: int) -> int:
        if sends <= 0:
            return 0
        for index, upper in enumerate(self.uppers, start=1):
            if sends <= upper:
                return index
        return len(self.uppers)

    def ranges(self) -> list[tuple[int, int, int]]:
        """(level, lowest, highest) per level, for a legend."""
        found, low = [], 1
        for index, upper in enumerate(self.uppers, start=1):
            found.append((index, low, upper))
            low = upper + 1
        return found


def year_days(year: int) -> Iterator[date]:
    day = date(year, 1, 1)
    while day.year == year:
        yield day
        day += timedelta(days=1)


# ---------------------------------------------------------------------- ICS


def calendar_ics(view: YearView, *, name: str) -> bytes:
    """An RFC 5545 calendar: one all-day event per campaign day, with its send count.

    UIDs are stable (campaign and day), so a calendar app that subscribes to
    the file updates the events when the plan is refreshed.
    """
    ics = icalendar.Calendar()
    ics.add("prodid", "-//trouw//year plan//EN")
    ics.add("version", "2.0")
    ics.add("x-wr-calname", f"{name} {view.year}")
    stamp = datetime.now(UTC).replace(microsecond=0)
    for day, campaign, count in view.campaign_days():
        event = icalendar.Event()
        event.add("uid", f"{campaign}-{day.isoformat()}@trouw")
        event.add("dtstamp", stamp)
        event.add("dtstart", day)
        event.add("dtend", day + timedelta(days=1))
        event.add("summary", f"{campaign}: {count} send{'s' if count != 1 else ''}")
        event.add("categories", [campaign])
        event.add("transp", "TRANSPARENT")
        ics.add_component(event)
    data: bytes = ics.to_ical()
    return data
