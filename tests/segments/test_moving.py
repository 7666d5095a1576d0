"""Who may join or leave a segment overnight (segments/moving.py): a contact it does not name
is a member on day D exactly when they were on D-1, for random conditions and data on the
edges of every window of both days (simulate reuses the day before's members for them)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from tests.segments.helpers import ZONE, contact, event, load, reference_holds
from tests.segments.test_property import (
    AS_OF,
    DURATIONS,
    _catalog,
    count_ops,
    date_windows,
    day_ops,
    moments,
    nps_classes,
    some_dates,
    sum_ops,
)
from trouw.durations import Duration
from trouw.segments.compile import Clock
from trouw.segments.definition import (
    AllOf,
    Attribute,
    Condition,
    Event,
    Not,
    Op,
    Property,
    Segment,
)
from trouw.segments.moving import overnight

CONTACT_IDS = [f"c{i}" for i in range(8)]


@st.composite
def dated_events(draw: st.DrawFn) -> Event:
    """Plain purchases (no tag or where: every drawn event counts) in windows, or days since."""
    aggregate = draw(st.sampled_from(["count", "sum", "days_since_last", "days_since_first"]))
    ops_strategy = {"count": count_ops, "sum": sum_ops}.get(aggregate, day_ops)
    if aggregate == "count":  # "any" and "none", the most common, more often
        ops_strategy = st.one_of(st.sampled_from([Op("at_least", 1, 1), Op("equals", 0, 1)]),
                                 ops_strategy)  # fmt: skip
    return Event(
        type="purchase", within=draw(st.one_of(st.none(), st.sampled_from(DURATIONS))),
        tag=None, product=None, category=None, where=(), aggregate=aggregate,
        ops=tuple(draw(st.lists(ops_strategy, min_size=1, max_size=2))), line=1,
    )  # fmt: skip


relative = st.builds(
    lambda name, value: Op(name, value, 1),
    st.sampled_from(["before", "after"]),
    st.sampled_from([Duration(1, "d"), Duration(30, "d"), Duration(3, "mo"), Duration(1, "y")]),
)
leaves: st.SearchStrategy[Condition] = st.one_of(
    dated_events(),
    st.builds(lambda op: Attribute("customer_since", "date", (op,), 1), relative),
    st.builds(lambda op: Attribute("joined", "json", (op,), 1), relative),
    date_windows,
    nps_classes,
)
conditions = st.one_of(
    leaves,
    leaves.map(lambda c: Not(c, 1)),
    st.lists(leaves, min_size=2, max_size=3).map(lambda items: AllOf(tuple(items), 1)),
)


@st.composite
def scenarios(
    draw: st.DrawFn,
) -> tuple[date, list[dict[str, Any]], list[dict[str, Any]], Condition]:
    """Contacts with dates near as-of; purchases and NPS answers on the edges of the windows
    of as-of and of the day after."""
    as_of = draw(st.sampled_from(AS_OF))
    who = []
    for contact_id in CONTACT_IDS[: draw(st.integers(1, len(CONTACT_IDS)))]:
        joined = draw(some_dates(as_of))
        who.append(
            contact(
                contact_id,
                birthday=draw(some_dates(as_of)),
                customer_since=draw(some_dates(as_of)),
                attributes={} if joined is None else {"joined": joined.isoformat()},
            )
        )
    what = []
    for number in range(1, draw(st.integers(0, 12)) + 1):
        when = draw(moments(as_of) if draw(st.booleans()) else moments(as_of + timedelta(days=1)))
        survey = draw(st.booleans())
        what.append(
            event(
                draw(st.sampled_from([p["id"] for p in who])), "survey" if survey else "purchase",
                when, id=number, tag="nps" if survey else None,
                amount=draw(st.sampled_from([5.0, 20.0])),
                score=draw(st.integers(0, 10)) if survey else None,
            )
        )  # fmt: skip
    return as_of, who, what, draw(conditions)


def _members(
    condition: Condition, who: list[dict[str, Any]], what: list[dict[str, Any]], day: date
) -> set[str]:
    clock = Clock(day, ZONE)
    return {p["id"] for p in who if reference_holds(condition, p, what, clock, _catalog())}


@settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenario=scenarios())
def test_whoever_overnight_leaves_out_is_a_member_on_both_days_or_on_neither(
    shared_engine: Engine,
    scenario: tuple[date, list[dict[str, Any]], list[dict[str, Any]], Condition],
) -> None:
    as_of, who, what, condition = scenario
    segment = Segment("random", Path("random.yaml"), "", condition)
    with shared_engine.begin() as connection:
        load(connection, who, what)
        for day in (as_of, as_of + timedelta(days=1)):
            query = overnight(segment, _catalog(), day, ZONE, connection.dialect.name)
            assert query is not None
            named = set(connection.execute(query).scalars())
            before = _members(condition, who, what, day - timedelta(days=1))
            after = _members(condition, who, what, day)
            assert before ^ after <= named, (day, condition, (before ^ after) - named)


def test_a_plain_segment_moves_for_nobody_and_a_relative_date_in_where_for_everyone(
    shared_engine: Engine,
) -> None:
    day = date(2027, 3, 1)
    households = Segment("h", Path("h.yaml"), "", Attribute("household", "json",
                         (Op("equals", "family", 1),), 1))  # fmt: skip
    with shared_engine.begin() as connection:
        query = overnight(households, _catalog(), day, ZONE, connection.dialect.name)
        assert query is not None and list(connection.execute(query)) == []
    until = Property("until", "json", (Op("after", Duration(7, "d"), 1),), 1)
    paused = Segment("p", Path("p.yaml"), "", Event("pause", None, None, None, None, (until,),
                     "count", (Op("at_least", 1, 1),), 1))  # fmt: skip
    assert overnight(paused, _catalog(), day, ZONE, "sqlite") is None
