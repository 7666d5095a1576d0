"""A shop that really sent its day's mail (`trouw send --outbox`), and the bounce mailbox's
messages made from the RFCs' examples in data/, naming those mails' Message-IDs."""

from __future__ import annotations

import mailbox
from dataclasses import dataclass
from email import message_from_bytes
from email.utils import parseaddr
from pathlib import Path
from string import Template
from typing import Any

import pytest
from sqlalchemy import Engine, select

from tests.conftest import Cli, write_files
from tests.planning.shop import TEMPLATE, policy
from trouw.store import events, open_store, suppressions

DATA = Path(__file__).parent / "data"
DAY = "2027-04-06"  # a Tuesday: every contact gets `spring`
REPORT_DATE = "Tue, 6 Apr 2027 18:00:00 +0200"  # the evening of the send
CONTACTS = (
    "id,email,first_name\n"
    "c1,ann@x.example,Ann\n"
    "c2,bob@x.example,Bob\n"
    "c3,cor@x.example,Cor\n"
    "c4,dora@x.example,Dora\n"
    "c5,eva@x.example,Eva\n"
)
FILES = {
    "campaigns/spring.yaml": f"priority: 50\nschedule:\n  dates: [{DAY}]\ntemplate: mail\n",
    "templates/mail.html": TEMPLATE,
    "contacts.csv": CONTACTS,
}
# The messages of the mailbox: file in data/, and the Message-ID of the report itself.
MESSAGES = (
    ("rfc3464-b2-multi.eml", "<JAA13167.773673707@CS.UTK.EDU>"),
    ("rfc3464-b1-failed-4xx.eml", "<RAA14128.773615765@CS.UTK.EDU>"),
    ("rfc5965-b2-abuse.eml", "<arf-1@example.com>"),
    ("mailto-unsubscribe.eml", "<unsub-1@x.example>"),
    ("out-of-office.eml", "<ooo-1@x.example>"),
)


def ok(result: Any) -> None:
    assert result.exit_code == 0, result.output


@dataclass
class SentShop:
    cli: Cli
    mail_ids: dict[str, str]  # recipient -> Message-ID of the mail trouw sent

    def messages(self) -> list[bytes]:
        """The mailbox's messages, each naming the mail it is about."""
        return [self.message(name, report_id) for name, report_id in MESSAGES]

    def message(self, name: str, report_id: str) -> bytes:
        ids = self.mail_ids
        values = {
            "date": REPORT_DATE,
            "report_id": report_id,
            "ann": "ann@x.example",
            "ann_mail": ids["ann@x.example"],
            "bob": "bob@x.example",
            "bob_mail": ids["bob@x.example"],
            "cor_shouted": "Cor@X.EXAMPLE",
            "cor_mail_bare": ids["cor@x.example"].strip("<>"),
            "dora_shouted": "DORA@X.Example",
        }
        text = Template((DATA / name).read_text(encoding="utf-8")).substitute(values)
        return text.replace("\n", "\r\n").encode()

    def engine(self) -> Engine:
        return open_store(self.cli.db_url)


@pytest.fixture
def shop(cli: Cli, tmp_path: Path) -> SentShop:
    """Five contacts, the day's mail sent to an outbox; soft bounces suppress at the second."""
    write_files(cli.project, FILES)
    settings = cli.project / "trouw.toml"
    settings.write_text(
        settings.read_text() + policy() + "\n[bounces]\nsoft_limit = 2\n", encoding="utf-8"
    )
    ok(cli("import", "contacts", str(cli.project / "contacts.csv")))
    ok(cli("plan", "2027", "--as-of", "2027-01-01"))
    outbox = tmp_path / "outbox"
    ok(cli("send", "--as-of", DAY, "--outbox", str(outbox)))
    mail_ids = {}
    for path in outbox.glob("*.eml"):
        mail = message_from_bytes(path.read_bytes())
        mail_ids[parseaddr(str(mail["To"]))[1]] = str(mail["Message-ID"])
    assert len(mail_ids) == 5
    return SentShop(cli, mail_ids)


def write_mbox(path: Path, messages: list[bytes]) -> Path:
    box = mailbox.mbox(path)
    for raw in messages:
        box.add(raw)
    box.close()
    return path


def write_maildir(path: Path, messages: list[bytes]) -> Path:
    box = mailbox.Maildir(path)
    for raw in messages:
        box.add(raw)
    box.close()
    return path


def outcome(engine: Engine) -> tuple[set[tuple[str, str, str | None]], dict[str, str]]:
    """(contact, type, tag) of every event, and suppression reason per address hash."""
    with engine.connect() as connection:
        found = {
            (str(c), str(t), g)
            for c, t, g in connection.execute(
                select(events.c.contact_id, events.c.type, events.c.tag)
            )
        }
        suppressed = {
            str(h): str(r)
            for h, r in connection.execute(select(suppressions.c.email_hash, suppressions.c.reason))
        }
    return found, suppressed
