"""`trouw send` run day by day keeps the promise `trouw simulate` makes, row for row.

One decision (planning/decision.py) serves plan, simulate and send. This
property makes it observable: over random small shops, policies and event
streams (purchases that move or cancel a win-back, clicks that start a
follow-up, a purchase that enters a segment, unsubscribes in the middle
of the period, customers who join during it or sign up by an event, A/B arms, a campaign
holdout and the control group), the mails `send` delivers
on each day are the mails `simulate` says go out that day, with the same
variant and channel.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, select

from tests.planning.shop import make_shop, policy, run_plan, timeline_rows
from trouw.planning.scratch import scratch_copy
from trouw.planning.simulate import simulate_period
from trouw.project import load_project
from trouw.sending import send_day
from trouw.sending.ledger import SENT
from trouw.sending.transports import LetterBox, OutboxTransport, Routed
from trouw.store import atomic, ledger, open_store

ZONE = ZoneInfo("Europe/Amsterdam")
START = date(2027, 3, 1)
DAYS = 28
CAMPAIGNS = {
    "welcome": (
        "kind: lifecycle\npriority: 90\ntrigger: signup\nsteps:\n"
        "  - {after: 0d, template: mail}\n  - {after: 9d, template: other}\n"
    ),
    "birthday": "kind: lifecycle\npriority: 80\ntrigger: birthday\nvalid_for: 3d\ntemplate: mail\n",
    "follow": (
        "priority: 60\ntrigger: {event: click, tag: x}\nsteps:\n  - {after: 2d, template: mail}\n"
    ),
    "win-back": "priority: 40\ntrigger: {inactive: 30d}\ntemplate: other\n",
    "spring": (  # a third held out; the rest split between two templates by their arm
        "priority: 50\nholdout: 30%\nschedule:\n  dates: [2027-03-10, 2027-03-24]\n"
        "test:\n  arms: [{template: mail}, {template: other, weight: 2}]\n"
    ),
    "weekly": (
        'priority: 20\ntopic: news\nschedule:\n  rrule: "FREQ=WEEKLY;BYDAY=TU"\ntemplate: other\n'
    ),
    "tips": (
        'priority: 25\ntopic: tips\nschedule:\n  rrule: "FREQ=WEEKLY;BYDAY=TH"\ntemplate: mail\n'
    ),
    "orders": "kind: service\npriority: 1\nschedule:\n  dates: [2027-03-05]\ntemplate: mail\n",
    "thanks": "priority: 55\ntrigger: {entered: recent-buyers}\ntemplate: mail\n",
}
SEGMENTS = {"recent-buyers": "where:\n  event: purchase\n  within: 5d\n"}

moment = st.tuples(st.integers(-40, DAYS - 1), st.integers(7, 21))  # (day from START, hour)
person = st.fixed_dictionaries(
    {
        "channel": st.sampled_from(["email", "email", "email", "post", "none"]),
        "birthday": st.one_of(st.none(), st.integers(-5, DAYS + 5)),
        "since": st.one_of(st.none(), st.integers(-400, DAYS - 1)),
        "purchases": st.lists(moment, max_size=3),
        "clicks": st.lists(moment, max_size=2),
        "stop": st.one_of(
            st.none(), st.tuples(st.sampled_from(["unsubscribe", "complaint"]), moment)
        ),
        # the preference centre: leave one topic, or pause for some days
        "topic": st.one_of(st.none(), st.tuples(st.sampled_from(["news", "tips"]), moment)),
        "pause": st.one_of(st.none(), st.tuples(moment, st.integers(1, 20))),
        # a shop that pushes signups as events instead of customer_since
        "signup": st.one_of(st.none(), moment),
    }
)


def _at(offset: tuple[int, int]) -> str:
    day, hour = offset
    return f"{START + timedelta(days=day)}T{hour:02d}:00:00"


def _shop_files(people: list[dict[str, object]]) -> tuple[str, str]:
    contacts = ["id,email,channel,birthday,customer_since,street,postcode,city"]
    events = ["contact_id,type,occurred_at,tag,amount,until"]
    for index, p in enumerate(people):
        cid = f"p{index:02d}"
        birthday = "" if p["birthday"] is None else (
            (START + timedelta(days=int(str(p["birthday"])))).replace(year=1990)
        )  # fmt: skip
        since = "" if p["since"] is None else START + timedelta(days=int(str(p["since"])))
        contacts.append(
            f"{cid},{cid}@x.example,{p['channel']},{birthday},{since},Straat 1,1234 AB,Stad"
        )
        for bought in p["purchases"]:  # type: ignore[attr-defined]
            events.append(f"{cid},purchase,{_at(bought)},,25,")
        for clicked in p["clicks"]:  # type: ignore[attr-defined]
            events.append(f"{cid},click,{_at(clicked)},x,,")
        if p["stop"] is not None:
            kind, when = p["stop"]  # type: ignore[misc]
            events.append(f"{cid},{kind},{_at(when)},,,")
        if p.get("topic") is not None:
            topic, when = p["topic"]  # type: ignore[misc]
            events.append(f"{cid},unsubscribe,{_at(when)},topic:{topic},,")
        if p.get("signup") is not None and p["since"] is None:
            events.append(f"{cid},signup,{_at(p['signup'])},,,")  # type: ignore[arg-type]
        if p.get("pause") is not None:
            when, days = p["pause"]  # type: ignore[misc]
            until = START + timedelta(days=when[0] + days)
            events.append(f"{cid},pause,{_at(when)},,,{until}")
    return "\n".join(contacts) + "\n", "\n".join(events) + "\n"


Row = tuple[str, str, str, str, str, str | None, str]


def _rows(engine: Engine, *, status: str | None = None) -> list[Row]:
    query = select(
        ledger.c.contact_id, ledger.c.campaign, ledger.c.step, ledger.c.occurrence,
        ledger.c.day, ledger.c.template, ledger.c.channel,
    )  # fmt: skip
    if status is not None:
        query = query.where(ledger.c.status == status)
    with engine.connect() as connection:
        return sorted(
            (str(r[0]), str(r[1]), str(r[2]), str(r[3]), r[4].isoformat(), r[5], str(r[6]))
            for r in connection.execute(query)
        )


def _simulated(root: Path, engine: Engine, out: Path) -> list[Row]:
    """The sends of the simulation's timeline."""
    with scratch_copy(engine) as scratch, atomic(scratch) as connection:
        simulate_period(
            connection, load_project(root), start=START,
            end=START + timedelta(days=DAYS - 1), out_dir=out, chunk_size=7,
        )  # fmt: skip
    return timeline_rows(out)


