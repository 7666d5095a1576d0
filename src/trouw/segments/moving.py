"""Who may join or leave a segment overnight: from the end of day D-1 to the end of day D.

Two things change a segment's members from one day to the next: the day's own
events, and the passing of the day itself, which moves every relative date:
`within: 90d` lets go of the events of D-90, `days_since_last: {at_least: 30}`
turns for those whose last such event was around D-30, `customer_since:
{after: 90d}` lets go of those who joined around D-91, `birthday_within: 7d`
takes in the birthdays of D+6 and lets go of D-1's. Each condition of a
segment gives the contacts for whom it may have turned (a few index range
scans: the events in a band of time, the contacts with a date in a band), and
a contact none of these name is a member on D exactly when they were on D-1.

The answer is a superset (a band is a little wider where that keeps it simple;
deciding one contact too many costs a lookup, one too few a wrong mail), so a
caller that re-evaluates the segment for these contacts alone, and keeps D-1's
answer for the rest, has D's members (planning/watch.py, for `simulate`).
None where a condition moves in ways this does not follow (a relative date in
an event's `where:` or aggregate): the caller evaluates the segment for all.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Select, false, or_, select, union

from trouw.durations import Duration
from trouw.segments.compile import Clock, Compiler, IdSet, day_codes
from trouw.segments.definition import (
    AllOf,
    AnyOf,
    Attribute,
    Catalog,
    Condition,
    DateWithin,
    Event,
    Not,
    Nps,
    Op,
    Segment,
    SegmentRef,
)
from trouw.store import contacts, events

Parts = list[Select[tuple[str]]]


def overnight(
    segment: Segment, catalog: Catalog, day: date, tz: ZoneInfo, dialect: str
) -> IdSet | None:
    """The ids of the contacts whose membership of `segment` may differ between the end of
    `day` - 1 and the end of `day` (a superset); None: anyone's may (evaluate all)."""
    parts = _Overnight(catalog, day, tz, dialect).parts(segment.where, frozenset({segment.name}))
    if parts is None:
        return None
    if not parts:
        return select(contacts.c.id).where(false())
    return parts[0] if len(parts) == 1 else union(*parts)


def _dated(ops: Sequence[Op]) -> bool:
    return any(isinstance(op.value, Duration) for op in ops)


class _Overnight:
    def __init__(self, catalog: Catalog, day: date, tz: ZoneInfo, dialect: str) -> None:
        self.catalog = catalog
        self.day = day
        self.before = Clock(day - timedelta(days=1), tz)
        self.after = Clock(day, tz)
        self.compiler = Compiler(catalog, self.after, dialect)

    def parts(self, condition: Condition, seen: frozenset[str]) -> Parts | None:
        if isinstance(condition, AllOf | AnyOf):
            found: Parts = []
            for item in condition.items:
                more = self.parts(item, seen)
                if more is None:
                    return None
                found.extend(more)
            return found
        if isinstance(condition, Not):
            return self.parts(condition.item, seen)
        if isinstance(condition, SegmentRef):
            if condition.name in seen:
                return None
            referred = self.catalog.get(condition.name).where
            return self.parts(referred, seen | {condition.name})
        if isinstance(condition, Event):
            return self.event(condition)
        if isinstance(condition, Nps):
            answers = self.compiler.nps_answers(events)
            return [
                select(events.c.contact_id).where(*answers, events.c.occurred_at >= self.before.end)
            ]
        if isinstance(condition, Attribute):
            return self.attribute(condition)
        return self.date_within(condition)

    def event(self, condition: Event) -> Parts | None:
        """The contacts with such an event in a band of time where a boundary moved: the
        day itself (the end of the window), the start of `within`, the days since."""
        if _dated(condition.ops) or any(_dated(prop.ops) for prop in condition.where):
            return None
        bands: list[tuple[datetime, datetime]] = [(self.before.end, self.after.end)]
        if condition.within is not None:
            bands.append(
                (
                    self.before.window_start(condition.within),
                    self.after.window_start(condition.within),
                )
            )
        if condition.aggregate.startswith("days_since"):
            # `days_since_op` compares the moment with the starts of D-n and D-n+1 for
            # every n it names; overnight they move back a day each.
            for n in _numbers(condition.ops):
                low, high = self.day - timedelta(days=n + 1), self.day - timedelta(days=n - 1)
                bands.append((self.after.start_of(low), self.after.start_of(high)))
        kind = self.compiler.event_kind(condition)
        moment = events.c.occurred_at
        return [
            select(events.c.contact_id).where(*kind, moment >= low, moment < high)
            for low, high in bands
            if low < high
        ]

    def attribute(self, condition: Attribute) -> Parts:
        """`before: 90d` / `after: 90d`: the contacts whose date lies between the two
        days' bounds."""
        bounds = [
            (op.value.before(self.before.as_of), op.value.before(self.after.as_of))
            for op in condition.ops
            if isinstance(op.value, Duration)
        ]
        if not bounds:
            return []
        if condition.kind == "json":
            value = self.compiler.json_text(contacts.c.attributes, condition.name)
            inside = [value.between(low.isoformat(), high.isoformat()) for low, high in bounds]
        else:
            column = contacts.c[condition.name]
            inside = [column.between(low, high) for low, high in bounds]
        return [select(contacts.c.id).where(or_(*inside))]

    def date_within(self, condition: DateWithin) -> Parts:
        """The dates whose month and day left the window (D-1) or came into it (D+days-1);
        D-1 also covers `customer_since` no longer being today."""
        last = self.day + timedelta(days=condition.days - 1)
        codes = sorted({*(day_codes(self.before.as_of, 1) or []), *(day_codes(last, 1) or [])})
        column = contacts.c[condition.column]
        return [select(contacts.c.id).where(self.compiler.month_day(column).in_(codes))]


def _numbers(ops: Sequence[Op]) -> list[int]:
    found: list[int] = []
    for op in ops:
        values = op.value if isinstance(op.value, tuple) else (op.value,)
        found.extend(int(v) for v in values if isinstance(v, int | float))
    return found


__all__ = ["overnight"]
