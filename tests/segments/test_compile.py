"""Edge cases of the compiled SQL: window edges, leap days, New Year, empty histories."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from tests.conftest import write_files
from tests.segments.helpers import ZONE, contact, event, load, local
from trouw.segments import Clock, count_members, load_catalog, members_query


def _members(
    engine: Engine,
    root: Path,
    where: str,
    as_of: date,
    people: list[dict[str, Any]],
    behaviour: list[dict[str, Any]],
) -> set[str]:
    write_files(root, {"segments/s.yaml": f"where:\n{where}"})
    catalog = load_catalog(root / "segments")
    segment = catalog.get("s")
    clock = Clock(as_of, ZONE)
    with engine.begin() as connection:
        load(connection, people, behaviour)
        got = set(
            connection.execute(
                members_query(segment, catalog, clock, connection.dialect.name)
            ).scalars()
        )
        assert count_members(connection, segment, catalog, clock) == len(got)
    return got


D = date(2027, 3, 10)


def test_within_covers_days_d_minus_29_to_d(engine: Engine, tmp_path: Path) -> None:
    people = [contact(c) for c in ("start", "before", "last", "after", "none")]
    behaviour = [
        event("start", "click", local(date(2027, 2, 9))),  # D-29 at 00:00: inside
        event("before", "click", local(date(2027, 2, 8), 23, 59, 59)),  # D-30: outside
        event("last", "click", local(D, 23, 59, 59)),  # the last second of D: inside
        event("after", "click", local(date(2027, 3, 11))),  # after as-of: ignored
    ]
    where = "  event: click\n  within: 30d\n"
    assert _members(engine, tmp_path, where, D, people, behaviour) == {"start", "last"}


def test_zero_counts_and_negations_include_contacts_without_events(
    engine: Engine, tmp_path: Path
) -> None:
    people = [contact("buyer"), contact("old"), contact("never")]
    behaviour = [
        event("buyer", "purchase", local(date(2027, 3, 1))),
        event("old", "purchase", local(date(2026, 1, 1))),
    ]
    zero = "  event: purchase\n  within: 180d\n  count: {exactly: 0}\n"
    assert _members(engine, tmp_path, zero, D, people, behaviour) == {"old", "never"}
    negated = "  not: {event: purchase, within: 180d}\n"
    assert _members(engine, tmp_path, negated, D, people, behaviour) == {"old", "never"}
    at_most = "  event: purchase\n  count: {at_most: 0}\n"
    assert _members(engine, tmp_path, at_most, D, people, behaviour) == {"never"}
    small_sum = "  event: purchase\n  sum: {at_most: 10}\n"
    assert _members(engine, tmp_path, small_sum, D, people, behaviour) == {"buyer", "old", "never"}


def test_bought_before_but_not_lately_with_the_window_boundaries(
    engine: Engine, tmp_path: Path
) -> None:
    """A grouped condition and "none within" of the same events (counted on PostgreSQL as
    one grouped set with a HAVING on the last moment): members and count as by hand."""
    start = date(2027, 2, 9)  # within: 30d starts at D-29
    people = [contact(c) for c in ("lapsed", "edge", "recent", "once", "ancient", "fresh")]
    behaviour = [
        event("lapsed", "purchase", local(date(2026, 12, 1))),
        event("lapsed", "purchase", local(start, 0, 0) - timedelta(seconds=1)),  # just before
        event("lapsed", "click", local(date(2027, 3, 1))),  # another type does not count
        event("edge", "purchase", local(date(2026, 12, 1))),
        event("edge", "purchase", local(start)),  # the window's first moment: inside
        event("recent", "purchase", local(date(2026, 11, 1))),
        event("recent", "purchase", local(date(2026, 12, 1))),
        event("recent", "purchase", local(D, 12)),
        event("once", "purchase", local(date(2026, 12, 1))),
        event("ancient", "purchase", local(date(2025, 1, 1))),  # outside within: 1y
        event("ancient", "purchase", local(date(2026, 12, 1))),
        event("fresh", "purchase", local(date(2026, 12, 1))),
        event("fresh", "purchase", local(date(2026, 12, 2))),
        event("fresh", "purchase", local(date(2027, 3, 11))),  # after as-of: ignored
    ]
    lapsed = (
        "  all:\n"
        "    - {event: purchase, within: 1y, count: {at_least: 2}}\n"
        "    - {event: purchase, within: 30d, count: {exactly: 0}}\n"
    )
    assert _members(engine, tmp_path, lapsed, D, people, behaviour) == {"lapsed", "fresh"}
    # A window wider than the grouped condition's: not folded, the same answer by hand.
    wider = (
        "  all:\n"
        "    - {event: purchase, within: 30d, count: {at_least: 1}}\n"
        "    - {event: purchase, within: 1y, count: {exactly: 0}}\n"
    )
    assert _members(engine, tmp_path, wider, D, people, behaviour) == set()
    twice = (
        "  all:\n"
        "    - {event: purchase, days_since_last: {at_most: 400}}\n"
        "    - {event: purchase, within: 30d, count: {exactly: 0}}\n"
        "    - {event: purchase, within: 60d, count: {exactly: 0}}\n"
    )
    assert _members(engine, tmp_path, twice, D, people, behaviour) == {"once", "ancient", "fresh"}


def test_counts_that_every_contact_or_none_meets(engine: Engine, tmp_path: Path) -> None:
    people = [contact("buyer"), contact("never")]
    behaviour = [event("buyer", "purchase", local(date(2027, 3, 1)))]
    anyone = "  event: purchase\n  count: {at_least: 0}\n"
    assert _members(engine, tmp_path, anyone, D, people, behaviour) == {"buyer", "never"}
    no_one = "  event: purchase\n  count: {at_least: 2, at_most: 1}\n"
    assert _members(engine, tmp_path, no_one, D, people, behaviour) == set()


def test_days_since_last_is_zero_for_an_event_on_d(engine: Engine, tmp_path: Path) -> None:
    people = [contact("today"), contact("yesterday"), contact("never"), contact("tomorrow")]
    behaviour = [
        event("today", "purchase", local(D, 0, 0, 0)),
        event("yesterday", "purchase", local(date(2027, 3, 9), 23, 59, 59)),
        event("tomorrow", "purchase", local(date(2027, 3, 11), 0, 0, 0)),  # ignored
    ]
    zero = "  event: purchase\n  days_since_last: {equals: 0}\n"
    assert _members(engine, tmp_path, zero, D, people, behaviour) == {"today"}
    one = "  event: purchase\n  days_since_last: {at_least: 1}\n"
    assert _members(engine, tmp_path, one, D, people, behaviour) == {"yesterday"}


def test_a_29_february_birthday_falls_on_28_february_in_other_years(
    engine: Engine, tmp_path: Path
) -> None:
    people = [
        contact("leap", birthday=date(1980, 2, 29)),
        contact("first", birthday=date(1980, 3, 1)),
        contact("unknown"),
    ]
    where = "  birthday_within: 1d\n"
    assert _members(engine, tmp_path, where, date(2027, 2, 28), people, []) == {"leap"}
    # In a leap year 29 February is a day of its own.
    assert _members(engine, tmp_path, where, date(2028, 2, 28), people, []) == set()
    assert _members(engine, tmp_path, where, date(2028, 2, 29), people, []) == {"leap"}
    week = "  birthday_within: 7d\n"
    assert _members(engine, tmp_path, week, date(2027, 2, 24), people, []) == {"leap", "first"}


def test_birthday_windows_cross_new_year(engine: Engine, tmp_path: Path) -> None:
    people = [
        contact("dec30", birthday=date(1990, 12, 30)),
        contact("jan2", birthday=date(1990, 1, 2)),
        contact("jan5", birthday=date(1990, 1, 5)),
        contact("dec28", birthday=date(1990, 12, 28)),
    ]
    where = "  birthday_within: 7d\n"  # 29 Dec … 4 Jan
    assert _members(engine, tmp_path, where, date(2027, 12, 29), people, []) == {"dec30", "jan2"}


def test_anniversaries_skip_the_first_day(engine: Engine, tmp_path: Path) -> None:
    people = [contact("year", customer_since=date(2026, 3, 12)), contact("today", customer_since=D)]
    where = "  anniversary_within: 7d\n"
    assert _members(engine, tmp_path, where, D, people, []) == {"year"}


def test_attributes_keep_their_json_types(engine: Engine, tmp_path: Path) -> None:
    people = [
        contact("number", attributes={"points": 120}),
        contact("text", attributes={"points": "120"}),
        contact("flag", attributes={"points": True}),
        contact("none"),
    ]
    assert _members(engine, tmp_path, "  attribute: points\n  at_least: 100\n", D, people, []) == {
        "number"
    }
    assert _members(engine, tmp_path, '  attribute: points\n  equals: "120"\n', D, people, []) == {
        "text"
    }
    assert _members(
        engine, tmp_path, "  attribute: points\n  not_equals: 120\n", D, people, []
    ) == {"text", "flag", "none"}
    assert _members(engine, tmp_path, "  attribute: points\n  exists: false\n", D, people, []) == {
        "none"
    }


def test_latest_nps_answer_decides_the_class(engine: Engine, tmp_path: Path) -> None:
    people = [contact("turned"), contact("fan"), contact("later")]
    behaviour = [
        event("turned", "survey", local(date(2027, 1, 1)), tag="nps", score=10),
        event("turned", "survey", local(date(2027, 2, 1)), tag="nps", score=3),
        event("fan", "survey", local(date(2027, 1, 1)), tag="nps", score=9),
        event("fan", "survey", local(date(2027, 2, 1)), tag="csat", score=1),
        event("later", "survey", local(date(2027, 1, 1)), tag="nps", score=9),
        event("later", "survey", local(date(2027, 4, 1)), tag="nps", score=2),  # after as-of
    ]
    assert _members(engine, tmp_path, "  nps: detractor\n", D, people, behaviour) == {"turned"}
    assert _members(engine, tmp_path, "  nps: promoter\n", D, people, behaviour) == {"fan", "later"}


def test_of_nps_answers_at_the_same_moment_the_later_inserted_one_wins(
    engine: Engine, tmp_path: Path
) -> None:
    people = [contact("corrected"), contact("raised"), contact("unscored")]
    moment = local(date(2027, 2, 1), 12, 0, 0)
    behaviour = [  # inserted in this order, so each contact's second row has the greater id
        event("corrected", "survey", moment, tag="nps", score=10),
        event("corrected", "survey", moment, tag="nps", score=3),
        event("raised", "survey", moment, tag="nps", score=3),
        event("raised", "survey", moment, tag="nps", score=10),
        event("unscored", "survey", moment, tag="nps", score=9),
        event("unscored", "survey", moment, tag="nps", score=None),  # not an answer
    ]
    assert _members(engine, tmp_path, "  nps: detractor\n", D, people, behaviour) == {"corrected"}
    assert _members(engine, tmp_path, "  nps: promoter\n", D, people, behaviour) == {
        "raised",
        "unscored",
    }


def test_event_filters_and_segment_references(engine: Engine, tmp_path: Path) -> None:
    write_files(
        tmp_path, {"segments/families.yaml": "where: {attribute: household, equals: family}\n"}
    )
    people = [
        contact("a", attributes={"household": "family"}),
        contact("b", attributes={"household": "family"}),
        contact("c"),
    ]
    behaviour = [
        event("a", "click", local(date(2027, 3, 1)), tag="fire-safety"),
        event("b", "click", local(date(2027, 3, 1)), tag="garden"),
        event("c", "purchase", local(date(2027, 3, 1)), amount=60.0, properties={"size": "L"}),
    ]
    where = (
        "  any:\n    - all: [{segment: families}, {event: click, tag: fire-safety}]\n"
        "    - event: purchase\n      where: {amount: {at_least: 50}, size: L}\n"
    )
    assert _members(engine, tmp_path, where, D, people, behaviour) == {"a", "c"}


def test_the_example_project_segments_are_valid() -> None:
    catalog = load_catalog(Path(__file__).resolve().parents[2] / "segments")
    assert catalog.errors == {}
    assert len(catalog.segments) >= 13
