"""Building small databases for segment tests, and a naive reference evaluator.

The reference evaluator reads the condition tree and plain Python rows, one
contact at a time: slow and obvious on purpose, so the compiled SQL can be
checked against it.
"""

from __future__ import annotations

from calendar import isleap
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, delete, insert

from trouw.durations import Duration
from trouw.segments.compile import Clock
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
    SegmentRef,
)
from trouw.store import contacts, events, segment_members, segment_snapshots

ZONE = ZoneInfo("Europe/Amsterdam")
NOW = datetime(2027, 1, 1)
CONTACT_DEFAULTS: dict[str, Any] = {
    "email": None, "first_name": None, "last_name": None, "locale": None, "timezone": None,
    "birthday": None, "customer_since": None, "channel": "email", "street": None,
    "postcode": None, "city": None, "country": None, "attributes": {},
}  # fmt: skip
EVENT_DEFAULTS: dict[str, Any] = {
    "tag": None, "url": None, "product": None, "category": None, "amount": None,
    "score": None, "properties": {},
}  # fmt: skip


def local(day: date, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    """A local Amsterdam time as the naive UTC the events table stores."""
    moment = datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=ZONE)
    return moment.astimezone(UTC).replace(tzinfo=None)


def contact(contact_id: str, **fields: Any) -> dict[str, Any]:
    return {**CONTACT_DEFAULTS, "id": contact_id, **fields, "created_at": NOW, "updated_at": NOW}


def event(contact_id: str, kind: str, at: datetime, **fields: Any) -> dict[str, Any]:
    return {**EVENT_DEFAULTS, "contact_id": contact_id, "type": kind, "occurred_at": at, **fields}


def load(
    connection: Connection, people: Sequence[dict[str, Any]], behaviour: Sequence[dict[str, Any]]
) -> None:
    """Replace everything in the database with these contacts and events."""
    for table in (segment_members, segment_snapshots, events, contacts):
        connection.execute(delete(table))
    if people:
        connection.execute(insert(contacts), list(people))
    if behaviour:
        connection.execute(insert(events), list(behaviour))


# ----------------------------------------------------------------------------- reference


def _json_equals(stored: Any, wanted: Any) -> bool:
    if isinstance(wanted, bool):
        return isinstance(stored, bool) and stored == wanted
    if isinstance(wanted, int | float):
        return (
            isinstance(stored, int | float) and not isinstance(stored, bool) and (stored == wanted)
        )
    if isinstance(wanted, date):
        return isinstance(stored, str) and stored == wanted.isoformat()
    return isinstance(stored, str) and stored == wanted


def _op_on_value(op: Op, value: Any, present: bool, kind: str, clock: Clock) -> bool:
    wanted = op.value
    if op.name == "exists":
        return present == wanted
    if op.name == "not_equals":
        return not _op_on_value(Op("equals", wanted, 0), value, present, kind, clock)
    if op.name == "not_in":
        return not _op_on_value(Op("in", wanted, 0), value, present, kind, clock)
    if not present:
        return False
    if op.name == "in":
        assert isinstance(wanted, tuple)
        return any(_op_on_value(Op("equals", w, 0), value, present, kind, clock) for w in wanted)
    if kind == "json":
        if op.name == "equals":
            return _json_equals(value, wanted)
        if op.name == "contains":
            return isinstance(value, str) and str(wanted) in value
        if op.name in ("before", "after"):
            assert isinstance(wanted, date | Duration)
            bound = clock.resolve(wanted).isoformat()
            if not isinstance(value, str):
                return False
            return value < bound if op.name == "before" else value > bound
        if isinstance(wanted, date):
            if not isinstance(value, str):
                return False
            iso = wanted.isoformat()
            return value >= iso if op.name == "at_least" else value <= iso
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        assert isinstance(wanted, int | float)
        return value >= wanted if op.name == "at_least" else value <= wanted
    # plain columns
    if op.name == "equals":
        return bool(value == wanted)
    if op.name == "contains":
        return str(wanted) in value
    if op.name in ("before", "after"):
        assert isinstance(wanted, date | Duration)
        bound = clock.resolve(wanted)
        return value < bound if op.name == "before" else value > bound
    return value >= wanted if op.name == "at_least" else value <= wanted  # type: ignore[no-any-return]


