"""`send_time: best`: each contact's hour from their own opens and clicks, else the shop's,
inside the send window; the plan says the hour, and the send run holds a mail until it."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, select

from tests.planning.shop import make_shop, policy, run_plan
from trouw.planning.policy import SendWindow
from trouw.planning.send_time import best_of, in_window
from trouw.project import load_project
from trouw.sending import send_day
from trouw.sending.ledger import DEFERRED, SENT
from trouw.sending.transports import OutboxTransport
from trouw.store import ledger, plan

ZONE = ZoneInfo("Europe/Amsterdam")
DAY = date(2027, 4, 6)  # a Tuesday


def test_the_most_frequent_hour_moved_into_the_window() -> None:
    assert best_of([19, 8, 19, 10, 10]) == 10  # a tie: the earlier hour
    assert best_of([]) is None
    office = SendWindow("09:00-17:00")
    assert [in_window(h, office) for h in (19, 7, 3, 12, 16)] == [16, 9, 9, 12, 16]
    night = SendWindow("20:00-08:00")
    assert [in_window(h, night) for h in (12, 15, 22, 3)] == [7, 20, 22, 3]
    assert in_window(5, None) == 5


CONTACTS = (
    "id,email,channel,timezone\n"
    "a,a@x.example,email,\n"
    "b,b@x.example,email,\n"
    "c,c@x.example,email,\n"
    "d,d@x.example,email,America/New_York\n"
)
EVENTS = (
    "contact_id,type,occurred_at,tag\n"
    "a,click,2027-03-01T19:15:00,x\na,open,2027-03-08T19:40:00,\na,open,2027-03-09T08:05:00,\n"
    "a,click,2027-03-15T19:02:00,x\n"
    "b,open,2027-03-02T10:30:00,\nb,open,2027-03-03T10:10:00,\n"
    "d,open,2027-03-02T16:30:00,\n"  # 10:30 in New York
)
NEWS = "priority: 50\nsend_time: best\nschedule:\n  dates: [2027-04-06]\ntemplate: mail\n"


def _at(hour: int, minute: int = 0) -> datetime:
    return datetime.combine(DAY, time(hour, minute), ZONE).astimezone(UTC).replace(tzinfo=None)


def test_each_contact_gets_the_mail_in_their_hour(
    project_dir: Path, engine: Engine, tmp_path: Path
) -> None:
    make_shop(
        project_dir, engine, campaigns={"news": NEWS}, contacts=CONTACTS, events=EVENTS,
        settings=policy() + 'send_window = "09:00-21:00"\n',
    )  # fmt: skip
    run_plan(project_dir, engine, 2027, "2027-04-01")
    with engine.connect() as connection:
        reasons = dict(connection.execute(select(plan.c.contact_id, plan.c.reason)).all())
    assert reasons == {
        "a": "at 19:00 (their most frequent open/click hour)",
        "b": "at 10:00 (their most frequent open/click hour)",
        "c": "at 19:00 (the shop's most frequent hour)",  # 3 of the 7 responses at 19h
        "d": "at 10:00 (their most frequent open/click hour)",  # in their own zone
    }

    project = load_project(project_dir)
    outbox = OutboxTransport(tmp_path / "out")
    noon = send_day(engine, project, DAY, outbox, now=_at(12))  # 06:00 in New York
    with engine.connect() as connection:
        statuses = dict(connection.execute(select(ledger.c.contact_id, ledger.c.status)).all())
    assert statuses == {"b": SENT}  # the others stay owed by the plan
    assert noon.skipped["waiting for its send hour 19:00"] == 2
    send_day(engine, project, DAY, outbox, now=_at(16, 30))  # 10:30 in New York: d's hour
    send_day(engine, project, DAY, outbox, now=_at(19, 30))
    with engine.connect() as connection:
        statuses = dict(connection.execute(select(ledger.c.contact_id, ledger.c.status)).all())
    assert statuses == dict.fromkeys("abcd", SENT)


def test_without_a_plan_the_waiting_send_is_in_the_ledger(
    project_dir: Path, engine: Engine, tmp_path: Path
) -> None:
    """A send only the day's decision owes waits in the ledger, with its hour as the reason."""
    make_shop(project_dir, engine, campaigns={"news": NEWS}, contacts=CONTACTS, events=EVENTS)
    outbox = OutboxTransport(tmp_path / "out")
    send_day(engine, load_project(project_dir), DAY, outbox, now=_at(12))
    with engine.connect() as connection:
        rows = {r[0]: (r[1], r[2]) for r in connection.execute(
            select(ledger.c.contact_id, ledger.c.status, ledger.c.error))}  # fmt: skip
    assert rows["b"][0] == SENT  # no window, and 12:00 is past b's 10:00
    assert rows["a"] == rows["c"] == (DEFERRED, "waiting for its send hour 19:00")
    assert rows["d"] == (DEFERRED, "waiting for its send hour 10:00")  # 06:00 in New York


def test_the_policy_gives_every_marketing_campaign_its_best_hour(
    project_dir: Path, engine: Engine
) -> None:
    """`[policy] send_time = "best"`: campaigns without their own `send_time` send at the
    contact's hour; a service mail still goes at once."""
    campaigns = {
        "news": NEWS.replace("send_time: best\n", ""),
        "orders": "kind: service\nschedule:\n  dates: [2027-04-07]\ntemplate: mail\n",
    }
    make_shop(
        project_dir, engine, campaigns=campaigns, contacts=CONTACTS, events=EVENTS,
        settings=policy(gap="0d") + 'send_time = "best"\n',
    )  # fmt: skip
    run_plan(project_dir, engine, 2027, "2027-04-01")
    with engine.connect() as connection:
        rows = connection.execute(
            select(plan.c.contact_id, plan.c.campaign, plan.c.reason).where(
                plan.c.contact_id == "b"
            )
        ).all()
    assert sorted(tuple(r) for r in rows) == [
        ("b", "news", "at 10:00 (their most frequent open/click hour)"),
        ("b", "orders", None),
    ]


def test_a_mail_whose_hour_passed_without_a_run_goes_the_next_day_at_once(
    project_dir: Path, engine: Engine, tmp_path: Path
) -> None:
    """A shop whose runs stopped at noon: the mails waiting for 19:00 go with the next
    day's first run instead of waiting for their hour again."""
    make_shop(project_dir, engine, campaigns={"news": NEWS}, contacts=CONTACTS, events=EVENTS)
    project = load_project(project_dir)
    outbox = OutboxTransport(tmp_path / "out")
    send_day(engine, project, DAY, outbox, now=_at(12))
    morning = datetime.combine(date(2027, 4, 7), time(9), ZONE).astimezone(UTC)
    send_day(engine, project, date(2027, 4, 7), outbox, now=morning.replace(tzinfo=None))
    with engine.connect() as connection:
        statuses = dict(connection.execute(select(ledger.c.contact_id, ledger.c.status)).all())
    assert statuses == dict.fromkeys("abcd", SENT)
