"""The report's periods: the year up to as-of, and its months.

Periods are local calendar days (the project's time zone); `Bounds` turns one
into the naive UTC moments the events table stores, with the windows the
loyalty figures need around it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from dateutil.relativedelta import relativedelta

from trouw.segments import Clock

# A customer is someone who bought in the 12 months before a moment.
CUSTOMER_WINDOW = relativedelta(months=12)


@dataclass(frozen=True)
class Period:
    """Days `first` … `last` (inclusive), labelled "2027" or "2027-03"."""

    label: str
    first: date
    last: date


@dataclass(frozen=True)
class Bounds:
    """A period as naive UTC moments: [start, end), and the 12-month windows before each."""

    period: Period
    start: datetime
    end: datetime
    customers_at_start: datetime  # a purchase in [this, start) makes a customer at the start
    customers_at_end: datetime  # a purchase in [this, end) makes a customer at the end


def year_period(year: int, as_of: date) -> Period:
    """The year, cut off at as-of when the year is not over yet."""
    return Period(str(year), date(year, 1, 1), min(date(year, 12, 31), as_of))


def month_periods(year: int, as_of: date) -> list[Period]:
    """Every month of the year that has begun by as-of; the current one ends at as-of."""
    periods = []
    for month in range(1, 13):
        first = date(year, month, 1)
        if first > as_of:
            break
        last = first + relativedelta(months=1) - timedelta(days=1)
        periods.append(Period(f"{year}-{month:02d}", first, min(last, as_of)))
    return periods


def bounds(period: Period, clock: Clock) -> Bounds:
    after = period.last + timedelta(days=1)
    return Bounds(
        period=period,
        start=clock.start_of(period.first),
        end=clock.start_of(after),
        customers_at_start=clock.start_of(period.first - CUSTOMER_WINDOW),
        customers_at_end=clock.start_of(after - CUSTOMER_WINDOW),
    )