def _number_holds(op: Op, value: float) -> bool:
    wanted = op.value
    if op.name in ("in", "not_in"):
        assert isinstance(wanted, tuple)
        return (value in wanted) == (op.name == "in")
    return {
        "equals": value == wanted,
        "not_equals": value != wanted,
        "at_least": value >= wanted,  # type: ignore[operator]
        "at_most": value <= wanted,  # type: ignore[operator]
    }[op.name]


def _event_matches(condition: Event, row: dict[str, Any], clock: Clock) -> bool:
    if row["type"] != condition.type or row["occurred_at"] >= clock.end:
        return False
    if condition.within is not None and row["occurred_at"] < clock.window_start(condition.within):
        return False
    for name in ("tag", "product", "category"):
        wanted = getattr(condition, name)
        if wanted is not None and row[name] not in wanted:
            return False
    for prop in condition.where:
        if prop.kind == "json":
            props = row["properties"]
            value = props.get(prop.name)
            present = prop.name in props and value is not None
        else:
            value = row[prop.name]
            present = value is not None
        if not all(_op_on_value(op, value, present, prop.kind, clock) for op in prop.ops):
            return False
    return True


def reference_holds(
    condition: Condition,
    person: dict[str, Any],
    behaviour: Sequence[dict[str, Any]],
    clock: Clock,
    catalog: Catalog,
) -> bool:
    """Whether `person` meets `condition`, computed the slow, obvious way."""
    if isinstance(condition, AllOf):
        return all(reference_holds(c, person, behaviour, clock, catalog) for c in condition.items)
    if isinstance(condition, AnyOf):
        return any(reference_holds(c, person, behaviour, clock, catalog) for c in condition.items)
    if isinstance(condition, Not):
        return not reference_holds(condition.item, person, behaviour, clock, catalog)
    if isinstance(condition, SegmentRef):
        where = catalog.get(condition.name).where
        return reference_holds(where, person, behaviour, clock, catalog)
    if isinstance(condition, Attribute):
        if condition.kind == "json":
            attrs = person["attributes"]
            value = attrs.get(condition.name)
            present = condition.name in attrs and value is not None
        else:
            value = person[condition.name]
            present = value is not None
        return all(_op_on_value(op, value, present, condition.kind, clock) for op in condition.ops)
    if isinstance(condition, DateWithin):
        value = person[condition.column]
        if value is None:
            return False
        if condition.column == "customer_since" and value >= clock.as_of:
            return False
        for offset in range(condition.days):
            day = clock.as_of + timedelta(days=offset)
            if (value.month, value.day) == (day.month, day.day):
                return True
            leap_day = (value.month, value.day) == (2, 29)
            if leap_day and (day.month, day.day) == (2, 28) and not isleap(day.year):
                return True
        return False
    mine = [row for row in behaviour if row["contact_id"] == person["id"]]
    if isinstance(condition, Nps):
        answers = [
            row for row in mine
            if row["type"] == "survey" and row["tag"] == "nps" and row["score"] is not None
            and row["occurred_at"] < clock.end
        ]  # fmt: skip
        if not answers:
            return False
        latest = max(answers, key=lambda row: (row["occurred_at"], row["id"]))
        return bool(condition.low <= latest["score"] <= condition.high)
    matching = [row for row in mine if _event_matches(condition, row, clock)]
    if condition.aggregate == "count":
        return all(_number_holds(op, len(matching)) for op in condition.ops)
    if condition.aggregate == "sum":
        total = sum(row["amount"] or 0 for row in matching)
        return all(_number_holds(op, total) for op in condition.ops)
    if not matching:
        return False
    pick = max if condition.aggregate == "days_since_last" else min
    moment = pick(row["occurred_at"] for row in matching)
    days = (clock.as_of - clock.day_of(moment)).days
    return all(_number_holds(op, days) for op in condition.ops)