def _sent_day_by_day(root: Path, engine: Engine, out: Path) -> list[Row]:
    project = load_project(root)
    for offset in range(DAYS):
        day = START + timedelta(days=offset)
        midday = datetime.combine(day, time(12), ZONE).astimezone(UTC).replace(tzinfo=None)
        transport = Routed(OutboxTransport(out / "mail"), LetterBox(out / "letters"))
        summary = send_day(engine, project, day, transport, chunk_contacts=7, now=midday)
        assert not summary.failures and summary.deferred == 0
    return _rows(engine, status=SENT)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    people=st.lists(person, min_size=1, max_size=12),
    week=st.integers(1, 3),
    month=st.integers(2, 6),
    gap=st.integers(0, 3),
    defer=st.integers(0, 8),
    quiet=st.sampled_from(['["sunday"]', '["sunday", "holidays:NL"]', "[]"]),
    planned=st.booleans(),
)
@example(  # a newsletter the plan saw superseded must not come back once the gap allows it
    people=[
        {"channel": "email", "birthday": 2, "since": None,
         "purchases": [(-5, 14), (1, 20), (-17, 14)], "clicks": [(-23, 11), (12, 8)],
         "stop": None},
    ],
    week=3, month=6, gap=3, defer=4, quiet="[]", planned=True,
)  # fmt: skip
@example(  # a planned win-back the caps hold back past its validity goes out when room comes
    people=[
        *[{"channel": "none", "birthday": None, "since": None, "purchases": [], "clicks": [],
           "stop": None}] * 3,
        {"channel": "email", "birthday": None, "since": None,
         "purchases": [(-28, 8), (-23, 10), (-31, 17)], "clicks": [(-30, 8), (1, 17)],
         "stop": None, "pause": ((0, 9), 3)},
    ],
    week=2, month=5, gap=2, defer=5, quiet='["sunday"]', planned=True,
)  # fmt: skip
def test_sending_day_by_day_delivers_what_the_simulation_promised(
    people: list[dict[str, object]],
    week: int,
    month: int,
    gap: int,
    defer: int,
    quiet: str,
    planned: bool,
) -> None:
    contacts, events = _shop_files(people)
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        engine = open_store(f"sqlite:///{root / 'trouw.db'}")
        try:
            make_shop(
                root, engine, campaigns=CAMPAIGNS, segments=SEGMENTS, contacts=contacts,
                events=events, settings=policy(week=week, month=month, gap=f"{gap}d",
                                               quiet=quiet, defer=f"{defer}d")
                + 'control_group = "10%"\n',  # of p00..p11, p02 is in it in 2027
            )  # fmt: skip
            if planned:  # the forecast, made before the period: the send must not depend on it
                run_plan(root, engine, START.year, (START - timedelta(days=1)).isoformat())
            promised = _simulated(root, engine, root / "simulated")
            delivered = _sent_day_by_day(root, engine, root / "sent")
        finally:
            engine.dispose()
    assert delivered == promised


def test_a_contact_who_enters_a_segment_gets_its_mail_from_the_daily_run(
    project_dir: Path, engine: Engine, tmp_path: Path
) -> None:
    """The send run keeps a snapshot a day of the segments an `entered` trigger watches, so
    an entry is seen the next day without anyone running `segments count --snapshot`."""
    people: list[dict[str, object]] = [
        {"channel": "email", "birthday": None, "since": -100, "purchases": [(3, 10)],
         "clicks": [], "stop": None},
        {"channel": "email", "birthday": None, "since": -100, "purchases": [],
         "clicks": [], "stop": None},
    ]  # fmt: skip
    contacts, events = _shop_files(people)
    make_shop(
        project_dir, engine, campaigns={"thanks": CAMPAIGNS["thanks"]}, segments=SEGMENTS,
        contacts=contacts, events=events, settings=policy(quiet="[]"),
    )  # fmt: skip
    promised = _simulated(project_dir, engine, tmp_path / "simulated")
    delivered = _sent_day_by_day(project_dir, engine, tmp_path / "sent")
    thanks = [(row[0], row[4]) for row in delivered]
    assert thanks == [("p00", "2027-03-04")]  # bought on the 4th: a member from that day on
    assert delivered == promised
