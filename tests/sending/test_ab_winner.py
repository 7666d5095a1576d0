"""An A/B test with a share: the arms to the first wave, the winner to the rest by a later run.

The first wave (a stable hash) gets its arms on the scheduled day; the rest is
due a day later and waits until a run at least `after` past the first mail
picks the arm with the best click rate, from the clicks on the first wave's
mails; the pick is recorded once with its numbers and every later run, and the
plan, use it.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, insert, select

from tests.conftest import Cli
from tests.planning.shop import make_shop, plan_rows, policy, run_plan
from trouw.experiments import WINNER_PENDING, arm_index, in_first_wave
from trouw.planning.scratch import scratch_copy
from trouw.planning.simulate import simulate_period
from trouw.project import load_project
from trouw.sending import send_day
from trouw.sending.checks import WAITING_FOR_WINNER
from trouw.sending.ledger import DEFERRED, SENT
from trouw.sending.transports import OutboxTransport
from trouw.sending.winners import read_winners
from trouw.store import atomic, events, ledger, plan

DAY = date(2027, 4, 6)  # a Tuesday
LAUNCH = (
    "priority: 50\nschedule:\n  dates: [2027-04-06]\n"
    "test:\n  arms:\n    - {template: mail}\n    - {template: other}\n"
    "  share: 40%\n  pick_by: click_rate\n  after: 24h\n"
)
PEOPLE = [f"p{index:03d}" for index in range(80)]
CONTACTS = "id,email,channel\n" + "".join(f"{c},{c}@x.example,email\n" for c in PEOPLE)


def _ledger(engine: Engine) -> dict[str, tuple[str, str | None, str | None]]:
    query = select(ledger.c.contact_id, ledger.c.status, ledger.c.template, ledger.c.error)
    with engine.connect() as connection:
        return {r.contact_id: (r.status, r.template, r.error) for r in connection.execute(query)}


def test_the_winner_goes_to_the_rest_after_the_first_wave(
    project_dir: Path, engine: Engine, tmp_path: Path, cli: Cli
) -> None:
    make_shop(project_dir, engine, campaigns={"launch": LAUNCH}, contacts=CONTACTS,
              settings=policy(gap="0d"))  # fmt: skip
    project = load_project(project_dir)
    first = {c for c in PEOPLE if in_first_wave(c, "launch", "main", 0.4)}
    rest = set(PEOPLE) - first
    assert 20 <= len(first) <= 45
    arms = {c: ("mail", "other")[arm_index(c, "launch", "main", (1.0, 1.0))] for c in first}

    run_plan(project_dir, engine, 2027, "2027-04-01")
    planned = {row[0] for row in plan_rows(engine)}
    assert planned == {"2027-04-06", "2027-04-07"}  # the rest a day after the first wave
    for contact_id in sorted(rest)[:3]:
        (row,) = plan_rows(engine, contact_id)
        assert row[0] == "2027-04-07"

    outbox = OutboxTransport(tmp_path / "out")
    # `after` counts from the first mail's sent_at, the real time; the runs' moments follow it.
    start = datetime.now(UTC).replace(tzinfo=None)
    send_day(engine, project, DAY, outbox, now=start)
    sent = _ledger(engine)
    assert {c: v[1] for c, v in sent.items()} == arms  # only the first wave, in its arms

    # Clicks on the mails of arm `other` (and one on `mail`), as the tracking server records them.
    with engine.begin() as connection:
        rows = connection.execute(select(ledger.c.id, ledger.c.contact_id, ledger.c.template))
        clicks = [r for r in rows if r.template == "other"][:8]
        clicks += [r for r in connection.execute(select(ledger.c.id, ledger.c.contact_id,
                   ledger.c.template)) if r.template == "mail"][:1]  # fmt: skip
        connection.execute(
            insert(events),
            [
                {"contact_id": r.contact_id, "type": "click", "tag": "x",
                 "occurred_at": start + timedelta(hours=5),
                 "properties": {"campaign": "launch", "template": r.template, "ledger_id": r.id}}
                for r in clicks
            ],
        )  # fmt: skip

    after = DAY + timedelta(days=1)
    early = send_day(engine, project, after, outbox, now=start + timedelta(hours=23))
    assert early.winners == [] and early.sent == 0
    waiting = _ledger(engine)
    assert {c for c, v in waiting.items() if v[0] == DEFERRED} == rest
    assert {v[1:] for c, v in waiting.items() if c in rest} == {(WINNER_PENDING,
                                                                 WAITING_FOR_WINNER)}  # fmt: skip

    late = send_day(engine, project, after, outbox, now=start + timedelta(hours=25))
    (described,) = late.winners
    assert described.startswith("test launch:main (launch:2027-04-06): other wins by click rate")
    final = _ledger(engine)
    assert {c: v[:2] for c, v in final.items() if c in rest} == {c: (SENT, "other") for c in rest}
    assert {c: v[1] for c, v in final.items() if c in first} == arms  # the first wave stays

    with engine.connect() as connection:
        (winner,) = read_winners(connection)
    assert (winner.winner, winner.pick_by) == ("other", "click_rate")
    by_arm = {arm.template: arm for arm in winner.arms}
    assert by_arm["other"].hits == 8 and by_arm["mail"].hits == 1
    assert by_arm["other"].sent == sum(1 for a in arms.values() if a == "other")
    assert winner.p_value is not None

    # a later run picks nothing again; a re-plan shows the winner for the rest
    assert send_day(engine, project, after, outbox, now=start + timedelta(hours=26)).winners == []
    run_plan(project_dir, engine, 2027, "2027-04-01")
    with engine.connect() as connection:
        templates = connection.execute(select(plan.c.contact_id, plan.c.template)).all()
    assert {cid: template for cid, template in templates if cid in rest} == dict.fromkeys(
        rest, "other"
    )
    log = " ".join(cli("log", "--campaign", "launch").output.split())
    assert "test launch:main (launch:2027-04-06): other wins by click rate" in log
    report = cli("report", "--year", "2027", "--as-of", "2027-04-08", "--format", "json")
    experiments = json.loads(report.output)["experiments"]
    (decided,) = experiments["winners"]
    assert (decided["winner"], decided["pick_by"]) == ("other", "click_rate")
    (test,) = experiments["tests"]
    assert [arm["template"] for arm in test["arms"]] == ["mail", "other"]


def test_simulate_forecasts_the_first_wave_then_the_winner(
    project_dir: Path, engine: Engine, tmp_path: Path
) -> None:
    """Without clicks the arms tie and the first listed wins: the rest gets `mail` a day later."""
    make_shop(project_dir, engine, campaigns={"launch": LAUNCH}, contacts=CONTACTS,
              settings=policy(gap="0d"))  # fmt: skip
    first = {c for c in PEOPLE if in_first_wave(c, "launch", "main", 0.4)}
    with scratch_copy(engine) as scratch:
        with atomic(scratch) as connection:
            simulate_period(
                connection, load_project(project_dir), start=DAY,
                end=DAY + timedelta(days=2), out_dir=tmp_path / "simulated",
            )  # fmt: skip
            (winner,) = read_winners(connection)
        with scratch.connect() as connection:
            rows = connection.execute(
                select(ledger.c.contact_id, ledger.c.day, ledger.c.template)
            ).all()
    assert winner.winner == "mail" and winner.p_value is None  # no clicks: no test to make
    assert {r.contact_id for r in rows if r.day == DAY} == first
    rest = {r.contact_id: r.template for r in rows if r.day == DAY + timedelta(days=1)}
    assert rest == dict.fromkeys(set(PEOPLE) - first, "mail")
