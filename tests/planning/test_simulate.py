"""The day-by-day simulation: journeys, click follow-ups and caps against a scratch ledger."""

from __future__ import annotations

import csv
import json
import tempfile
from collections import Counter
from datetime import date, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, insert, inspect, select, text
from sqlalchemy.exc import IntegrityError

from tests.planning.shop import make_shop, policy
from tests.planning.test_planner import CAMPAIGNS, _shop_files, contact
from trouw.planning import QuietDays
from trouw.planning.scratch import scratch_copy
from trouw.planning.simulate import SimulationSummary, simulate_period
from trouw.project import load_project
from trouw.store import atomic, ledger, open_store

Timeline = list[dict[str, str]]

SHOP_CAMPAIGNS = {
    "welcome": (
        "kind: lifecycle\npriority: 90\ntrigger: signup\nsteps:\n"
        "  - {after: 0d, template: mail}\n  - {after: 14d, template: other}\n"
    ),
    "fire-safety": (
        "priority: 60\ntrigger: {event: click, tag: fire-safety}\n"
        "steps:\n  - {after: 2d, template: mail}\n"
    ),
    "weekly": 'priority: 20\nschedule:\n  rrule: "FREQ=WEEKLY;BYDAY=WE"\ntemplate: other\n',
}
SHOP_CONTACTS = (
    "id,email,channel,birthday,customer_since\n"
    "newbie,n@x.example,email,,2027-03-05\n"
    "clicker,c@x.example,email,,2020-01-01\n"
    "calm,q@x.example,email,,2020-01-01\n"
)
# The click happens on the third simulated day, after the period has started.
SHOP_EVENTS = "contact_id,type,occurred_at,tag\nclicker,click,2027-03-03T12:00:00,fire-safety\n"


def simulate(
    root: Path, engine: Engine, start: str, end: str, out: Path
) -> tuple[SimulationSummary, Timeline]:
    with scratch_copy(engine) as scratch, atomic(scratch) as connection:
        summary = simulate_period(
            connection,
            load_project(root),
            start=date.fromisoformat(start),
            end=date.fromisoformat(end),
            out_dir=out,
            chunk_size=100,
        )
    with (out / "timeline.csv").open(encoding="utf-8") as handle:
        return summary, list(csv.DictReader(handle))


def sends_of(timeline: Timeline, contact_id: str) -> list[tuple[str, str, str]]:
    return [(r["day"], r["campaign"], r["step"]) for r in timeline if r["contact_id"] == contact_id]


def test_journeys_and_click_follow_ups_happen_inside_the_period(
    tmp_path: Path, engine: Engine
) -> None:
    root = make_shop(
        tmp_path / "shop",
        engine,
        campaigns=SHOP_CAMPAIGNS,
        contacts=SHOP_CONTACTS,
        events=SHOP_EVENTS,
    )
    summary, timeline = simulate(root, engine, "2027-03-01", "2027-03-31", tmp_path / "out")
    newbie = sends_of(timeline, "newbie")
    # Signed up on Friday 5 March: welcome at 0d and 14d; nothing before signing up.
    assert ("2027-03-05", "welcome", "1") in newbie
    assert ("2027-03-19", "welcome", "2") in newbie
    assert min(day for day, _c, _s in newbie) == "2027-03-05"
    clicker = sends_of(timeline, "clicker")
    # Clicked on day 3 (Wednesday 3 March): the follow-up comes 2 days later, once.
    assert [s for s in clicker if s[1] == "fire-safety"] == [("2027-03-05", "fire-safety", "1")]
    assert not [s for s in sends_of(timeline, "calm") if s[1] != "weekly"]
    weekly = [day for day, campaign, _s in sends_of(timeline, "calm") if campaign == "weekly"]
    # 1 March: the empty ledger lacks 24 February's mail, caught up (within defer_for).
    assert weekly == ["2027-03-01", "2027-03-03", "2027-03-10", "2027-03-17", "2027-03-24",
                      "2027-03-31"]  # fmt: skip
    assert summary.sends == len(timeline)
    assert summary.per_campaign["welcome"] == 2
    by_period = {p.period: p for p in summary.pressure}
    assert by_period["week"].max == 2 and by_period["month"].periods == 1
    pressure_text = (tmp_path / "out" / "pressure.csv").read_text(encoding="utf-8")
    pressure = list(csv.DictReader(pressure_text.splitlines()))
    assert [row["period"] for row in pressure] == ["week", "month"]
    assert (tmp_path / "out" / "weeks.csv").read_text(encoding="utf-8").startswith("week,")
    # The real ledger was never written.
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(ledger)).scalar_one() == 0


