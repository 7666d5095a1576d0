"""`trouw bounces fetch` from an mbox and a maildir: the RFC examples about mails really
sent, matched through the ledger, applied once, on SQLite and PostgreSQL."""

from __future__ import annotations

import mailbox
from pathlib import Path

from sqlalchemy import select

from tests.bounces.conftest import SentShop, ok, outcome, write_maildir, write_mbox
from trouw.importing import email_hash
from trouw.store import events, ledger, processed_messages

# What the five messages do: Ann's mail bounced hard (a DSN about three recipients, two of
# them strangers), Bob's soft (failed with 4.0.0), Cor complained (ARF, his address in
# capitals), Dora unsubscribed by the mailto link (from DORA@X.Example), Eva's
# out-of-office is no report.
EVENTS = {
    ("c1", "bounce", "hard"),
    ("c2", "bounce", "soft"),
    ("c3", "complaint", None),
    ("c4", "unsubscribe", None),  # the mailto mail does not say which mail it is about
}
SUPPRESSED = {
    email_hash("ann@x.example"): "hard-bounce",
    email_hash("wsnell@sdcc13.ucsd.edu"): "hard-bounce",  # no contact has it: still suppressed
    email_hash("cor@x.example"): "complaint",
}
SUMMARY = (
    "5 messages read, 0 processed before; 2 hard bounces, 2 soft bounces, 1 complaints, "
    "1 unsubscribes, 2 unmatched, 1 skipped (no report); 3 addresses suppressed"
)


def test_an_mbox_is_applied_once_and_matched_through_the_ledger(
    shop: SentShop, tmp_path: Path
) -> None:
    mbox = write_mbox(tmp_path / "bounces.mbox", shop.messages())
    result = shop.cli("bounces", "fetch", "--mbox", str(mbox))
    ok(result)
    assert SUMMARY in result.output
    assert "unmatched: no contact and no sent mail for johnh@hpnjld.njd.hp.com" in result.output
    assert "unmatched: no contact and no sent mail for wsnell@sdcc13.ucsd.edu" in result.output
    engine = shop.engine()
    assert outcome(engine) == (EVENTS, SUPPRESSED)
    with engine.connect() as connection:
        # The events name the mail they are about, as tracked clicks do.
        hard = connection.execute(
            select(events.c.properties).where(events.c.contact_id == "c1")
        ).scalar_one()
        sent = connection.execute(
            select(ledger.c.id, ledger.c.status, ledger.c.error).where(ledger.c.contact_id == "c1")
        ).one()
        assert hard["ledger_id"] == sent.id and hard["campaign"] == "spring"
        assert hard["status"] == "5.0.0" and "registered gateway user" in hard["reason"]
        # The ledger row stays `sent`: the mail did leave; the bounce is an event about it.
        assert (sent.status, sent.error) == ("sent", None)
        assert connection.execute(select(processed_messages.c.key)).all().__len__() == 5

    again = shop.cli("bounces", "fetch", "--mbox", str(mbox))
    ok(again)
    assert "5 messages read, 5 processed before; 0 hard bounces" in again.output
    assert outcome(engine) == (EVENTS, SUPPRESSED)
    engine.dispose()


def test_soft_bounces_suppress_at_the_limit(shop: SentShop, tmp_path: Path) -> None:
    """[bounces] soft_limit = 2: Bob's second soft bounce suppresses his address."""
    first = shop.message("rfc3464-b1-failed-4xx.eml", "<soft-1@mta.example>")
    second = shop.message("rfc3464-b1-failed-4xx.eml", "<soft-2@mta.example>")
    ok(shop.cli("bounces", "fetch", "--mbox", str(write_mbox(tmp_path / "1.mbox", [first]))))
    engine = shop.engine()
    assert email_hash("bob@x.example") not in outcome(engine)[1]
    result = shop.cli("bounces", "fetch", "--mbox", str(write_mbox(tmp_path / "2.mbox", [second])))
    ok(result)
    assert "1 addresses suppressed" in result.output
    assert outcome(engine)[1] == {email_hash("bob@x.example"): "soft-bounces"}
    engine.dispose()


def test_a_maildir_moves_each_message_to_the_processed_folder(
    shop: SentShop, tmp_path: Path
) -> None:
    maildir = write_maildir(tmp_path / "Maildir", shop.messages())
    result = shop.cli("bounces", "fetch", "--maildir", str(maildir))
    ok(result)
    assert SUMMARY in result.output
    box = mailbox.Maildir(maildir, create=False)
    assert len(box) == 0
    done = box.get_folder("trouw-processed")
    assert len(done) == 5
    assert all(message.get_subdir() == "cur" and "S" in message.get_flags() for message in done)
    again = shop.cli("bounces", "fetch", "--maildir", str(maildir))
    ok(again)
    assert "0 messages read" in again.output
    engine = shop.engine()
    assert outcome(engine) == (EVENTS, SUPPRESSED)
    engine.dispose()


def test_a_message_applied_before_a_crash_is_only_put_away(shop: SentShop, tmp_path: Path) -> None:
    """The process died after the commit, before the move: the rerun moves it, nothing more."""
    messages = shop.messages()
    ok(shop.cli("bounces", "fetch", "--mbox", str(write_mbox(tmp_path / "b.mbox", messages))))
    maildir = write_maildir(tmp_path / "Maildir", messages)  # the same messages, not moved
    result = shop.cli("bounces", "fetch", "--maildir", str(maildir))
    ok(result)
    assert "5 messages read, 5 processed before; 0 hard bounces" in result.output
    assert len(mailbox.Maildir(maildir, create=False)) == 0
    engine = shop.engine()
    assert outcome(engine) == (EVENTS, SUPPRESSED)
    engine.dispose()
