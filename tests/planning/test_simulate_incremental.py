"""`simulate` decides only the contacts with something due or new facts on a day
(planning/watch.py); the plain replay decides every contact every day. Both must write the
same timeline, send for send, over random shops with
purchases, clicks, unsubscribes, topic changes, pauses, segment entries, signups by event,
customers who join during the period, A/B arms, a holdout and the control group."""

from __future__ import annotations

import tempfile
from dataclasses import fields
from datetime import date, timedelta
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select

from tests.planning.shop import make_shop, policy, timeline_rows
from tests.sending.test_send_is_simulate import CAMPAIGNS, SEGMENTS, START, _shop_files, person
from trouw.importing import suppress_addresses
from trouw.planning.candidates import ChunkFacts, contact_chunks
from trouw.planning.scratch import scratch_copy
from trouw.planning.simulate import simulate_period
from trouw.planning.simulate_day import DayReplay
from trouw.planning.watch import (
    FACT_FIELDS,
    Overnight,
    Places,
    changed,
    from_events_of,
    taken_over,
)
from trouw.project import load_project
from trouw.store import atomic, ledger, open_store

Row = tuple[str, str, str, str, str, str, str]
# Segments only events change (no window): the watch reuses their members from the day
# before and asks again only for contacts with a new purchase or click.
UNDATED = {
    "repeat-buyers": "where:\n  event: purchase\n  count: {at_least: 2}\n",
    "clickers": (
        "where:\n  all:\n    - event: click\n      tag: x\n    - not: {segment: repeat-buyers}\n"
    ),
}
SHOP_SEGMENTS = {**SEGMENTS, **UNDATED}
SHOP_CAMPAIGNS = {
    **CAMPAIGNS,
    "loyal": (
        'priority: 30\nsegment: repeat-buyers\nschedule:\n  rrule: "FREQ=WEEKLY;BYDAY=MO"\n'
        "steps:\n  - {after: 0d, template: mail, unless: {segment: clickers}}\n"
    ),
}


def _replayed(
    root: Path,
    engine: Engine,
    out: Path,
    *,
    start: date,
    days: int,
    incremental: bool,
    chunk: int = 5,
) -> tuple[str, int]:
    """The simulation's timeline.csv, and how many rows it wrote to the scratch ledger."""
    with scratch_copy(engine) as scratch, atomic(scratch) as connection:
        before = connection.execute(select(func.count()).select_from(ledger)).scalar_one()
        simulate_period(
            connection, load_project(root), start=start,
            end=start + timedelta(days=days - 1), out_dir=out, chunk_size=chunk,
            incremental=incremental,
        )  # fmt: skip
        written = connection.execute(select(func.count()).select_from(ledger)).scalar_one()
    return (out / "timeline.csv").read_text(encoding="utf-8"), written - before


def _compare_on(
    root: Path, engine: Engine, people: list[dict[str, object]], settings_text: str,
    start: date, days: int, chunk: int = 5,
) -> list[Row]:  # fmt: skip
    contacts, events = _shop_files(people)
    make_shop(
        root, engine, campaigns=SHOP_CAMPAIGNS, segments=SHOP_SEGMENTS, contacts=contacts,
        events=events,
        settings=settings_text,
    )  # fmt: skip
    plain = _replayed(root, engine, root / "plain", start=start, days=days, incremental=False)
    watched = _replayed(
        root, engine, root / "watched", start=start, days=days, incremental=True, chunk=chunk
    )
    assert watched[0] == plain[0]
    sends = timeline_rows(root / "plain")
    # The plain replay reads its contacts' ledger every day, so it writes every send there
    # (and each cancelled one); the watch keeps it in memory: no A/B first wave here, no row.
    assert plain[1] >= len(sends)
    assert watched[1] == 0
    return sends


def _compare(
    people: list[dict[str, object]], settings_text: str, start: date, days: int, chunk: int
) -> list[Row]:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        engine = open_store(f"sqlite:///{root / 'trouw.db'}")
        try:
            return _compare_on(root, engine, people, settings_text, start, days, chunk)
        finally:
            engine.dispose()


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    people=st.lists(person, min_size=1, max_size=14),
    week=st.integers(1, 3),
    month=st.integers(2, 6),
    gap=st.integers(0, 3),
    defer=st.integers(0, 8),
    quiet=st.sampled_from(['["sunday"]', '["sunday", "holidays:NL"]', "[]"]),
    chunk=st.sampled_from([5, 50]),  # 50: one chunk, the ledger read for the few due only
)
def test_deciding_only_the_due_and_changed_contacts_writes_what_the_plain_replay_writes(
    people: list[dict[str, object]],
    week: int,
    month: int,
    gap: int,
    defer: int,
    quiet: str,
    chunk: int,
) -> None:
    settings_text = (
        policy(week=week, month=month, gap=f"{gap}d", quiet=quiet, defer=f"{defer}d")
        + 'control_group = "10%"\n'
    )
    _compare(people, settings_text, START, 28, chunk)