def test_sends_already_in_the_ledger_count_toward_the_caps(tmp_path: Path, engine: Engine) -> None:
    root = make_shop(
        tmp_path / "shop",
        engine,
        campaigns={"weekly": SHOP_CAMPAIGNS["weekly"]},
        contacts=SHOP_CONTACTS,
        settings=policy(week=1),
    )
    # A mail made on Monday 1 March fills calm's week (max_per_week 1): no Wednesday mail.
    with atomic(engine) as connection:
        connection.execute(
            ledger.insert().values(
                contact_id="calm", campaign="orders", step="main", occurrence="orders:1",
                day=date(2027, 3, 1), channel="email", status="sent",
                reserved_at=date(2027, 3, 1),
            )
        )  # fmt: skip
    _summary, timeline = simulate(root, engine, "2027-03-01", "2027-03-12", tmp_path / "out")
    calm = [day for day, _c, _s in sends_of(timeline, "calm")]
    clicker = [day for day, _c, _s in sends_of(timeline, "clicker")]
    assert not [day for day in calm if day <= "2027-03-07"], "the ledger's mail filled the week"
    assert len([day for day in clicker if day <= "2027-03-07"]) == 1
    assert [day for day in calm if "2027-03-08" <= day <= "2027-03-12"]


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    people=st.lists(contact, min_size=1, max_size=15),
    week=st.integers(1, 3),
    month=st.integers(2, 6),
    gap=st.integers(0, 3),
    quiet=st.sampled_from(['["sunday"]', '["sunday", "holidays:NL"]', "[]"]),
    start=st.sampled_from(["2026-12-14", "2027-03-22", "2027-04-26"]),
)
def test_random_shops_never_exceed_the_caps_in_the_simulation(
    people: list[dict[str, object]], week: int, month: int, gap: int, quiet: str, start: str
) -> None:
    contacts, events = _shop_files(people)
    first = date.fromisoformat(start)
    end = date.fromordinal(first.toordinal() + 34)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        engine = open_store(f"sqlite:///{root / 'trouw.db'}")
        try:
            make_shop(
                root,
                engine,
                campaigns=CAMPAIGNS,
                contacts=contacts,
                events=events,
                settings=policy(week=week, month=month, gap=f"{gap}d", quiet=quiet),
            )
            _summary, timeline = simulate(root, engine, start, end.isoformat(), root / "out")
            _again, repeat = simulate(root, engine, start, end.isoformat(), root / "out2")
        finally:
            engine.dispose()
    assert timeline == repeat, "same input, same simulation"
    order = [(r["contact_id"], r["day"], r["campaign"], r["step"], r["occurrence"])
             for r in timeline]  # fmt: skip
    assert order == sorted(order), "the timeline goes by contact, then day, then campaign"
    keys = Counter((r["contact_id"], r["campaign"], r["step"], r["occurrence"]) for r in timeline)
    assert max(keys.values(), default=1) == 1, "a (contact, campaign, step, occurrence) twice"
    quiet_days = QuietDays(json.loads(quiet))
    stopped = {f"c{i:03d}" for i, p in enumerate(people) if p["stop"] or p["channel"] == "none"}
    per_contact: dict[str, list[tuple[date, str]]] = {}
    for row in timeline:
        day = date.fromisoformat(row["day"])
        assert first <= day <= end and not quiet_days.is_quiet(day)
        kind = "service" if row["campaign"] == "orders" else "other"
        if row["contact_id"] in stopped:
            assert kind == "service", f"{row['campaign']} to stopped {row['contact_id']}"
        per_contact.setdefault(row["contact_id"], []).append((day, kind))
    for sends in per_contact.values():
        others = [d for d, k in sends if k != "service"]
        assert max(Counter(d.isocalendar()[:2] for d in others).values(), default=0) <= week
        assert max(Counter((d.year, d.month) for d in others).values(), default=0) <= month
        days = sorted(sends)
        for i, (day, kind) in enumerate(days):
            for other_day, other_kind in days[i + 1 :]:
                if (other_day - day).days >= gap:
                    break
                assert kind == other_kind == "service"


def _indexes(engine: Engine) -> set[str]:
    """The columns of each of the ledger's indexes, keys included."""
    found = set()
    with engine.connect() as connection:
        for index in inspect(connection).get_indexes("ledger"):
            found.add(",".join(str(c) for c in index["column_names"]))
        for key in inspect(connection).get_unique_constraints("ledger"):
            found.add(",".join(key["column_names"]))
    return found


def test_the_scratch_copy_keeps_only_the_ledgers_keys_and_has_statistics(
    tmp_path: Path, engine: Engine
) -> None:
    """The replay finds a contact's rows by the unique key and never asks what the other
    indexes serve (the queue, the log, bounces), which a simulated day would write into;
    the real database keeps them all, and a send in the copy is still refused twice. On
    PostgreSQL the copied tables are analyzed."""
    make_shop(tmp_path / "shop", engine, campaigns=SHOP_CAMPAIGNS, contacts=SHOP_CONTACTS)
    real = _indexes(engine)
    assert {"contact_id,day", "day,status", "message_id"} <= real
    with scratch_copy(engine) as scratch:
        assert _indexes(scratch) == {"contact_id,campaign,step,occurrence"}
        if scratch.dialect.name == "postgresql":  # new tables: analyzed, or planned blind
            with scratch.connect() as connection:
                analyzed = connection.execute(
                    text("SELECT count(*) FROM pg_stats WHERE schemaname = current_schema()"
                         " AND tablename = 'contacts'")
                ).scalar_one()  # fmt: skip
            assert analyzed > 0
        row = {"contact_id": "newbie", "campaign": "welcome", "step": "main", "occurrence": "2027",
               "day": date(2027, 1, 4), "channel": "email", "status": "sent",
               "reserved_at": datetime(2027, 1, 4), "attempts": 0}  # fmt: skip
        with atomic(scratch) as connection:
            connection.execute(insert(ledger), [row])
        with pytest.raises(IntegrityError), atomic(scratch) as connection:
            connection.execute(insert(ledger), [row])
    assert _indexes(engine) == real
