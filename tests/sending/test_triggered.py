"""Triggered sends that became due after the plan was made go out with the day's run."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, select

from tests.planning.shop import make_shop, run_plan
from tests.sending.conftest import CONTACTS, DAY
from trouw.importing import import_events
from trouw.project import load_project
from trouw.sending import OutboxTransport, send_day
from trouw.store import ledger

CAMPAIGNS = {
    "spring": "priority: 50\nschedule:\n  dates: [2027-04-06]\ntemplate: mail\n",
    "follow-up": (
        "kind: promotional\npriority: 60\n"
        "trigger: {event: click, tag: fire-safety}\ntemplate: other\n"
    ),
}


def test_a_click_after_the_plan_makes_its_follow_up_due_the_same_day(
    project_dir: Path, engine: Engine, tmp_path: Path
) -> None:
    root = make_shop(project_dir, engine, campaigns=CAMPAIGNS, contacts=CONTACTS)
    run_plan(root, engine, 2027, "2027-01-01")  # before anyone clicked
    (root / "clicks.csv").write_text(
        "contact_id,type,occurred_at,tag\n"
        "c2,click,2027-04-06T08:15:00,fire-safety\n"
        "c3,click,2027-04-06T08:20:00,garden\n",  # another tag: no follow-up
        encoding="utf-8",
    )
    import_events(engine, root / "clicks.csv", timezone="Europe/Amsterdam")
    project = load_project(root)

    summary = send_day(engine, project, DAY, OutboxTransport(tmp_path / "out"))
    assert summary.triggered == 1
    with engine.connect() as connection:
        rows = connection.execute(select(ledger.c.contact_id, ledger.c.campaign)).all()
    assert ("c2", "follow-up") in {(str(a), str(b)) for a, b in rows}
    assert not any(campaign == "follow-up" and contact != "c2" for contact, campaign in rows)

    again = send_day(engine, project, DAY, OutboxTransport(tmp_path / "out"))
    assert again.sent == 0  # the follow-up is in the ledger now: never twice
