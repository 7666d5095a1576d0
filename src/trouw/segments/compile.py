"""A segment compiled to one SQLAlchemy Core select of contact ids.

Every condition becomes a predicate on the `contacts` row that is never NULL
(true or false, nothing in between), so `not:` is an exact complement: "no
purchase in 180 days" includes contacts without any events at all.

Time is settled in Python, never in SQL: as-of D is the end of day D in the
project's time zone, and every window boundary is converted to the naive UTC
that `events.occurred_at` stores, then bound as a parameter. The only
dialect-specific pieces are JSON access and the month-day of a date, each in
one small helper below.
"""

from __future__ import annotations

import json
from calendar import isleap
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Boolean,
    ColumnElement,
    CompoundSelect,
    Float,
    Integer,
    Select,
    String,
    and_,
    case,
    cast,
    except_,
    false,
    func,
    intersect,
    literal,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB, distinct_on
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.expression import FromClause

from trouw.durations import Duration
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
    Property,
    Scalar,
    Segment,
    SegmentRef,
)
from trouw.store import contacts, events

Predicate = ColumnElement[bool]
IdSet = Select[tuple[str]] | CompoundSelect[tuple[str]]


@dataclass(frozen=True)
class Clock:
    """As-of day D in a time zone; turns days into the naive UTC the events table stores."""

    as_of: date
    tz: ZoneInfo

    def start_of(self, day: date) -> datetime:
        local = datetime.combine(day, time(0), tzinfo=self.tz)
        return local.astimezone(UTC).replace(tzinfo=None)

    @property
    def end(self) -> datetime:
        """The first moment after day D: events at or after it are ignored."""
        return self.start_of(self.as_of + timedelta(days=1))

    def window_start(self, within: Duration) -> datetime:
        """`within: 30d` covers days D-29 … D: the window starts at the start of D-29."""
        return self.start_of(within.before(self.as_of) + timedelta(days=1))

    def day_of(self, moment: datetime) -> date:
        """The local day of a stored (naive UTC) moment."""
        return moment.replace(tzinfo=UTC).astimezone(self.tz).date()

    def resolve(self, value: date | Duration) -> date:
        """`before: 90d` means before the day 90 days before as-of."""
        return value.before(self.as_of) if isinstance(value, Duration) else value


def holds(op: Op, value: float) -> bool:
    """Whether a number (an aggregate) meets an aggregate operator; used for counts of zero."""
    target = op.value
    if op.name in ("in", "not_in"):
        assert isinstance(target, tuple)
        inside = any(value == v for v in target)
        return inside if op.name == "in" else not inside
    assert isinstance(target, int | float)
    return {
        "equals": value == target,
        "not_equals": value != target,
        "at_least": value >= target,
        "at_most": value <= target,
    }[op.name]


def day_codes(first: date, days: int) -> list[int] | None:
    """Month*100+day of every day in first … first+days-1; None when that is every day.

    A 29 February date falls on 28 February in years without one, so 229 joins
    the codes when the window holds a non-leap 28 February.
    """
    if days >= 366:
        return None
    codes = set()
    for offset in range(days):
        day = first + timedelta(days=offset)
        codes.add(day.month * 100 + day.day)
        if day.month == 2 and day.day == 28 and not isleap(day.year):
            codes.add(229)
    return sorted(codes)


def code_ranges(codes: Sequence[int]) -> list[tuple[int, int]]:
    """Runs of consecutive codes as (first, last); a window over New Year gives two."""
    ranges: list[tuple[int, int]] = []
    for code in codes:
        if ranges and ranges[-1][1] + 1 == code:
            ranges[-1] = (ranges[-1][0], code)
        else:
            ranges.append((code, code))
    return ranges


def _is_true(expression: ColumnElement[bool]) -> Predicate:
    """NULL becomes false, so a negation of this predicate is the exact complement."""
    return func.coalesce(expression, false(), type_=Boolean)


