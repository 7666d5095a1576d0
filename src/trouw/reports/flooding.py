"""The flooding check: mails per contact per week and per month, from the ledger.

Counted: ledger rows with status `sent`, by their `day` (the day the send
run acted for, as the caps count them), every channel. Weeks are ISO weeks
(Monday to Sunday) that overlap the year, counted over all seven days, also
those in the year before or after; months are the year's calendar months.
Both stop at as-of.

The statistics are over the (contact, period) pairs that got at least one
mail: the inboxes that were mailed, not the whole file. (`trouw simulate`
counts every contact and period, zeros included; here the question is how
full the mailed inboxes were.) The 99th percentile is the nearest-rank one.
The database groups by (period, contact) and returns only a histogram per
period, so the cost does not grow with the contacts in Python.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta

from sqlalchemy import Connection, Date, cast, func, select
from sqlalchemy.sql.elements import ColumnElement

from trouw.reports.periods import Period
from trouw.sending.ledger import SENT
from trouw.store import ledger


@dataclass(frozen=True)
class Load:
    """Mails in one week or month: in total, to how many contacts, and per contact."""

    label: str  # "2027-W09" or "2027-03"
    start: date
    sends: int
    contacts: int
    max: int
    p99: int
    mean: float


@dataclass
class Pressure:
    """Mails per (contact, week) or (contact, month) against the cap in trouw.toml."""

    period: str  # "week" or "month"
    cap: int
    max: int = 0
    p99: int = 0
    mean: float = 0.0
    contact_periods: int = 0  # (contact, period) pairs with at least one mail
    over_cap: int = 0  # of which above the cap
    per_period: list[Load] = field(default_factory=list)


Labeller = Callable[[date], str]


def nearest_rank(histogram: Counter[int], share: float) -> int:
    """The smallest value with at least `share` of the histogram's weight at or below it."""
    total = sum(histogram.values())
    if not total:
        return 0
    rank = math.ceil(share * total)
    seen = 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= rank:
            return value
    return max(histogram)  # pragma: no cover - the loop always reaches the rank


def _summed(
    period: str, cap: int, histograms: dict[date, Counter[int]], label: Labeller
) -> Pressure:
    pressure = Pressure(period, cap)
    overall: Counter[int] = Counter()
    for start in sorted(histograms):
        histogram = histograms[start]
        overall.update(histogram)
        contacts = sum(histogram.values())
        sends = sum(mails * n for mails, n in histogram.items())
        pressure.per_period.append(
            Load(
                label(start),
                start,
                sends,
                contacts,
                max(histogram),
                nearest_rank(histogram, 0.99),
                sends / contacts,
            )
        )
    pressure.contact_periods = sum(overall.values())
    if pressure.contact_periods:
        pressure.max = max(overall)
        pressure.p99 = nearest_rank(overall, 0.99)
        pressure.mean = sum(m * n for m, n in overall.items()) / pressure.contact_periods
        pressure.over_cap = sum(n for mails, n in overall.items() if mails > cap)
    return pressure


def week_label(monday: date) -> str:
    year, week, _ = monday.isocalendar()
    return f"{year}-W{week:02d}"


def month_label(first: date) -> str:
    return f"{first.year}-{first.month:02d}"


def pressure(
    connection: Connection, year: Period, as_of: date, *, max_per_week: int, max_per_month: int
) -> tuple[Pressure, Pressure]:
    """(per week, per month) for the `year` period."""
    dialect = connection.dialect.name
    first_monday = year.first - timedelta(days=year.first.weekday())
    last_sunday = min(year.last + timedelta(days=6 - year.last.weekday()), as_of)
    weeks = _histograms(connection, _monday(dialect), first_monday, last_sunday)
    months = _histograms(connection, _first_of_month(dialect), year.first, year.last)
    return (
        _summed("week", max_per_week, weeks, week_label),
        _summed("month", max_per_month, months, month_label),
    )


def _histograms(
    connection: Connection, period_of: ColumnElement[date], first: date, last: date
) -> dict[date, Counter[int]]:
    """Per period start: how many contacts got 1, 2, … mails in it."""
    per_contact = (
        select(period_of.label("period"), func.count().label("mails"))
        .where(ledger.c.status == SENT, ledger.c.day >= first, ledger.c.day <= last)
        .group_by(period_of, ledger.c.contact_id)
        .subquery("per_contact")
    )
    query = select(per_contact.c.period, per_contact.c.mails, func.count()).group_by(
        per_contact.c.period, per_contact.c.mails
    )
    found: dict[date, Counter[int]] = {}
    for start, mails, contacts in connection.execute(query):
        day = start if isinstance(start, date) else date.fromisoformat(str(start))
        found.setdefault(day, Counter())[int(mails)] += int(contacts)
    return found


def _monday(dialect: str) -> ColumnElement[date]:
    """The Monday of the ledger row's day, in the database's own date functions."""
    if dialect == "sqlite":
        # The next Sunday on or after the day, less six days.
        return func.date(ledger.c.day, "weekday 0", "-6 days")
    return cast(func.date_trunc("week", ledger.c.day), Date)


def _first_of_month(dialect: str) -> ColumnElement[date]:
    if dialect == "sqlite":
        return func.date(ledger.c.day, "start of month")
    return cast(func.date_trunc("month", ledger.c.day), Date)
