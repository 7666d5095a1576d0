"""At send time the plan's decision is taken again with today's data: a send that is no
longer right is cancelled with the reason, and the variant is today's."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

from sqlalchemy import Engine, select

from tests.conftest import write_files
from tests.planning.shop import make_shop, plan_rows, policy, run_plan
from trouw.campaigns import find_campaign
from trouw.importing import import_contacts, import_events, suppress_addresses
from trouw.project import load_project
from trouw.sending import OutboxTransport, SendSummary, send_day
from trouw.store import ledger
from trouw.templates.campaign_mails import CampaignMails

CONTACTS = "id,email,first_name,last_name,channel\nw1,w1@x.example,Wil,Boer,email\n"
WIN_BACK = {"win-back": "priority: 30\ntrigger: {inactive: 90d}\ntemplate: mail\n"}


def _ledger(engine: Engine) -> list[tuple[str, str, str | None]]:
    with engine.connect() as connection:
        rows = connection.execute(select(ledger.c.occurrence, ledger.c.status, ledger.c.error))
        return [(str(r[0]), str(r[1]), r[2]) for r in rows]


def _win_back_shop(project_dir: Path, engine: Engine) -> Path:
    """Wil last bought on 2026-10-10; the plan made on 2026-12-01 has a win-back for them."""
    events = "contact_id,type,occurred_at,amount\nw1,purchase,2026-10-10T12:00:00,20\n"
    root = make_shop(
        project_dir, engine, campaigns=WIN_BACK, contacts=CONTACTS, events=events,
        settings=policy(quiet="[]"),
    )  # fmt: skip
    run_plan(root, engine, 2027, "2026-12-01")
    return root


def test_a_purchase_since_the_plan_cancels_the_win_back(
    project_dir: Path, engine: Engine, tmp_path: Path
) -> None:
    root = _win_back_shop(project_dir, engine)
    [(day, *_)] = [row for row in plan_rows(engine, "w1") if row[1] == "win-back"]
    assert day == "2027-01-08"  # 90 days after the last purchase
    write_files(root, {"bought.csv": "contact_id,type,occurred_at,amount\n"
                                     "w1,purchase,2027-01-05T10:00:00,35\n"})  # fmt: skip
    import_events(engine, root / "bought.csv", timezone="Europe/Amsterdam")
    summary = send_day(engine, load_project(root), date(2027, 1, 8), OutboxTransport(tmp_path))
    assert summary.sent == 0
    [(occurrence, status, error)] = _ledger(engine)
    assert (occurrence, status) == ("win-back:2027-01-08", "cancelled")
    assert error == "its trigger (inactive 90d) no longer holds on 2027-01-08"
    assert not list(tmp_path.glob("*.eml"))


def test_without_a_purchase_the_win_back_goes_out(
    project_dir: Path, engine: Engine, tmp_path: Path
) -> None:
    root = _win_back_shop(project_dir, engine)
    summary = send_day(engine, load_project(root), date(2027, 1, 8), OutboxTransport(tmp_path))
    assert summary.sent == 1
    assert _ledger(engine) == [("win-back:2027-01-08", "sent", None)]


def test_the_variant_is_todays(project_dir: Path, engine: Engine, tmp_path: Path) -> None:
    campaigns = {
        "spring": "priority: 50\nschedule:\n  dates: [2027-04-06]\nvariants:\n"
        "  - {segment: gold, template: other}\n  - {template: mail}\n"
    }
    segments = {"gold": "where:\n  attribute: tier\n  equals: gold\n"}
    contacts = "id,email,first_name,last_name,channel,tier\ng1,g1@x.example,Gea,Goud,email,\n"
    root = make_shop(
        project_dir, engine, campaigns=campaigns, contacts=contacts, segments=segments,
        settings=policy(quiet="[]"),
    )  # fmt: skip
    run_plan(root, engine, 2027, "2027-01-01")
    assert [row[1:3] for row in plan_rows(engine, "g1")] == [("spring", "main")]
    write_files(root, {"gold.csv": "id,tier\ng1,gold\n"})  # promoted after the plan was made
    import_contacts(engine, root / "gold.csv", timezone="Europe/Amsterdam")
    send_day(engine, load_project(root), date(2027, 4, 6), OutboxTransport(tmp_path))
    with engine.connect() as connection:
        assert connection.execute(select(ledger.c.template)).scalar_one() == "other"


def test_mails_leave_only_inside_each_contacts_send_window(
    project_dir: Path, engine: Engine, tmp_path: Path
) -> None:
    contacts = (
        "id,email,first_name,last_name,channel,timezone\n"
        "ams,a@x.example,An,Dam,email,Europe/Amsterdam\n"
        "akl,k@x.example,Kiri,Ora,email,Pacific/Auckland\n"
    )
    campaigns = {"spring": "priority: 50\nschedule:\n  dates: [2027-04-06]\ntemplate: mail\n"}
    settings = policy(quiet="[]") + 'send_window = "09:00-17:00"\n'
    root = make_shop(project_dir, engine, campaigns=campaigns, contacts=contacts, settings=settings)
    run_plan(root, engine, 2027, "2027-01-01")
    day = date(2027, 4, 6)

    def send_at(now: datetime) -> SendSummary:
        return send_day(engine, load_project(root), day, OutboxTransport(tmp_path), now=now)

    early = send_at(datetime(2027, 4, 6, 8, 0))  # 10:00 in Amsterdam, 20:00 in Auckland
    assert early.sent == 1
    assert early.skipped == {"waiting for the send window 09:00-17:00": 1}
    with engine.connect() as connection:
        assert connection.execute(select(ledger.c.contact_id)).scalars().all() == ["ams"]
    late = send_at(datetime(2027, 4, 6, 21, 30))  # 09:30 the next morning in Auckland
    assert late.sent == 1 and not late.skipped
    evening = send_at(datetime(2027, 4, 6, 17, 30))  # nothing left, nothing waits
    assert evening.due == 0


def test_a_send_no_plan_holds_waits_in_the_ledger_and_expires_with_its_reason(
    project_dir: Path, engine: Engine, tmp_path: Path
) -> None:
    """Without a plan row, a send outside the contact's window is written `deferred`: owed
    to the next run inside the window, and `expired` with the reason if none comes in time."""
    contacts = (
        "id,email,first_name,last_name,channel,timezone\n"
        "akl,k@x.example,Kiri,Ora,email,Pacific/Auckland\n"
    )
    campaigns = {"spring": "priority: 50\nschedule:\n  dates: [2027-04-06]\ntemplate: mail\n"}
    settings = policy(quiet="[]", defer="2d") + 'send_window = "09:00-17:00"\n'
    root = make_shop(project_dir, engine, campaigns=campaigns, contacts=contacts, settings=settings)
    project = load_project(root)  # no plan: the day's decision alone owes the send

    def send_at(day: date, now: datetime) -> SendSummary:
        return send_day(engine, project, day, OutboxTransport(tmp_path), now=now)

    early = send_at(date(2027, 4, 6), datetime(2027, 4, 6, 8, 0))  # 20:00 in Auckland
    assert early.sent == 0
    assert _ledger(engine) == [
        ("spring:2027-04-06", "deferred", "waiting for the send window 09:00-17:00")
    ]
    # No run inside Auckland's window until the send's validity (defer_for 2d) ran out.
    later = send_at(date(2027, 4, 9), datetime(2027, 4, 9, 8, 0))
    assert later.sent == 0
    [(occurrence, status, error)] = _ledger(engine)
    assert (occurrence, status) == ("spring:2027-04-06", "expired")
    assert error is not None and "waiting for the send window" in error


def test_without_a_send_window_any_hour_will_do(
    project_dir: Path, engine: Engine, tmp_path: Path
) -> None:
    campaigns = {"spring": "priority: 50\nschedule:\n  dates: [2027-04-06]\ntemplate: mail\n"}
    root = make_shop(project_dir, engine, campaigns=campaigns, contacts=CONTACTS)
    run_plan(root, engine, 2027, "2027-01-01")
    night = datetime(2027, 4, 6, 1, 0)
    summary = send_day(
        engine, load_project(root), date(2027, 4, 6), OutboxTransport(tmp_path), now=night
    )
    assert summary.sent == 1


def test_preview_samples_of_the_fallback_get_the_fallback(
    project_dir: Path, engine: Engine
) -> None:
    campaigns = {
        "spring": "priority: 50\nschedule:\n  dates: [2027-04-06]\nvariants:\n"
        "  - {segment: gold, template: other}\n  - {template: mail}\n"
    }
    segments = {"gold": "where:\n  attribute: tier\n  equals: gold\n"}
    contacts = (
        "id,email,first_name,last_name,channel,tier\n"
        "a1,a1@x.example,Aat,Goud,email,gold\n"
        "b2,b2@x.example,Bas,Brons,email,bronze\n"
        "c3,c3@x.example,Cor,Goud,email,gold\n"
    )
    root = make_shop(project_dir, engine, campaigns=campaigns, contacts=contacts, segments=segments)
    project = load_project(root)
    campaign = find_campaign(project.campaigns_dir, "spring")
    step = campaign.step(None)
    with engine.connect() as connection:
        mails = CampaignMails(project, connection, date(2027, 4, 6))
        gold, fallback = step.variants
        assert mails.samples_of(campaign, step, gold, 5) == ["a1", "c3"]
        assert mails.samples_of(campaign, step, fallback, 5) == ["b2"]  # not the gold ones


def test_no_mail_at_all_goes_to_a_suppressed_address_not_even_a_service_mail(
    project_dir: Path, engine: Engine, tmp_path: Path
) -> None:
    campaigns = {
        "order": "kind: service\npriority: 90\nschedule:\n  dates: [2027-04-06]\ntemplate: mail\n"
    }
    root = make_shop(project_dir, engine, campaigns=campaigns, contacts=CONTACTS)
    with engine.begin() as connection:  # the address bounced hard (or its owner was forgotten)
        suppress_addresses(connection, ["w1@x.example"], "hard-bounce")
    run_plan(root, engine, 2027, "2027-01-01")
    assert [row[4] for row in plan_rows(engine, "w1")] == ["dropped"]
    summary = send_day(engine, load_project(root), date(2027, 4, 6), OutboxTransport(tmp_path))
    assert summary.sent == 0 and not list(tmp_path.glob("*.eml"))