class Compiler:
    """Compiles conditions for one as-of day and one SQL dialect."""

    def __init__(
        self,
        catalog: Catalog,
        clock: Clock,
        dialect: str,
        chunk: tuple[str, str] | None = None,
    ) -> None:
        self.catalog = catalog
        self.clock = clock
        self.dialect = dialect
        # The first and last contact id of a chunk (planning, sending): the sets below then
        # read only the chunk's events (chunk_members_query).
        self.chunk = chunk

    def members(self, segment: Segment) -> Select[tuple[str]]:
        return select(contacts.c.id).where(self.predicate(segment.where))

    def member_ids(self, segment: Segment) -> IdSet:
        """The members' ids, to count: on PostgreSQL straight from the events when the
        segment is made of event and NPS sets alone, as a hand-written count would be."""
        if self.dialect == "postgresql":
            found = self.member_set(segment.where)
            if found is not None:
                return found
        return self.members(segment)

    def predicate(self, condition: Condition) -> Predicate:
        if isinstance(condition, AllOf):
            return and_(*(self.predicate(item) for item in condition.items))
        if isinstance(condition, AnyOf):
            return or_(*(self.predicate(item) for item in condition.items))
        if isinstance(condition, Not):
            return not_(self.predicate(condition.item))
        if isinstance(condition, SegmentRef):
            # Inlined: the referenced segment's predicate on the same contacts row.
            return self.predicate(self.catalog.get(condition.name).where)
        if isinstance(condition, Attribute):
            return and_(*(self.attribute_op(condition, op) for op in condition.ops))
        if isinstance(condition, Event):
            return self.event(condition)
        if isinstance(condition, DateWithin):
            return self.date_within(condition)
        return self.nps(condition)

    # ------------------------------------------------------------------ sets (PostgreSQL)
    #
    # A count of a whole segment made of event and NPS conditions reads the events
    # alone: each condition is one set of contact ids (an index range scan, hashed
    # once), the `all:` of them `P1 INTERSECT P2 … EXCEPT N1 …`, as a hand-written
    # count is; an EXISTS and a NOT EXISTS per contact probe the events index once per
    # contact and side (cart-abandoners was 3.4x the hand-written EXCEPT). Exact,
    # because every event's contact_id is a contact (a foreign key, NOT NULL). A chunk
    # of contacts (planning, sending) takes the same sets with the chunk's id range on
    # the events (`chunk`), which PostgreSQL reads as one range of the contact-first
    # index: the per-contact shape was misplanned there as a scan of every matching
    # event of the shop per chunk, or probed the index once per contact
    # (chunk_members_query).

    def split_sets(
        self, items: Sequence[Condition | Quiet]
    ) -> tuple[list[Select[tuple[str]]], list[Select[tuple[str]]], list[Predicate]]:
        """The items as sets members are inside, sets they are outside, and the rest."""
        inside: list[Select[tuple[str]]] = []
        outside: list[Select[tuple[str]]] = []
        rest: list[Predicate] = []
        for item in items:
            found = self.contact_set(item)
            if found is None:
                assert not isinstance(item, Quiet)  # always a set
                rest.append(self.predicate(item))
            else:
                (inside if found[1] else outside).append(found[0])
        return inside, outside, rest

    def member_set(self, condition: Condition) -> IdSet | None:
        """PostgreSQL: the members as a set of distinct contact ids read from the events
        alone, when the whole condition is one (no contacts row needed to count them);
        else None."""
        if isinstance(condition, SegmentRef):
            return self.member_set(self.catalog.get(condition.name).where)
        if isinstance(condition, AllOf):
            inside, outside, rest = self.split_sets(self.fold_quiet_windows(condition.items))
            if not inside or rest:
                return None
            if len(inside) + len(outside) == 1:
                return inside[0].distinct()
            return _combine(inside, outside)
        found = self.contact_set(condition)
        if found is None or not found[1]:
            return None
        return found[0].distinct()

    def fold_quiet_windows(self, items: tuple[Condition, ...]) -> list[Condition | Quiet]:
        """ "Bought twice, but not in the last 180 days": a grouped event condition and a
        "none within W" of the same events become one grouped set with `HAVING
        max(occurred_at) < start of W` (a `Quiet`), not the set minus a second scan of
        the same events (lapsed-buyers was 1.5x the hand-written GROUP BY)."""
        folded: list[Condition | Quiet | None] = list(items)
        for index, item in enumerate(items):
            if not (isinstance(item, Event) and item.within is not None and _none_of(item)):
                continue
            since = self.clock.window_start(item.within)
            for other, candidate in enumerate(folded):
                grouped = candidate.event if isinstance(candidate, Quiet) else candidate
                if (
                    isinstance(grouped, Event)
                    and _grouped_inside(grouped)
                    and _same_events(grouped, item)
                    and (grouped.within is None or self.clock.window_start(grouped.within) <= since)
                ):
                    before = min(since, candidate.before) if isinstance(candidate, Quiet) else since
                    folded[other] = Quiet(grouped, before)
                    folded[index] = None  # folded into the grouped set
                    break
        return [f for f in folded if f is not None]

    def contact_set(self, condition: Condition | Quiet) -> tuple[Select[tuple[str]], bool] | None:
        """PostgreSQL: an event or NPS condition as (the contact ids of a set, inside?).

        None for other conditions and for counts every contact meets or none does.
        """
        if isinstance(condition, SegmentRef):
            return self.contact_set(self.catalog.get(condition.name).where)
        if isinstance(condition, Not):
            found = self.contact_set(condition.item)
            return None if found is None else (found[0], not found[1])
        if isinstance(condition, Nps):
            return self.latest_nps(condition), True
        if isinstance(condition, Quiet):
            found = self.contact_set(condition.event)
            assert found is not None and found[1]
            return found[0].having(func.max(events.c.occurred_at) < condition.before), True
        if not isinstance(condition, Event):
            return None
        filters = [*self.event_filters(condition), *self.in_chunk(events)]
        for_any = _truth_for_any(condition.ops) if condition.aggregate == "count" else None
        if for_any is not None:
            if for_any == all(holds(op, 0) for op in condition.ops):
                return None
            return select(events.c.contact_id).where(*filters), for_any
        grouped = select(events.c.contact_id).where(*filters).group_by(events.c.contact_id)
        aggregate = self.aggregate(condition)
        if condition.aggregate in ("count", "sum"):
            met = and_(*(_number_op(aggregate, op) for op in condition.ops))
            # Contacts without matching events have count and sum 0: when 0 meets the
            # condition they are members, so the set is of the contacts that do not meet it.
            if all(holds(op, 0) for op in condition.ops):
                return grouped.having(not_(met)), False
            return grouped.having(met), True
        met = and_(*(self.days_since_op(aggregate, op) for op in condition.ops))
        return grouped.having(met), True

    # ------------------------------------------------------------------ attributes

    def attribute_op(self, condition: Attribute, op: Op) -> Predicate:
        if condition.kind == "json":
            return self.json_op(contacts.c.attributes, condition.name, op)
        return self.column_op(contacts.c[condition.name], op)

    def column_op(self, column: ColumnElement[Any], op: Op) -> Predicate:
        """An operator on a plain column; NULL (missing) meets only the negative operators."""
        value = op.value
        if op.name == "exists":
            return column.is_not(None) if value else column.is_(None)
        if op.name in ("not_equals", "not_in"):
            positive = Op("equals" if op.name == "not_equals" else "in", value, op.line)
            return not_(self.column_op(column, positive))
        if op.name == "equals":
            return _is_true(column == value)
        if op.name == "in":
            assert isinstance(value, tuple)
            return _is_true(column.in_(value))
        if op.name == "contains":
            assert isinstance(value, str)
            return _is_true(self.position(column, value) > 0)
        if op.name in ("before", "after"):
            assert isinstance(value, date | Duration)
            bound = self.clock.resolve(value)
            return _is_true(column < bound if op.name == "before" else column > bound)
        return _is_true(column >= value if op.name == "at_least" else column <= value)

    def position(self, column: ColumnElement[Any], text: str) -> ColumnElement[Any]:
        # Case-sensitive on both: SQLite's LIKE ignores ASCII case, PostgreSQL's does not.
        if self.dialect == "postgresql":
            return func.strpos(column, text, type_=Integer)
        return func.instr(column, text, type_=Integer)

    # ------------------------------------------------------------------ JSON values

    def json_op(self, document: ColumnElement[Any], name: str, op: Op) -> Predicate:
        """An operator on a JSON value; it matches only values of the operand's JSON type."""
        value = op.value
        if op.name == "exists":
            present = self.json_present(document, name)
            return present if value else not_(present)
        if op.name in ("not_equals", "not_in"):
            positive = Op("equals" if op.name == "not_equals" else "in", value, op.line)
            return not_(self.json_op(document, name, positive))
        if op.name == "in":
            assert isinstance(value, tuple)
            return or_(*(self.json_equals(document, name, v) for v in value))
        if op.name == "equals":
            assert not isinstance(value, tuple | Duration)
            return self.json_equals(document, name, value)
        if op.name == "contains":
            assert isinstance(value, str)
            return _is_true(self.position(self.json_text(document, name), value) > 0)
        if op.name in ("before", "after"):
            assert isinstance(value, date | Duration)
            # Dates in attributes are ISO text, which sorts like the dates themselves.
            bound = self.clock.resolve(value).isoformat()
            text = self.json_text(document, name)
            return _is_true(text < bound if op.name == "before" else text > bound)
        assert isinstance(value, int | float | date)
        if isinstance(value, date):
            text = self.json_text(document, name)
            iso = value.isoformat()
            return _is_true(text >= iso if op.name == "at_least" else text <= iso)
        number = self.json_number(document, name)
        return _is_true(number >= value if op.name == "at_least" else number <= value)

    def json_present(self, document: ColumnElement[Any], name: str) -> Predicate:
        """Whether the key is there with a value other than JSON null."""
        if self.dialect == "postgresql":
            kind = func.jsonb_typeof(document.op("->")(literal(name, String)), type_=String)
        else:
            kind = func.json_type(document, _path(name), type_=String)
        return _is_true(kind != "null")

    def json_text(self, document: ColumnElement[Any], name: str) -> ColumnElement[Any]:
        """A JSON string value as text; NULL for other types."""
        if self.dialect == "postgresql":
            node = document.op("->")(literal(name, String))
            return _case_when(
                func.jsonb_typeof(node) == "string",
                document.op("->>", return_type=String)(literal(name, String)),
            )
        path = _path(name)
        return _case_when(
            func.json_type(document, path) == "text",
            func.json_extract(document, path, type_=String),
        )

    def json_number(self, document: ColumnElement[Any], name: str) -> ColumnElement[Any]:
        """A JSON number as a number; NULL for other types (true is not 1 here)."""
        if self.dialect == "postgresql":
            node = document.op("->")(literal(name, String))
            return _case_when(
                func.jsonb_typeof(node) == "number",
                cast(document.op("->>", return_type=String)(literal(name, String)), Float),
            )
        path = _path(name)
        return _case_when(
            func.json_type(document, path).in_(("integer", "real")),
            func.json_extract(document, path, type_=Float),
        )

    def json_equals(self, document: ColumnElement[Any], name: str, value: Scalar) -> Predicate:
        stored = value.isoformat() if isinstance(value, date) else value
        if self.dialect == "postgresql":
            # Containment compares JSON types exactly (5 is not "5", true is not 1).
            probe = cast(literal(json.dumps({name: stored}), String), JSONB)
            return document.op("@>", return_type=Boolean)(probe)
        path = _path(name)
        if isinstance(stored, bool):
            return _is_true(func.json_type(document, path) == ("true" if stored else "false"))
        if isinstance(stored, str):
            # json_extract gives text only for JSON strings, and text never equals a number.
            return _is_true(func.json_extract(document, path, type_=String) == stored)
        return _is_true(self.json_number(document, name) == stored)

    # ------------------------------------------------------------------ events

    def event_filters(self, condition: Event) -> list[Predicate]:
        """The WHERE of an event condition: type, time window, tag/product/category, where."""
        kind = self.event_kind(condition)
        filters: list[Predicate] = [kind[0], events.c.occurred_at < self.clock.end]
        if condition.within is not None:
            filters.append(events.c.occurred_at >= self.clock.window_start(condition.within))
        return [*filters, *kind[1:]]

    def event_kind(self, condition: Event) -> list[Predicate]:
        """Which events a condition reads, whenever they occurred: the type (first), then
        tag/product/category and its `where:` properties."""
        filters: list[Predicate] = [events.c.type == condition.type]
        for name in ("tag", "product", "category"):
            wanted: tuple[str, ...] | None = getattr(condition, name)
            if wanted is not None:
                column = events.c[name]
                filters.append(column == wanted[0] if len(wanted) == 1 else column.in_(wanted))
        for prop in condition.where:
            filters.extend(self.property_op(prop, op) for op in prop.ops)
        return filters

    def property_op(self, prop: Property, op: Op) -> Predicate:
        if prop.kind == "json":
            return self.json_op(events.c.properties, prop.name, op)
        return self.column_op(events.c[prop.name], op)

    def event(self, condition: Event) -> Predicate:
        """An event condition as a predicate on the contacts row.

        "At least once" and "never" are a correlated EXISTS / NOT EXISTS; other
        aggregates a correlated subquery: one probe of ix_events_contact_type_time
        (contact_id, type, occurred_at) per contact, on both dialects. So a chunk
        of contacts costs its own events: PostgreSQL cannot push the chunk's id
        range on the contacts into a grouped `id IN (… GROUP BY contact_id)`,
        which read every matching event of the shop for each chunk (lapsed-buyers
        33 ms per 500 contacts at 20k contacts, now 2 ms). A count of the whole
        segment on PostgreSQL hash-aggregates instead (`member_set`), and so do a
        chunk's members there, with the range on the events (chunk_members_query).
        """
        filters = self.event_filters(condition)
        for_any = _truth_for_any(condition.ops) if condition.aggregate == "count" else None
        if for_any is not None:
            at_zero = all(holds(op, 0) for op in condition.ops)
            if for_any == at_zero:
                # Every count meets it (at_least 0) or none does (equals 0 and equals 1).
                return true() if at_zero else false()
            # "Any?" or "none?". SELECT 1, not *: SQLite answers from the index alone.
            own = select(literal(1)).where(events.c.contact_id == contacts.c.id, *filters)
            return own.exists() if for_any else not_(own.exists())
        own = select(self.aggregate(condition)).where(
            events.c.contact_id == contacts.c.id, *filters
        )
        value = own.scalar_subquery()
        if condition.aggregate in ("count", "sum"):
            # Never NULL: count is 0 and the sum is coalesced to 0 without events.
            return and_(*(_number_op(value, op) for op in condition.ops))
        # days_since_last/first: without matching events there is no value, so no match.
        return _is_true(and_(*(self.days_since_op(value, op) for op in condition.ops)))

    def aggregate(self, condition: Event) -> ColumnElement[Any]:
        """The aggregate over one contact's matching events (over a group of them)."""
        if condition.aggregate == "count":
            return func.count()
        if condition.aggregate == "sum":
            return func.coalesce(func.sum(events.c.amount), 0)
        if condition.aggregate == "days_since_last":
            return func.max(events.c.occurred_at)
        return func.min(events.c.occurred_at)

    def days_since_op(self, moment: ColumnElement[Any], op: Op) -> Predicate:
        """`days_since_last OP n` as comparisons of the moment with day boundaries.

        n days since means the event's local day is D-n: the moment lies in
        [start of D-n, start of D-n+1). No date arithmetic happens in SQL.
        """

        def day_start(days: int) -> datetime:
            return self.clock.start_of(self.clock.as_of - timedelta(days=days))

        def on_day(days: int) -> Predicate:
            return and_(moment >= day_start(days), moment < day_start(days - 1))

        value = op.value
        if op.name in ("in", "not_in"):
            assert isinstance(value, tuple)
            inside = or_(*(on_day(int(v)) for v in value))  # type: ignore[arg-type]
            return inside if op.name == "in" else not_(inside)
        assert isinstance(value, int)
        if op.name == "equals":
            return on_day(value)
        if op.name == "not_equals":
            return not_(on_day(value))
        if op.name == "at_least":
            return moment < day_start(value - 1)
        return moment >= day_start(value)  # at_most

    # ------------------------------------------------------------------ dates and NPS

    def month_day(self, column: ColumnElement[Any]) -> ColumnElement[Any]:
        """month*100+day of a date column."""
        if self.dialect == "postgresql":
            return cast(func.extract("month", column) * 100 + func.extract("day", column), Integer)
        return cast(func.strftime("%m%d", column), Integer)

    def date_within(self, condition: DateWithin) -> Predicate:
        column = contacts.c[condition.column]
        checks: list[Predicate] = [column.is_not(None)]
        if condition.column == "customer_since":
            # The day someone became a customer is not their anniversary.
            checks.append(column < self.clock.as_of)
        codes = day_codes(self.clock.as_of, condition.days)
        if codes is not None:
            code = self.month_day(column)
            checks.append(
                or_(
                    *(
                        code == first if first == last else code.between(first, last)
                        for first, last in code_ranges(codes)
                    )
                )
            )
        return and_(*checks)

    def nps(self, condition: Nps) -> Predicate:
        """The class of each contact's latest scored NPS answer.

        Latest means the greatest occurred_at; of answers at the same moment the
        later-inserted row (the greater events.id) wins, so re-importing a
        corrected answer replaces the earlier one. Both dialects read the latest
        answer per contact with one backwards probe of ix_events_contact_type_time
        (SQLite's entries for one moment are in rowid order), so a chunk of
        contacts (planning) or one contact costs only its own answers; a count
        of the whole segment on PostgreSQL takes `latest_nps` instead.
        """
        score = (
            select(events.c.score)
            .where(events.c.contact_id == contacts.c.id, *self.nps_answers(events))
            .order_by(events.c.occurred_at.desc(), events.c.id.desc())
            .limit(1)
            .scalar_subquery()
        )
        return _is_true(score.between(condition.low, condition.high))

    def latest_nps(self, condition: Nps) -> Select[tuple[str]]:
        """PostgreSQL: the contacts whose latest answer is in the class, by DISTINCT ON.

        One pass over the scored answers, sorted (or hashed) per contact; an
        anti-join against any newer answer (the shape before) was misestimated
        on the score/tag filter and probed the events index once per answer.
        """
        latest = (
            select(events.c.contact_id, events.c.score)
            .where(*self.nps_answers(events), *self.in_chunk(events))
            .ext(distinct_on(events.c.contact_id))
            .order_by(events.c.contact_id, events.c.occurred_at.desc(), events.c.id.desc())
            .subquery("latest")
        )
        return select(latest.c.contact_id).where(
            latest.c.score.between(condition.low, condition.high)
        )

    def in_chunk(self, table: FromClause) -> list[Predicate]:
        """The rows of the chunk's contacts, if the compiler is for a chunk."""
        if self.chunk is None:
            return []
        first, last = self.chunk
        return [table.c.contact_id >= first, table.c.contact_id <= last]

    def nps_answers(self, table: FromClause) -> list[Predicate]:
        """The rows that count as NPS answers as of D: scored surveys tagged nps."""
        return [
            table.c.type == "survey",
            table.c.tag == "nps",
            table.c.score.is_not(None),
            table.c.occurred_at < self.clock.end,
        ]


