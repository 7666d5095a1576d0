"""Reading the plan back: export rows, one contact's plan, and the year calendar.

The calendar is two GROUP BY statements (sends per day and campaign, and per
campaign and status); the HTML page and the ICS file are built from that
summary alone, so they cost the same for a hundred contacts or a million.
"""

from __future__ import annotations

import calendar
import html
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import icalendar
from sqlalchemy import Connection, func, select

from trouw.planning.policy import DEFERRED, DROPPED, PLANNED
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


def year_view(connection: Connection, year: int) -> YearView:
    total = int(connection.execute(select(func.count()).select_from(contacts)).scalar_one())
    view = YearView(year, total)
    per_day = connection.execute(
        select(plan.c.day, plan.c.campaign, func.count())
        .where(plan.c.status.in_(SENDS), *_in_year(year))
        .group_by(plan.c.day, plan.c.campaign)
    )
    for day, campaign, count in per_day:
        view.per_day.setdefault(day, Counter())[campaign] = int(count)
    per_status = connection.execute(
        select(plan.c.campaign, plan.c.status, func.count())
        .where(*_in_year(year))
        .group_by(plan.c.campaign, plan.c.status)
    )
    for campaign, status, count in per_status:
        view.per_campaign.setdefault(campaign, Counter())[status] = int(count)
    return view


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


# ---------------------------------------------------------------------- HTML

_MONTHS = tuple(calendar.month_name[1:])
_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:24px;color:#222}
h1{font-size:22px;margin:0 0 4px} .muted{color:#666;font-size:13px}
.months{display:grid;grid-template-columns:repeat(auto-fill,minmax(260px,1fr));
  gap:18px;margin:18px 0}
.month h2{font-size:15px;margin:0 0 6px}
.month table{border-collapse:collapse;width:100%}
.month th{font-size:11px;color:#888;font-weight:normal}
.month td{width:14%;height:34px;text-align:center;font-size:11px;border:1px solid #eee;
  vertical-align:top;padding:2px}
.month td.day b{display:block;font-size:12px}
.month td.empty{border:none}
.legend span{display:inline-block;width:22px;height:12px;margin-right:2px}
table.campaigns{border-collapse:collapse;margin-top:8px}
table.campaigns td,table.campaigns th{padding:3px 10px;border-bottom:1px solid #eee;
  text-align:right}
table.campaigns td:first-child,table.campaigns th:first-child{text-align:left}
"""


def _heat(level: float) -> str:
    """White to deep red: the share of the busiest day's pressure."""
    level = max(0.0, min(1.0, level))
    green = int(255 - 190 * level)
    blue = int(255 - 210 * level)
    return f"rgb(255,{green},{blue})"


def calendar_html(view: YearView, *, name: str) -> str:
    """A self-contained page: month grids coloured by pressure, campaign counts per day."""
    busiest = view.busiest_day or 1
    contacts = view.contacts or 1
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(name)} — plan {view.year}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>{html.escape(name)} — the plan of {view.year}</h1>",
        f"<p class='muted'>{view.contacts} contacts; pressure = mails that day per 100 contacts; "
        f"the busiest day has {view.busiest_day} mails.</p>",
        "<p class='legend muted'>pressure: "
        + "".join(f"<span style='background:{_heat(i / 4)}'></span>" for i in range(5))
        + " low → high</p>",
        "<div class='months' id='months'>",
    ]
    for month in range(1, 13):
        first = date(view.year, month, 1)
        parts.append(f"<div class='month' data-month='{month}'><h2>{_MONTHS[month - 1]}</h2>")
        parts.append("<table><tr>")
        parts.extend(f"<th>{d}</th>" for d in ("Mo", "Tu", "We", "Th", "Fr", "Sa", "Su"))
        parts.append("</tr><tr>")
        parts.extend("<td class='empty'></td>" for _ in range(first.weekday()))
        day = first
        while day.month == month:
            if day.weekday() == 0 and day != first:
                parts.append("</tr><tr>")
            counts = view.per_day.get(day, Counter())
            sends = sum(counts.values())
            title = "\n".join(f"{c}: {n}" for c, n in sorted(counts.items())) or "no sends"
            pressure = 100 * sends / contacts
            parts.append(
                f"<td class='day' data-date='{day.isoformat()}' data-sends='{sends}' "
                f"title='{html.escape(day.isoformat() + chr(10) + title)}' "
                f"style='background:{_heat(sends / busiest)}'>"
                f"<b>{day.day}</b>{sends or ''}"
                + (f"<br><small>{pressure:.1f}</small>" if sends else "")
                + "</td>"
            )
            day += timedelta(days=1)
        parts.append("</tr></table></div>")
    parts.append("</div><h2>Campaigns</h2><table class='campaigns' id='campaigns'>")
    parts.append("<tr><th>campaign</th><th>planned</th><th>deferred</th><th>dropped</th></tr>")
    for campaign, _sends in view.busiest_campaigns():
        counts = view.per_campaign[campaign]
        parts.append(
            f"<tr><td>{html.escape(campaign)}</td><td>{counts[PLANNED]}</td>"
            f"<td>{counts[DEFERRED]}</td><td>{counts[DROPPED]}</td></tr>"
        )
    parts.append("</table></body></html>")
    return "".join(parts)