def test_the_same_across_a_new_year(tmp_path: Path, engine: Engine) -> None:
    """A replay from December into January: the new year's scheduled days and birthdays
    (on SQLite and PostgreSQL)."""
    people: list[dict[str, object]] = [
        {"channel": "email", "birthday": d, "since": since, "purchases": [(d, 10)],
         "clicks": [(d + 1, 9)], "stop": None}
        for d, since in ((-60, -400), (-50, None), (-45, -70), (-40, -300), (5, -500))
    ]  # fmt: skip
    start = date(2027, 12, 20)  # START + the offsets above land in late December / January
    rows = _compare_on(tmp_path, engine, people, policy(quiet="[]"), start, 20)
    assert {row[4][:4] for row in rows} == {"2027", "2028"}  # the sends' days


def test_the_watch_sees_a_change_in_every_fact_a_chunk_has() -> None:
    """A new ChunkFacts field the watch does not compare would let a contact whose facts
    changed go undecided."""
    assert {f.name for f in fields(ChunkFacts)} == FACT_FIELDS
    before = ChunkFacts(
        members={"a": {"1", "2"}}, entered={"t": {"3"}}, stopped={"4": "unsubscribed"},
        topics_left={"5": {"news"}}, trigger_events={"c": {"6": None}},  # type: ignore[dict-item]
    )  # fmt: skip
    after = ChunkFacts(
        members={"a": {"2", "7"}}, entered={}, stopped={"4": "complained"},
        topics_left={"5": {"news", "tips"}}, suppressed={"8"}, paused={"9": START},
    )  # fmt: skip
    assert changed(before, after) == {"1", "7", "3", "4", "5", "6", "8", "9"}
    assert changed(after, after) == set()


# Events of every kind the facts from events read, over a week: stops of each kind (soft
# bounces stop nothing), topic unsubscribes, pauses (one without a valid `until` ends the
# one before), purchases, signups and clicks with and without the trigger's tag.
FOLD_DAYS = 7
event = st.tuples(
    st.integers(0, 5),  # contact
    st.integers(-3, FOLD_DAYS - 1),  # day from START
    st.integers(0, 23),  # hour
    st.sampled_from([
        ("bounce", "soft", ""), ("bounce", "hard", ""), ("complaint", "", ""),
        ("unsubscribe", "", ""), ("unsubscribe", "topic:news", ""),
        ("unsubscribe", "topic:tips", ""), ("pause", "", "2027-03-20"), ("pause", "", "never"),
        ("purchase", "", ""), ("signup", "", ""), ("click", "x", ""), ("click", "y", ""),
    ]),
)  # fmt: skip


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(happened=st.lists(event, max_size=30), suppressed=st.sets(st.integers(0, 5), max_size=2))
@example(happened=[(0, 2, 10, ("complaint", "", ""))], suppressed={0})  # suppressed, then stops
def test_the_days_events_folded_into_the_facts_equal_the_facts_gathered_again(
    happened: list[tuple[int, int, int, tuple[str, str, str]]], suppressed: set[int]
) -> None:
    """The watch brings the facts from events up to date with the day's events only
    (CandidateFinder.fold_events): each day, the same facts as reading every event again.
    And it decides anew exactly the contacts whose facts those events changed
    (`from_events_of`), not every contact with an event: a click without the trigger's tag,
    a second stop or a soft bounce changes nothing."""
    contacts = ["id,email,channel,birthday,customer_since,street,postcode,city"]
    contacts += [f"c{i},c{i}@x.example,email,,,Straat 1,1234 AB,Stad" for i in range(6)]
    events = ["contact_id,type,occurred_at,tag,amount,until"]
    for who, day, hour, (kind, tag, until) in happened:
        moment = f"{START + timedelta(days=day)}T{hour:02d}:00:00"
        events.append(f"c{who},{kind},{moment},{tag},{'9' if kind == 'purchase' else ''},{until}")
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        engine = open_store(f"sqlite:///{root / 'trouw.db'}")
        try:
            make_shop(
                root, engine, campaigns=SHOP_CAMPAIGNS, segments=SHOP_SEGMENTS,
                contacts="\n".join(contacts) + "\n", events="\n".join(events) + "\n",
            )  # fmt: skip
            with atomic(engine) as connection:
                suppress_addresses(connection, [f"c{i}@x.example" for i in suppressed], "test")
            replay = DayReplay(load_project(root))
            with engine.connect() as connection:
                (chunk,) = contact_chunks(connection, 10)
                folded, previous = ChunkFacts(), ChunkFacts()
                for facts in (folded, previous):
                    replay.day(START).finder.gather_from_events(connection, chunk, facts)
                ids = [str(row.id) for row in chunk]
                for offset in range(1, FOLD_DAYS):
                    finder = replay.day(START + timedelta(days=offset)).finder
                    overnight = Overnight.ask(connection, finder, [chunk], Places())
                    folded = taken_over(folded)
                    was = {i: from_events_of(folded, i) for i in ids}
                    finder.fold_events(folded, (r for rs in overnight.events.values() for r in rs))
                    again = ChunkFacts()
                    finder.gather_from_events(connection, chunk, again)
                    assert folded == again, START + timedelta(days=offset)
                    news = {i for i in ids if from_events_of(folded, i) != was[i]}
                    assert news == changed(previous, again)
                    previous = again
        finally:
            engine.dispose()