@dataclass(frozen=True)
class Quiet:
    """A grouped event condition whose matching events all lie before `before`."""

    event: Event
    before: datetime


def _none_of(condition: Condition | Quiet) -> bool:
    """Whether the condition is "no such event" (count 0 meets it, any count ≥ 1 fails)."""
    return (
        isinstance(condition, Event)
        and condition.aggregate == "count"
        and _truth_for_any(condition.ops) is False
        and all(holds(op, 0) for op in condition.ops)
    )


def _grouped_inside(event: Event) -> bool:
    """Whether the condition is a grouped set its members are inside (see contact_set)."""
    if event.aggregate == "count" and _truth_for_any(event.ops) is not None:
        return False
    if event.aggregate in ("count", "sum"):
        return not all(holds(op, 0) for op in event.ops)
    return True


def _same_events(first: Event, second: Event) -> bool:
    """The same events but for the time window (no `where:` properties, to keep it plain)."""
    return (
        (first.type, first.tag, first.product, first.category)
        == (second.type, second.tag, second.product, second.category)
        and not first.where
        and not second.where
    )


def _combine(inside: list[Select[tuple[str]]], outside: list[Select[tuple[str]]]) -> IdSet:
    """`P1 INTERSECT P2 … EXCEPT N1 EXCEPT N2 …`: distinct ids, each set hashed once."""
    members: IdSet = intersect(*inside) if len(inside) > 1 else inside[0]
    return except_(members, *outside) if outside else members


