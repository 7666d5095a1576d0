"""`send_day` against a real SMTP server on loopback, an outbox, and the ledger's rules."""

from __future__ import annotations

import csv
import io
import sys
import threading
import time
from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, delete, insert, select, text, update

from tests.conftest import Cli
from tests.planning.shop import policy as policy_settings
from tests.sending.conftest import CAMPAIGNS, DAY, SmtpServer, make_day_shop
from trouw.cli import main
from trouw.contacts import is_suppressed
from trouw.project import load_project
from trouw.sending import OutboxTransport, SendSummary, SmtpTransport, TransportDown, send_day
from trouw.sending.ledger import LOG_COLUMNS, message_id
from trouw.sending.run import SWITCH_INTERVAL_S
from trouw.sending.runs import SendRun
from trouw.sending.transports import Outcome, Outgoing, Pace, Transport
from trouw.store import contacts, ledger, send_runs
from trouw.templates.links import LinkSigner, signing_key

TRACKING = '\n[tracking]\nbase_url = "https://t.shop.example"\n'


def _send(
    root: Path, engine: Engine, transport: Transport | None, day: date = DAY, **options: Any
) -> SendSummary:
    try:
        return send_day(engine, load_project(root), day, transport, **options)
    finally:
        if transport is not None:
            transport.close()


def _smtp(server: SmtpServer) -> SmtpTransport:
    return SmtpTransport(server.url, backoff=(0.01, 0.01, 0.01))


def _statuses(engine: Engine) -> dict[str, str]:
    with engine.connect() as connection:
        rows = connection.execute(select(ledger.c.contact_id, ledger.c.status))
        return {str(r[0]): str(r[1]) for r in rows}


