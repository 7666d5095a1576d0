"""Compiled SQL against the naive reference evaluator, on random data and random conditions."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from tests.segments.helpers import ZONE, contact, event, load, local, reference_holds
from trouw.durations import Duration
from trouw.segments.compile import Clock, chunk_members_query, members_query
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
    Segment,
    SegmentRef,
)
from trouw.segments.query import count_members

# A leap day, a New Year window, a day before a DST change, an ordinary day.
AS_OF = (date(2028, 2, 28), date(2027, 2, 28), date(2027, 12, 29), date(2027, 3, 27),
         date(2027, 6, 15))  # fmt: skip
CONTACT_IDS = [f"c{i}" for i in range(6)]
REF = Segment("families", Path("families.yaml"), "",
              Attribute("household", "json", (Op("equals", "family", 1),), 1))  # fmt: skip


def _catalog() -> Catalog:
    catalog = Catalog(Path("segments"))
    catalog.segments["families"] = REF
    return catalog


# ----------------------------------------------------------------------------- data

# Mostly near as-of, where the window edges are; sometimes far back.
days_around = st.one_of(
    st.integers(min_value=-35, max_value=2),
    st.sampled_from([-1, -2, -6, -7, -13, -14, -29, -30]),
    st.integers(min_value=-400, max_value=-36),
)


def some_dates(as_of: date) -> st.SearchStrategy[date | None]:
    # Dates near as-of (this year and years back) exercise the birthday windows.
    near = st.builds(
        lambda days, years: _years_back(as_of + timedelta(days=days), years),
        st.integers(min_value=-3, max_value=16),
        st.sampled_from([0, 0, 1, 30]),
    )
    return st.one_of(st.none(), near, _fixed_dates)


def _years_back(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February in a year without one
        return day.replace(year=day.year - years, day=28)


_fixed_dates = st.one_of(
    st.sampled_from(
        [
            date(1980, 2, 29),
            date(1990, 2, 28),
            date(1991, 3, 1),
            date(1985, 12, 31),
            date(1999, 1, 1),
            date(2000, 1, 2),
        ]
    ),
    st.dates(min_value=date(1950, 1, 1), max_value=date(2028, 12, 31)),
)
attribute_values = st.one_of(
    st.sampled_from(["family", "single", "couple", "x", "5", ""]),
    st.integers(min_value=-2, max_value=200),
    st.sampled_from([5.0, 0.5, True, False, None]),
    st.sampled_from(["2027-01-01", "2026-12-31", "2027-06-01"]),
)


@st.composite
def people(draw: st.DrawFn, as_of: date) -> list[dict[str, Any]]:
    count = draw(st.integers(min_value=1, max_value=len(CONTACT_IDS)))
    rows = []
    for contact_id in CONTACT_IDS[:count]:
        attributes = {}
        for name in ("household", "points", "joined"):
            if draw(st.booleans()):
                attributes[name] = draw(attribute_values)
        rows.append(
            contact(
                contact_id,
                channel=draw(st.sampled_from(["email", "post", "none"])),
                city=draw(st.sampled_from([None, "Ede", "Utrecht", "Den Haag"])),
                birthday=draw(some_dates(as_of)),
                customer_since=draw(some_dates(as_of)),
                attributes=attributes,
            )
        )
    return rows


DURATIONS = [
    Duration(1, "d"),
    Duration(7, "d"),
    Duration(30, "d"),
    Duration(2, "w"),
    Duration(3, "mo"),
    Duration(1, "y"),
]


def moments(as_of: date) -> st.SearchStrategy[datetime]:
    """Event times, half of them on an edge: where a window or as-of begins or ends.

    The edges are the first moment of every `within` window (the start of D-29
    for 30d) and the second before it, the start and the last second of D, the
    first moment after as-of, and the start of each day for days_since. Equal
    moments are common, so NPS answers tie too.
    """
    clock = Clock(as_of, ZONE)
    second = timedelta(seconds=1)
    edges = [clock.end - second, clock.end, clock.start_of(as_of)]
    for within in DURATIONS:
        start = clock.window_start(within)
        edges += [start, start - second]
    edges += [clock.start_of(as_of - timedelta(days=days)) for days in (1, 2, 7, 30, 31)]
    # Midnight exactly, the last second of a day, or any time, mostly near as-of.
    days = st.builds(
        lambda offset, hms: local(as_of + timedelta(days=offset), *hms),
        days_around,
        st.sampled_from([(0, 0, 0), (23, 59, 59), (12, 30, 0)]),
    )
    return st.one_of(st.sampled_from(sorted(set(edges))), days)


@st.composite
def behaviour(draw: st.DrawFn, people: list[dict[str, Any]], as_of: date) -> list[dict[str, Any]]:
    rows = []
    for number in range(1, draw(st.integers(min_value=0, max_value=14)) + 1):
        kind = draw(st.sampled_from(["purchase", "click", "survey"]))
        rows.append(
            event(
                draw(st.sampled_from([p["id"] for p in people])),
                kind,
                draw(moments(as_of)),
                id=number,  # insertion order: the later row wins an NPS tie
                tag=draw(st.sampled_from([None, "nps", "fire-safety"])),
                product=draw(st.sampled_from([None, "a", "b"])),
                amount=draw(st.sampled_from([None, 5.0, 20.0])),
                score=draw(st.one_of(st.none(), st.integers(min_value=0, max_value=10))),
                properties=draw(st.sampled_from([{}, {"size": 2}, {"size": "L"}, {"size": None}])),
            )
        )
    return rows


# ----------------------------------------------------------------------------- conditions

durations = st.sampled_from(DURATIONS)
small = st.integers(min_value=0, max_value=4)


def _op(name: str, value: Any) -> Op:
    return Op(name, value, 1)


def _ops(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Op]:
    return st.one_of(
        st.builds(_op, st.sampled_from(["equals", "not_equals"]), values),
        st.builds(
            _op,
            st.sampled_from(["in", "not_in"]),
            st.lists(values, min_size=1, max_size=3).map(tuple),
        ),
    )


json_attribute_ops = st.one_of(
    _ops(st.sampled_from(["family", "single", "5", 5, 5.0, True, date(2027, 1, 1)])),
    st.builds(
        _op,
        st.sampled_from(["at_least", "at_most"]),
        st.sampled_from([0, 5, 100, 2.5, date(2027, 1, 1)]),
    ),
    st.builds(
        _op,
        st.sampled_from(["before", "after"]),
        st.sampled_from([date(2027, 1, 1), Duration(30, "d")]),
    ),
    st.builds(_op, st.just("contains"), st.sampled_from(["am", "x", ""])),
    st.builds(_op, st.just("exists"), st.booleans()),
)
attributes = st.one_of(
    st.builds(
        lambda name, op: Attribute(name, "json", (op,), 1),
        st.sampled_from(["household", "points", "joined", "missing"]),
        json_attribute_ops,
    ),
    st.builds(
        lambda op: Attribute("channel", "text", (op,), 1),
        _ops(st.sampled_from(["email", "post", "none"])),
    ),
    st.builds(
        lambda op: Attribute("city", "text", (op,), 1),
        st.one_of(
            _ops(st.sampled_from(["Ede", "Utrecht"])),
            st.builds(_op, st.just("contains"), st.sampled_from(["e", "E", "Haag"])),
            st.builds(_op, st.just("exists"), st.booleans()),
        ),
    ),
    st.builds(
        lambda name, op: Attribute(name, "date", (op,), 1),
        st.sampled_from(["birthday", "customer_since"]),
        st.one_of(
            _ops(st.sampled_from([date(1980, 2, 29), date(1990, 2, 28)])),
            st.builds(
                _op,
                st.sampled_from(["before", "after"]),
                st.one_of(durations, st.just(date(2000, 1, 1))),
            ),
            st.builds(_op, st.sampled_from(["at_least", "at_most"]), st.just(date(1990, 1, 1))),
            st.builds(_op, st.just("exists"), st.booleans()),
        ),
    ),
)

count_ops = st.one_of(
    st.builds(_op, st.sampled_from(["equals", "not_equals", "at_least", "at_most"]), small),
    st.builds(
        _op, st.sampled_from(["in", "not_in"]), st.lists(small, min_size=1, max_size=3).map(tuple)
    ),
)
sum_ops = st.builds(
    _op,
    st.sampled_from(["at_least", "at_most", "equals", "not_equals"]),
    st.sampled_from([0, 5, 20, 25.0, 40]),
)
day_ops = st.one_of(
    st.builds(
        _op,
        st.sampled_from(["equals", "not_equals", "at_least", "at_most"]),
        st.integers(min_value=0, max_value=40),
    ),
    st.builds(
        _op,
        st.sampled_from(["in", "not_in"]),
        st.lists(st.integers(min_value=0, max_value=31), min_size=1, max_size=3).map(tuple),
    ),
)
properties = st.one_of(
    st.builds(
        lambda op: Property("amount", "number", (op,), 1),
        st.one_of(
            st.builds(_op, st.sampled_from(["at_least", "at_most"]), st.sampled_from([5, 10.5])),
            st.builds(_op, st.just("exists"), st.booleans()),
        ),
    ),
    st.builds(lambda op: Property("size", "json", (op,), 1), _ops(st.sampled_from([2, "L", 2.0]))),
    st.builds(lambda op: Property("product", "text", (op,), 1), _ops(st.sampled_from(["a", "b"]))),
)


@st.composite
def events(draw: st.DrawFn) -> Event:
    aggregate = draw(st.sampled_from(["count", "sum", "days_since_last", "days_since_first"]))
    ops_strategy = {"count": count_ops, "sum": sum_ops}.get(aggregate, day_ops)
    return Event(
        type=draw(st.sampled_from(["purchase", "click", "survey"])),
        within=draw(st.one_of(st.none(), durations)),
        tag=draw(st.sampled_from([None, ("fire-safety",), ("nps", "fire-safety")])),
        product=draw(st.sampled_from([None, ("a",)])),
        category=None,
        where=tuple(draw(st.lists(properties, max_size=1))),
        aggregate=aggregate,
        ops=tuple(draw(st.lists(ops_strategy, min_size=1, max_size=2))),
        line=1,
    )


date_windows = st.builds(
    lambda key, d: DateWithin(
        key, "birthday" if key == "birthday_within" else "customer_since", d, d.approx_days(), 1
    ),
    st.sampled_from(["birthday_within", "anniversary_within"]),
    st.sampled_from([Duration(1, "d"), Duration(7, "d"), Duration(2, "w"), Duration(400, "d")]),
)
nps_classes = st.sampled_from(
    [Nps("promoter", 9, 10, 1), Nps("passive", 7, 8, 1), Nps("detractor", 0, 6, 1)]
)
# Pick the kind of leaf first: a flat one_of would mostly draw attributes.
LEAF_KINDS: dict[str, st.SearchStrategy[Condition]] = {
    "attribute": attributes,
    "event": events(),
    "date": date_windows,
    "nps": nps_classes,
    "segment": st.just(SegmentRef("families", 1)),
}
leaves = st.sampled_from(["event", "attribute", "date", "nps", "event", "segment"]).flatmap(
    LEAF_KINDS.__getitem__
)
conditions: st.SearchStrategy[Condition] = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.builds(lambda items: AllOf(tuple(items), 1), st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda items: AnyOf(tuple(items), 1), st.lists(inner, min_size=1, max_size=3)),
        st.builds(lambda item: Not(item, 1), inner),
    ),
    max_leaves=5,
)


@st.composite
def scenarios(
    draw: st.DrawFn,
) -> tuple[date, list[dict[str, Any]], list[dict[str, Any]], Condition]:
    as_of = draw(st.sampled_from(AS_OF))
    who = draw(people(as_of))
    return as_of, who, draw(behaviour(who, as_of)), draw(conditions)


@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenario=scenarios(), chunk=st.lists(st.sampled_from(CONTACT_IDS), min_size=2, max_size=2))
def test_compiled_sql_matches_the_reference(
    shared_engine: Engine,
    scenario: tuple[date, list[dict[str, Any]], list[dict[str, Any]], Condition],
    chunk: list[str],
) -> None:
    as_of, who, what, condition = scenario
    first, last = sorted(chunk)
    clock = Clock(as_of, ZONE)
    catalog = _catalog()
    segment = Segment("random", Path("random.yaml"), "", condition)
    with shared_engine.begin() as connection:
        load(connection, who, what)
        query = members_query(segment, catalog, clock, connection.dialect.name)
        got = set(connection.execute(query).scalars())
        # The count takes its own shape (on PostgreSQL: the event sets alone, when it can),
        # and so do a chunk's members (the sets of the chunk's events).
        counted = count_members(connection, segment, catalog, clock)
        in_chunk = chunk_members_query(
            segment, catalog, clock, connection.dialect.name, first, last
        )
        got_in_chunk = set(connection.execute(in_chunk).scalars())
    expected = {p["id"] for p in who if reference_holds(condition, p, what, clock, catalog)}
    assert got == expected, condition
    assert counted == len(expected), condition
    assert got_in_chunk == {i for i in expected if first <= i <= last}, (condition, chunk)