def _path(name: str) -> str:
    # Names are checked against [A-Za-z_][A-Za-z0-9_-]*, so quoting cannot break out.
    return f'$."{name}"'


def _case_when(condition: Predicate, then: ColumnElement[Any]) -> ColumnElement[Any]:
    return case((condition, then), else_=None)


def _number_op(aggregate: ColumnElement[Any], op: Op) -> Predicate:
    value = op.value
    if op.name == "in":
        assert isinstance(value, tuple)
        return aggregate.in_(value)
    if op.name == "not_in":
        assert isinstance(value, tuple)
        return aggregate.not_in(value)
    return {
        "equals": aggregate == value,
        "not_equals": aggregate != value,
        "at_least": aggregate >= value,
        "at_most": aggregate <= value,
    }[op.name]


def _truth_for_any(ops: tuple[Op, ...]) -> bool | None:
    """A count condition's truth, when it is the same for every count ≥ 1; else None."""
    numbers = [
        float(v)
        for op in ops
        for v in (op.value if isinstance(op.value, tuple) else (op.value,))
        if isinstance(v, int | float)
    ]
    top = int(max(numbers, default=0)) + 2
    outcomes = {all(holds(op, k) for op in ops) for k in range(1, top)}
    return outcomes.pop() if len(outcomes) == 1 else None