def _parse(content: bytes) -> EmailMessage:
    message = message_from_bytes(content, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_smtp_delivers_each_mail_once_with_every_header(
    project_dir: Path, engine: Engine, smtp_server: SmtpServer
) -> None:
    root = make_day_shop(project_dir, engine, settings=TRACKING + policy_settings())
    summary = _send(root, engine, _smtp(smtp_server))
    assert summary.sent == 3
    assert summary.waiting == {
        "channel post: give --letters DIR (or [letters] dir) for the letters": 1
    }
    received = smtp_server.handler.received
    assert sorted(r.rcpt_tos[0] for r in received) == [
        "ann@x.example",
        "bob@x.example",
        "cor@x.example",
    ]
    with engine.connect() as connection:
        ids = dict(connection.execute(select(ledger.c.contact_id, ledger.c.message_id)).all())
    for mail in received:
        assert len(mail.rcpt_tos) == 1
        assert mail.mail_from == "hello@shop.example"
        message = _parse(mail.content)
        assert message["From"] == "Test Shop <hello@shop.example>"
        assert message["To"].endswith(f"<{mail.rcpt_tos[0]}>")
        assert parsedate_to_datetime(message["Date"]) > datetime.now(UTC) - timedelta(minutes=5)
        contact = mail.rcpt_tos[0][0]
        contact_id = {"a": "c1", "b": "c2", "c": "c3"}[contact]
        assert message["Message-ID"] == ids[contact_id]
        assert message["Message-ID"].endswith("@shop.example>")
        unsubscribe = message["List-Unsubscribe"]
        assert "<https://t.shop.example/u/" in unsubscribe
        assert "<mailto:hello@shop.example?subject=unsubscribe>" in unsubscribe
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert message["List-Id"] == "spring <spring.shop.example>"
        assert message.get_content_type() == "multipart/alternative"
        parts = [part.get_content_type() for part in message.iter_parts()]
        assert parts == ["text/plain", "text/html"]
        text = message.get_body(("plain",))
        html = message.get_body(("html",))
        assert text is not None and html is not None
        assert "Hi" in text.get_content()
        assert "<p>Hi" in html.get_content()
    assert _statuses(engine) == {"c1": "sent", "c2": "sent", "c3": "sent", "c4": "deferred"}
    with engine.connect() as connection:
        sent_at = connection.execute(
            select(ledger.c.sent_at, ledger.c.day).where(ledger.c.status == "sent")
        ).all()
    assert all(row.sent_at is not None and row.day == DAY for row in sent_at)


def test_a_second_run_for_the_same_day_sends_nothing(
    project_dir: Path, engine: Engine, smtp_server: SmtpServer
) -> None:
    root = make_day_shop(project_dir, engine)
    assert _send(root, engine, _smtp(smtp_server)).sent == 3
    again = _send(root, engine, _smtp(smtp_server))
    assert again.sent == 0
    assert again.due == 1  # only the letter, which SMTP cannot carry, is still owed
    assert len(smtp_server.handler.received) == 3


def test_a_run_on_postgresql_gives_the_ledger_statistics_before_it_reads_it(
    project_dir: Path, engine: Engine, smtp_server: SmtpServer
) -> None:
    """Without statistics PostgreSQL reads the whole ledger for each chunk's contacts
    (store/engine.py `refresh_stale_statistics`): the run analyzes a ledger that has none."""
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's planner statistics")
    root = make_day_shop(project_dir, engine)
    analyzed = text(
        "SELECT coalesce(last_analyze, last_autoanalyze) IS NOT NULL FROM pg_stat_user_tables"
        " WHERE relid = 'ledger'::regclass"
    )
    with engine.connect() as connection:
        assert connection.execute(analyzed).scalar_one() is False
    assert _send(root, engine, _smtp(smtp_server)).sent == 3
    with engine.connect() as connection:
        assert connection.execute(analyzed).scalar_one() is True


def test_550_fails_and_suppresses_that_address_the_others_are_sent(
    project_dir: Path, engine: Engine, smtp_server: SmtpServer
) -> None:
    root = make_day_shop(project_dir, engine)
    smtp_server.handler.refuse["bob@x.example"] = "550 5.1.1 no such user"
    summary = _send(root, engine, _smtp(smtp_server))
    assert (summary.sent, summary.failed, summary.suppressed) == (2, 1, 1)
    statuses = _statuses(engine)
    assert statuses == {"c1": "sent", "c2": "failed", "c3": "sent", "c4": "deferred"}
    with engine.connect() as connection:
        assert is_suppressed(connection, "bob@x.example")
        assert not is_suppressed(connection, "ann@x.example")
        error = connection.execute(select(ledger.c.error).where(ledger.c.contact_id == "c2"))
        assert "550" in str(error.scalar_one())
    assert sorted(r.rcpt_tos[0] for r in smtp_server.handler.received) == [
        "ann@x.example",
        "cor@x.example",
    ]


def test_451_once_is_deferred_and_sent_in_the_runs_second_pass(
    project_dir: Path, engine: Engine, smtp_server: SmtpServer
) -> None:
    root = make_day_shop(project_dir, engine)
    smtp_server.handler.temporary["ann@x.example"] = 1
    summary = _send(root, engine, _smtp(smtp_server), retry_backoff=[timedelta(0)])
    assert summary.sent == 3 and summary.failed == 0 and summary.deferred == 1
    assert _statuses(engine)["c1"] == "sent"
    assert [r.rcpt_tos for r in smtp_server.handler.received].count(["ann@x.example"]) == 1


def _row(engine: Engine, contact_id: str) -> Any:
    """The contact's ledger row of the shop's `spring` mail."""
    with engine.connect() as connection:
        query = select(ledger).where(
            ledger.c.contact_id == contact_id, ledger.c.campaign == "spring"
        )
        return connection.execute(query).one()


def test_4xx_that_lasts_stays_deferred_with_the_reply_and_a_later_run_sends_it(
    project_dir: Path, engine: Engine, smtp_server: SmtpServer
) -> None:
    root = make_day_shop(project_dir, engine)
    smtp_server.handler.temporary["ann@x.example"] = 10
    summary = _send(root, engine, _smtp(smtp_server))
    assert (summary.sent, summary.deferred, summary.failed) == (2, 1, 0)
    row = _row(engine, "c1")
    assert row.status == "deferred" and row.attempts == 1
    assert "451 4.7.1 greylisted" in row.error
    assert row.next_attempt_at > datetime.now(UTC).replace(tzinfo=None) + timedelta(minutes=4)
    # A run before the next try leaves it alone; one after it (the clock moved on) sends it.
    assert _send(root, engine, _smtp(smtp_server)).sent == 0
    with engine.begin() as connection:
        connection.execute(update(ledger).values(next_attempt_at=datetime(2000, 1, 1)))
    smtp_server.handler.temporary.clear()
    later = _send(root, engine, _smtp(smtp_server), DAY + timedelta(days=1))
    assert later.sent == 1 and DAY in later.earlier  # owed from the day before
    row = _row(engine, "c1")
    assert (row.status, row.day, row.due) == ("sent", DAY + timedelta(days=1), DAY)
    assert [r.rcpt_tos for r in smtp_server.handler.received].count(["ann@x.example"]) == 1


def test_4xx_until_the_validity_ends_is_expired_with_the_last_reply(
    project_dir: Path, engine: Engine, smtp_server: SmtpServer
) -> None:
    campaigns = {"spring": CAMPAIGNS["spring"] + "valid_for: 2d\n"}
    root = make_day_shop(project_dir, engine, campaigns=campaigns)
    smtp_server.handler.temporary["ann@x.example"] = 100
    backoff = [timedelta(0)]
    for offset in range(4):  # a run a day; the server keeps refusing Ann
        _send(root, engine, _smtp(smtp_server), DAY + timedelta(days=offset), retry_backoff=backoff)
    row = _row(engine, "c1")
    assert row.status == "expired"
    assert "valid_for 2d ran out on 2027-04-08" in row.error and "451" in row.error
    assert "ann@x.example" not in [r.rcpt_tos[0] for r in smtp_server.handler.received]
    result = CliRunner().invoke(
        main, ["--project", str(root), "--db", str(engine.url), "log", "--status", "expired"]
    )
    assert "expired" in result.output and "451" in result.output, result.output


def test_server_down_raises_and_loses_nothing(
    project_dir: Path, engine: Engine, smtp_server: SmtpServer
) -> None:
    root = make_day_shop(project_dir, engine)
    with pytest.raises(TransportDown):
        _send(root, engine, SmtpTransport("smtp://127.0.0.1:9", backoff=()))
    statuses = _statuses(engine)  # every reservation given back to the queue: nothing was sent
    assert set(statuses.values()) == {"deferred"}
    assert "cannot use the SMTP server" in _row(engine, "c1").error
    assert _send(root, engine, _smtp(smtp_server)).sent == 3


def test_outbox_writes_eml_files_and_letters_for_post_contacts(
    project_dir: Path, engine: Engine, tmp_path: Path
) -> None:
    root = make_day_shop(project_dir, engine)
    outbox = tmp_path / "outbox"
    summary = _send(root, engine, OutboxTransport(outbox))
    assert summary.sent == 4
    emls = sorted(outbox.glob("*.eml"))
    assert len(emls) == 3
    for path in emls:
        message = _parse(path.read_bytes())
        assert message["Message-ID"] and message["List-Unsubscribe-Post"]
    letters = list((outbox / "letters").glob("*.html"))
    assert len(letters) == 1
    letter = letters[0].read_text(encoding="utf-8")
    for line in ("Dirk Visser", "Kerkstraat 5", "1234 AB Utrecht", "@page"):
        assert line in letter
    [pdf] = (outbox / "letters").glob("*.pdf")  # the `pdf` extra is part of the dev install
    assert pdf.stem == letters[0].stem
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
    assert _statuses(engine) == {"c1": "sent", "c2": "sent", "c3": "sent", "c4": "sent"}


def test_dry_run_renders_and_reserves_nothing(project_dir: Path, engine: Engine) -> None:
    root = make_day_shop(project_dir, engine)
    summary = _send(root, engine, None, dry_run=True)
    assert summary.would_send == 4
    assert _statuses(engine) == {}


def test_caps_count_the_ledger(project_dir: Path, engine: Engine, smtp_server: SmtpServer) -> None:
    root = make_day_shop(project_dir, engine, settings=policy_settings(week=1, gap="0d"))
    monday = DAY - timedelta(days=1)
    with engine.begin() as connection:
        connection.execute(
            insert(ledger).values(
                contact_id="c1", campaign="news", step="main", occurrence="news:1",
                day=monday, template="mail", channel="email", status="sent",
                reserved_at=datetime(2027, 4, 5, 9), sent_at=datetime(2027, 4, 5, 9),
            )
        )  # fmt: skip
    summary = _send(root, engine, _smtp(smtp_server))
    assert summary.sent == 2
    reasons = [reason for reason in summary.waiting if "max_per_week 1" in reason]
    assert reasons and summary.waiting[reasons[0]] == 1
    row = _row(engine, "c1")  # still owed: a later day of its validity may have room
    assert row.status == "deferred" and "max_per_week 1" in row.error
    assert "ann@x.example" not in [r.rcpt_tos[0] for r in smtp_server.handler.received]


def test_limit_sends_at_most_n(project_dir: Path, engine: Engine, smtp_server: SmtpServer) -> None:
    root = make_day_shop(project_dir, engine)
    summary = _send(root, engine, _smtp(smtp_server), limit=2)
    assert summary.sent == 2 and summary.limited
    assert _send(root, engine, _smtp(smtp_server)).sent == 1


def test_the_smtp_threads_get_their_turn_often_while_delivering_and_the_setting_is_restored(
    project_dir: Path, engine: Engine, smtp_server: SmtpServer
) -> None:
    """While a run delivers, its connections' threads take the GIL in turn every 0.5 ms, not
    Python's 5 ms (each SMTP reply would wait for the deciding thread); a program that calls
    send_day gets its own setting back."""
    root = make_day_shop(project_dir, engine)
    seen: list[float] = []

    class Watching(SmtpTransport):
        def deliver(self, item: Outgoing) -> Outcome:
            seen.append(sys.getswitchinterval())
            return super().deliver(item)

    before = sys.getswitchinterval()
    summary = _send(root, engine, Watching(smtp_server.url, backoff=(0.01,)))
    assert summary.sent == 3 and seen == [SWITCH_INTERVAL_S] * 3
    assert sys.getswitchinterval() == before


def test_a_run_at_its_limit_decides_no_more_contacts(
    project_dir: Path, engine: Engine, smtp_server: SmtpServer
) -> None:
    """A try of one mail on a big shop does not wait for the whole shop to be decided: the
    contacts after the limit are not looked at, and the next run sends them."""
    root = make_day_shop(project_dir, engine)
    first = _send(root, engine, _smtp(smtp_server), limit=1, chunk_contacts=1, decide_contacts=1)
    assert first.sent == 1 and first.limited
    assert first.due < 3  # the third contact was never decided
    rest = _send(root, engine, _smtp(smtp_server))
    assert rest.sent == 2 and not rest.limited
    assert list(_statuses(engine).values()).count("sent") == 3  # as one run without a limit


def test_a_dead_runs_reservations_are_taken_over_at_once(
    project_dir: Path, engine: Engine, smtp_server: SmtpServer
) -> None:
    root = make_day_shop(project_dir, engine)
    first_id = message_id(("c1", "spring", "main", "spring:2027-04-06"), "shop.example")
    now = datetime.now(UTC).replace(tzinfo=None)
    with engine.begin() as connection:  # run 7 was sending c1 and had reserved c2, and died
        run = connection.execute(
            insert(send_runs)
            .values(host="elsewhere", pid=1, as_of=DAY, started_at=now)
            .returning(send_runs.c.id)
        ).scalar_one()
        for contact_id, status in (("c1", "sending"), ("c2", "reserved")):
            connection.execute(
                insert(ledger).values(
                    contact_id=contact_id, campaign="spring", step="main",
                    occurrence="spring:2027-04-06", day=DAY, due=DAY, template="mail",
                    channel="email", status=status, run_id=run, reserved_at=now,
                    message_id=first_id if contact_id == "c1" else None,
                )
            )  # fmt: skip
    summary = _send(root, engine, _smtp(smtp_server))  # seconds later, not minutes
    assert summary.stale == 1 and summary.taken_over == 1
    assert summary.sent == 2 and summary.unknown_waiting == 1  # c2 had never left: sent now
    assert _statuses(engine)["c1"] == "unknown"
    retry = _send(root, engine, _smtp(smtp_server), retry_unknown=True)
    assert retry.sent == 1
    assert retry.retried == [(("c1", "spring", "main", "spring:2027-04-06"), first_id)]
    assert _statuses(engine)["c1"] == "sent"
    again = [r for r in smtp_server.handler.received if r.rcpt_tos == ["ann@x.example"]]
    assert len(again) == 1
    assert _parse(again[0].content)["Message-ID"] == first_id  # the same as the first try


def test_a_live_runs_reservations_are_left_alone_and_named(
    project_dir: Path, engine: Engine, smtp_server: SmtpServer
) -> None:
    root = make_day_shop(project_dir, engine)
    with SendRun(engine, DAY) as live, engine.begin() as connection:
        connection.execute(
            insert(ledger).values(
                contact_id="c1", campaign="spring", step="main", occurrence="spring:2027-04-06",
                day=DAY, due=DAY, template="mail", channel="email", status="reserved",
                run_id=live.id, reserved_at=live.started_at,
            )
        )  # fmt: skip
        connection.commit()
        summary = _send(root, engine, _smtp(smtp_server))
        assert summary.sent == 2 and summary.taken_over == 0
        assert [(info.id, n) for info, n in summary.held] == [(live.id, 1)]
        assert _statuses(engine)["c1"] == "reserved"


def test_cli_send_and_log_csv(cli: Cli, engine: Engine, smtp_server: SmtpServer) -> None:
    make_day_shop(cli.project, engine)
    result = cli("send", "--as-of", DAY.isoformat(), "--smtp", smtp_server.url)
    assert result.exit_code == 0, result.output
    assert "sent 3" in result.output
    result = cli("log", "--format", "csv")
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.output)))
    assert tuple(rows[0]) == LOG_COLUMNS
    header = result.output.splitlines()[0]
    assert header == (
        "contact_id,campaign,step,occurrence,day,template,channel,status,message_id,sent_at,error"
    )
    assert [(r[0], r[1], r[4], r[7]) for r in rows[1:]] == [
        (c, "spring", "2027-04-06", "sent") for c in ("c1", "c2", "c3")
    ] + [("c4", "spring", "2027-04-06", "deferred")]
    assert all(r[8].startswith("<") and r[9] for r in rows[1:4])
    assert (
        rows[4][10] == "channel post: give --letters DIR (or [letters] dir) for the letters"
    )  # the error column
    only = cli("log", "--contact", "c2", "--format", "json")
    assert '"contact_id": "c2"' in only.output and "c1" not in only.output
    assert "spring" in cli("log").output


