"""The whole report as one value: `build_report` runs the queries, the rest only reads it.

Every number comes from the database through GROUP BY statements (see
funnel.py, flooding.py and loyalty.py); the report holds only their small
results, so printing, JSON, CSV and the HTML page cost nothing more.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, func, select

from trouw.errors import UserError
from trouw.project import Policy
from trouw.reports.flooding import Pressure, pressure
from trouw.reports.funnel import CampaignFunnel, campaign_funnels
from trouw.reports.loyalty import Loyalty, loyalty_figures
from trouw.reports.periods import Period, bounds, month_periods, year_period
from trouw.segments import Clock
from trouw.sending.ledger import SENT
from trouw.store import ledger, segment_snapshots

FIRST_YEAR = 1900


@dataclass(frozen=True)
class SegmentSize:
    """A saved snapshot of a segment (`trouw segments count --save`)."""

    segment: str
    as_of: date
    size: int
    entered: int
    left: int


@dataclass
class Report:
    name: str
    year: Period
    as_of: date
    caps: Policy
    campaigns: list[CampaignFunnel]
    weekly: Pressure
    monthly: Pressure
    loyalty: Loyalty
    loyalty_months: list[Loyalty]
    segments: list[SegmentSize] = field(default_factory=list)
    ledger_has_sends: bool = False  # any sent row at all, in any year

    @property
    def mail_campaigns(self) -> list[CampaignFunnel]:
        return [campaign for campaign in self.campaigns if not campaign.letters]

    @property
    def letter_campaigns(self) -> list[CampaignFunnel]:
        return [campaign for campaign in self.campaigns if campaign.letters]

    @property
    def sent(self) -> int:
        return sum(c.total.sent for c in self.campaigns)

    def nothing_sent(self) -> str | None:
        """A plain sentence when there are no sends to report on, else None."""
        if not self.ledger_has_sends:
            return "nothing sent yet: the ledger has no sent mails (`trouw send` writes them)"
        if not self.sent:
            return f"nothing sent in {self.year.label} up to {self.as_of}"
        return None


def check_year(year: int, as_of: date) -> None:
    if year < FIRST_YEAR or year > as_of.year:
        raise UserError(
            f"cannot report on the year {year} as of {as_of}",
            key="--year",
            fix=f"give a year from {FIRST_YEAR} to {as_of.year}, or a later --as-of",
        )


def _latest_send(connection: Connection, *, until: date | None = None) -> date | None:
    query = select(func.max(ledger.c.day)).where(ledger.c.status == SENT)
    if until is not None:
        query = query.where(ledger.c.day <= until)
    day = connection.execute(query).scalar()
    # SQLite hands back the day as text when it comes out of an aggregate.
    return day if day is None or isinstance(day, date) else date.fromisoformat(day)


def default_period(
    connection: Connection, *, today: date, year: int | None, as_of: date | None
) -> tuple[int, date, str | None]:
    """The year and as-of day to report on when the options leave them out, and why.

    as-of: today; or the latest send day when the ledger runs ahead of today
    (the demo sends a day of the coming year; `send --as-of` a later day).
    The year: the year of the latest sent mail up to as-of, else as-of's year:
    on 3 January, with nothing sent yet, the report is on the year just ended.
    The sentence says what was chosen, None when the options gave both.
    """
    why = []
    if as_of is None:
        as_of = today
        latest = _latest_send(connection)
        if latest is not None and latest > today:
            as_of = latest
            why.append(f"as of {latest}, the latest send day (today is {today})")
    if year is None:
        latest = _latest_send(connection, until=as_of)
        year = as_of.year if latest is None else latest.year
        if year != as_of.year:
            why.append(f"on {year}, the year of the latest sends")
    if not why:
        return year, as_of, None
    return year, as_of, "reporting " + " and ".join(reversed(why)) + " (--year, --as-of to choose)"


def build_report(
    connection: Connection,
    *,
    name: str,
    year: int,
    as_of: date,
    timezone: ZoneInfo,
    caps: Policy,
) -> Report:
    """The report on `year`, as it stood at the end of `as_of` (in `timezone`)."""
    check_year(year, as_of)
    clock = Clock(as_of, timezone)
    whole = year_period(year, as_of)
    # The year and its months in one pass over the purchases.
    periods = [whole, *month_periods(year, as_of)]
    year_figures, *month_figures = loyalty_figures(
        connection, [bounds(period, clock) for period in periods]
    )
    weekly, monthly = pressure(
        connection,
        whole,
        as_of,
        max_per_week=caps.max_per_week,
        max_per_month=caps.max_per_month,
    )
    return Report(
        name=name,
        year=whole,
        as_of=as_of,
        caps=caps,
        campaigns=campaign_funnels(connection, whole, clock),
        weekly=weekly,
        monthly=monthly,
        loyalty=year_figures,
        loyalty_months=month_figures,
        segments=segment_sizes(connection, whole),
        ledger_has_sends=connection.execute(
            select(ledger.c.id).where(ledger.c.status == SENT).limit(1)
        ).first()
        is not None,
    )


def segment_sizes(connection: Connection, year: Period) -> list[SegmentSize]:
    """Snapshots taken as of a day in the period; the last one taken wins for a day."""
    rows = connection.execute(
        select(
            segment_snapshots.c.segment,
            segment_snapshots.c.as_of,
            segment_snapshots.c.size,
            segment_snapshots.c.entered,
            segment_snapshots.c.left,
        )
        .where(segment_snapshots.c.as_of >= year.first, segment_snapshots.c.as_of <= year.last)
        .order_by(segment_snapshots.c.segment, segment_snapshots.c.as_of, segment_snapshots.c.id)
    )
    latest: dict[tuple[str, date], SegmentSize] = {}
    for segment, day, size, entered, left in rows:
        latest[(segment, day)] = SegmentSize(segment, day, int(size), int(entered), int(left))
    return list(latest.values())