def members_query(
    segment: Segment, catalog: Catalog, clock: Clock, dialect: str
) -> Select[tuple[str]]:
    """The one select of the segment's contact ids, as of `clock.as_of`."""
    return Compiler(catalog, clock, dialect).members(segment)


def chunk_members_query(
    segment: Segment, catalog: Catalog, clock: Clock, dialect: str, first: str, last: str
) -> IdSet:
    """The segment's members among the contacts with ids from `first` to `last` (a chunk).

    On PostgreSQL, a segment made of event and NPS conditions alone is read from the
    chunk's events as sets (Compiler.member_set with `chunk`). At 200,000 contacts, a
    chunk of 10,000 took 170 ms for fire-safety-prospects in the per-contact shape
    (PostgreSQL read every matching click of the shop for each chunk) and takes 20-30 ms
    as sets; detractors took 100-130 ms and takes 15-20 ms. Other segments keep the
    per-contact shape, as SQLite does for all (tests/segments/test_plans.py).
    """
    if dialect == "postgresql":
        found = Compiler(catalog, clock, dialect, (first, last)).member_set(segment.where)
        if found is not None:
            return found
    return members_query(segment, catalog, clock, dialect).where(
        contacts.c.id >= first, contacts.c.id <= last
    )


def member_ids_query(segment: Segment, catalog: Catalog, clock: Clock, dialect: str) -> IdSet:
    """The segment's member ids in the cheapest shape to count (see Compiler.member_ids)."""
    return Compiler(catalog, clock, dialect).member_ids(segment)


def segment_sql(segment: Segment, catalog: Catalog, clock: Clock, dialect: Dialect) -> str:
    """The compiled SQL with its parameters written in, for reading and for running by hand."""
    query = members_query(segment, catalog, clock, dialect.name)
    compiled = query.compile(dialect=dialect, compile_kwargs={"literal_binds": True})
    return str(compiled)