def test_cli_send_needs_a_destination(
    cli: Cli, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TROUW_SMTP_URL", raising=False)
    make_day_shop(cli.project, engine)
    result = cli("send", "--as-of", DAY.isoformat())
    assert result.exit_code == 2
    assert "--outbox" in result.output


def test_rate_paces_the_mails(project_dir: Path, engine: Engine, smtp_server: SmtpServer) -> None:
    root = make_day_shop(project_dir, engine)
    transport = SmtpTransport(smtp_server.url, rate=10)
    started = time.monotonic()
    summary = _send(root, engine, transport)
    assert summary.sent == 3
    assert time.monotonic() - started >= 0.2  # three slots, 0.1 s apart


def test_pace_spaces_slots_and_does_not_burst_after_a_pause() -> None:
    pace = Pace(50)
    started = time.monotonic()
    for _ in range(6):
        pace.wait()
    assert time.monotonic() - started >= 0.1  # 5 intervals of 20 ms after the first
    time.sleep(0.1)
    started = time.monotonic()
    pace.wait()
    pace.wait()
    assert time.monotonic() - started >= 0.02  # the pause saved up no burst


def test_cli_exits_1_when_the_server_refuses_every_mail(
    cli: Cli, engine: Engine, smtp_server: SmtpServer
) -> None:
    make_day_shop(cli.project, engine)
    for address in ("ann@x.example", "bob@x.example", "cor@x.example"):
        smtp_server.handler.refuse[address] = "554 5.7.1 relay access denied"
    result = cli("send", "--as-of", DAY.isoformat(), "--smtp", smtp_server.url)
    assert result.exit_code == 1, result.output
    assert "none of the 3 mails was accepted" in result.output


def test_cli_rate_needs_smtp(cli: Cli, engine: Engine, tmp_path: Path) -> None:
    make_day_shop(cli.project, engine)
    result = cli("send", "--as-of", DAY.isoformat(), "--outbox", str(tmp_path), "--rate", "5")
    assert result.exit_code == 2
    assert "--rate" in result.output and "--smtp" in result.output


def test_cli_workers_in_processes_report_earlier_runs_but_not_each_other(
    cli: Cli, engine: Engine, smtp_server: SmtpServer
) -> None:
    make_day_shop(cli.project, engine)
    options = ("send", "--as-of", DAY.isoformat(), "--smtp", smtp_server.url, "--workers", "2")
    first = cli(*options, "--chunk-contacts", "1")
    assert first.exit_code == 0, first.output
    assert "sent 3" in first.output
    assert "meanwhile" not in first.output and "already in the ledger" not in first.output
    again = cli(*options)
    assert again.exit_code == 0, again.output
    assert "1 owed, sent 0" in again.output  # the letter SMTP cannot carry
    assert "waiting 1: channel post" in again.output  # once, not per worker
    assert len(smtp_server.handler.received) == 3


class _FailsAfter:
    """An outbox that goes down after `n` mails, as an SMTP server that dies mid-run."""

    def __init__(self, folder: Path, n: int) -> None:
        self.outbox = OutboxTransport(folder)
        self.left = n

    def refuses(self, channel: str) -> str | None:
        return None

    def deliver(self, item: Outgoing) -> Outcome:
        if self.left <= 0:
            raise TransportDown("the server went away")
        self.left -= 1
        return self.outbox.deliver(item)

    def close(self) -> None:
        pass


def test_a_transport_down_mid_run_releases_every_chunk_not_delivered(
    project_dir: Path, engine: Engine, tmp_path: Path
) -> None:
    root = make_day_shop(project_dir, engine)
    outbox = tmp_path / "outbox"
    with pytest.raises(TransportDown):
        _send(root, engine, _FailsAfter(outbox, 1), chunk_contacts=1, send_batch=1)
    statuses = _statuses(engine)  # nothing left reserved or in doubt: given back to the queue
    assert set(statuses.values()) == {"deferred", "sent"}
    assert list(statuses.values()).count("sent") == 1
    rest = _send(root, engine, OutboxTransport(outbox), chunk_contacts=1)
    assert rest.sent == 3  # the other two mails and the letter
    assert len(list(outbox.glob("*.eml"))) == 3


def test_a_contact_no_longer_in_the_audience_is_cancelled_with_the_reason(
    project_dir: Path, engine: Engine, smtp_server: SmtpServer
) -> None:
    campaigns = {"spring": "segment: named\n" + CAMPAIGNS["spring"]}
    (project_dir / "segments").mkdir(exist_ok=True)
    everyone = "where:\n  attribute: first_name\n  exists: true\n"
    (project_dir / "segments" / "named.yaml").write_text(everyone, encoding="utf-8")
    root = make_day_shop(project_dir, engine, campaigns=campaigns)
    only_ann = "where:\n  attribute: first_name\n  equals: Ann\n"  # the others left since
    (root / "segments" / "named.yaml").write_text(only_ann, encoding="utf-8")
    summary = _send(root, engine, _smtp(smtp_server))
    assert summary.sent == 1
    # Bob, Cor and Dirk's letter: decided before the channel (SMTP carries no letters) matters.
    assert summary.cancelled == {"not in the campaign's audience 'named'": 3}
    assert _row(engine, "c2").status == "cancelled"
    assert "audience" in _row(engine, "c2").error
    assert _send(root, engine, _smtp(smtp_server)).due == 0  # nothing is owed any more


@pytest.mark.parametrize("decide_contacts", [1, 2, 10])
def test_a_deleted_contacts_plan_sends_are_cancelled_wherever_their_id_sorts(
    project_dir: Path, engine: Engine, smtp_server: SmtpServer, decide_contacts: int
) -> None:
    # The run decides the contacts chunk by chunk of ids; the plan rows of contacts deleted
    # since (the first id, the last: past every contact left) still fall in a chunk.
    root = make_day_shop(project_dir, engine)
    with engine.begin() as connection:
        connection.execute(delete(contacts).where(contacts.c.id.in_(["c1", "c4"])))
    summary = _send(
        root, engine, _smtp(smtp_server), chunk_contacts=1, decide_contacts=decide_contacts
    )
    assert summary.sent == 2
    assert summary.cancelled == {"contact no longer exists": 2}
    assert _statuses(engine) == {
        "c1": "cancelled", "c2": "sent", "c3": "sent", "c4": "cancelled"
    }  # fmt: skip
    assert sorted(r.rcpt_tos[0] for r in smtp_server.handler.received) == [
        "bob@x.example",
        "cor@x.example",
    ]


def test_cli_smtp_with_letters_sends_mail_and_writes_letters_in_one_run(
    cli: Cli, engine: Engine, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    make_day_shop(cli.project, engine)
    letters = tmp_path / "print"
    result = cli(
        "send", "--as-of", DAY.isoformat(), "--smtp", smtp_server.url, "--letters", str(letters)
    )
    assert result.exit_code == 0, result.output
    assert "sent 4" in result.output
    assert len(smtp_server.handler.received) == 3
    [letter] = letters.glob("*.html")
    assert "Kerkstraat 5" in letter.read_text(encoding="utf-8")
    assert set(_statuses(engine).values()) == {"sent"}


def test_letters_dir_from_the_settings(cli: Cli, engine: Engine, smtp_server: SmtpServer) -> None:
    make_day_shop(cli.project, engine, settings=policy_settings() + '\n[letters]\ndir = "print"\n')
    result = cli("send", "--as-of", DAY.isoformat(), "--smtp", smtp_server.url)
    assert result.exit_code == 0, result.output
    assert len(list((cli.project / "print").glob("*.html"))) == 1


def test_cli_send_names_its_key_and_refuses_a_secret_that_differs(
    cli: Cli, engine: Engine, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_day_shop(cli.project, engine)
    monkeypatch.setenv("TROUW_SECRET", "the shop's secret")
    first = cli("send", "--as-of", DAY.isoformat(), "--smtp", smtp_server.url)
    assert first.exit_code == 0, first.output
    assert "links signed with key" in first.output and "(TROUW_SECRET)" in first.output
    monkeypatch.setenv("TROUW_SECRET", "a typo")  # another machine, another secret
    second = cli("send", "--as-of", DAY.isoformat(), "--smtp", smtp_server.url)
    assert second.exit_code == 2
    assert "is not the secret this database's mail was signed with" in second.output
    monkeypatch.delenv("TROUW_SECRET")  # or none at all: the project key would differ too
    third = cli("send", "--as-of", DAY.isoformat(), "--smtp", smtp_server.url)
    assert third.exit_code == 2 and "which is not set here" in third.output


def test_cli_send_without_trouw_secret_signs_with_the_project_key(
    cli: Cli, engine: Engine, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TROUW_SECRET", raising=False)
    make_day_shop(cli.project, engine)
    result = cli("send", "--as-of", DAY.isoformat(), "--smtp", smtp_server.url)
    assert result.exit_code == 0, result.output
    assert "(the project key)" in result.output
    with engine.connect() as connection:
        key = signing_key(connection)
    signer = LinkSigner("https://x.example", key.secret)
    for mail in smtp_server.handler.received:  # every unsubscribe link checks with that key
        header = _parse(mail.content)["List-Unsubscribe"]
        token = header.split("/u/", 1)[1].split(">", 1)[0]
        assert signer.read_contact("u", token) is not None


def test_a_letters_pdf_fetches_nothing_from_the_network(
    project_dir: Path, engine: Engine, tmp_path: Path
) -> None:
    requests: list[str] = []

    class Recorder(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        tracking = f'\n[tracking]\nbase_url = "http://127.0.0.1:{server.server_port}"\n'
        root = make_day_shop(project_dir, engine, settings=tracking + policy_settings())
        pixel = '<img src="{{ open_pixel_url }}" width="1" height="1" alt="">'
        mail = root / "templates" / "mail.html"
        mail.write_text(mail.read_text(encoding="utf-8") + pixel, encoding="utf-8")
        summary = _send(root, engine, OutboxTransport(tmp_path / "outbox"))
        assert summary.sent == 4
        [pdf] = (tmp_path / "outbox" / "letters").glob("*.pdf")
        assert pdf.read_bytes().startswith(b"%PDF-")
    finally:
        server.shutdown()
        server.server_close()
    assert requests == []  # no open pixel fetched: no false open


def test_cli_send_for_a_year_without_a_plan_fails_loudly(
    cli: Cli, engine: Engine, smtp_server: SmtpServer
) -> None:
    make_day_shop(cli.project, engine)  # planned 2027 only
    result = cli("send", "--as-of", "2028-01-05", "--smtp", smtp_server.url)
    assert result.exit_code == 1
    assert "there is no plan for 2028" in result.output and "trouw plan 2028" in result.output
    calendar = cli("calendar", "2028")
    assert calendar.exit_code == 1 and "there is no plan for 2028" in calendar.output
