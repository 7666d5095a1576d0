"""`[sender] return_path`: each mail's MAIL FROM is a signed bounce+TOKEN@ address, and a
bounce delivered there is matched by its token, even without the original mail's headers."""

from __future__ import annotations

import re
from email import message_from_bytes
from email.utils import parseaddr
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

from tests.bounces.conftest import DAY, FILES, REPORT_DATE, ok, write_maildir, write_mbox
from tests.conftest import Cli, write_files
from tests.planning.shop import policy
from tests.sending.conftest import DAY as SEND_DAY
from tests.sending.conftest import SmtpServer, make_day_shop
from tests.sending.conftest import smtp_server as smtp_server  # the fixture, for this module
from trouw.bounces.verp import TOKEN_LENGTH, read_token, return_path, token_in
from trouw.errors import ProjectError
from trouw.project import load_project
from trouw.sending import SmtpTransport, send_day
from trouw.store import events, ledger, open_store
from trouw.templates.links import signing_key

RETURN_PATH = 'return_path = "bounce@shop.example"\n'
VERP = re.compile(r"bounce\+([a-z2-7]{42})@shop\.example")


def _smtp_send(root: Path, engine: Engine, server: SmtpServer) -> None:
    transport = SmtpTransport(server.url, backoff=(0.01, 0.01, 0.01))
    try:
        summary = send_day(engine, load_project(root), SEND_DAY, transport)
    finally:
        transport.close()
    assert summary.sent == 3


def test_mail_from_is_a_signed_return_path_per_mail(
    project_dir: Path, engine: Engine, smtp_server: SmtpServer
) -> None:
    root = make_day_shop(project_dir, engine, settings=RETURN_PATH + policy())
    _smtp_send(root, engine, smtp_server)
    received = smtp_server.handler.received
    senders = [mail.mail_from for mail in received]
    assert all(VERP.fullmatch(sender) for sender in senders), senders
    assert len(set(senders)) == 3 and all(len(s.partition("@")[0]) <= 64 for s in senders)
    with engine.connect() as connection:
        secret = signing_key(connection).secret
        ids = dict(connection.execute(select(ledger.c.contact_id, ledger.c.message_id)).all())
    by_recipient = {mail.rcpt_tos[0]: mail for mail in received}
    for contact_id, address in (("c1", "ann@x.example"), ("c2", "bob@x.example")):
        mail = by_recipient[address]
        token = token_in(mail.mail_from)
        assert token is not None and len(token) == TOKEN_LENGTH
        # The token names the mail's ledger row (its Message-ID's digest) ...
        assert read_token(token, [secret]) == ids[contact_id][1:33]
        # ... only under this project's key; and the mail itself carries no Return-Path.
        assert read_token(token, ["another secret"]) is None
        # The last character has two spare bits: another spelling of it is no token.
        alphabet = "abcdefghijklmnopqrstuvwxyz234567"
        spare = alphabet[alphabet.index(token[-1]) + 1]
        assert read_token(token[:-1] + spare, [secret]) is None
        assert b"Return-Path" not in mail.content
        assert mail.mail_from == return_path("bounce@shop.example", ids[contact_id], secret)


def test_without_the_setting_mail_from_is_the_sender(
    project_dir: Path, engine: Engine, smtp_server: SmtpServer
) -> None:
    root = make_day_shop(project_dir, engine)
    _smtp_send(root, engine, smtp_server)
    assert {mail.mail_from for mail in smtp_server.handler.received} == {"hello@shop.example"}


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("bounce+x@shop.example", "has a '+'"),
        ("Shop <bounce@shop.example>", "the part before @"),
        ("bounce@", "names no domain"),
        ("x" * 22 + "@shop.example", "1 to 21 letters"),
    ],
)
def test_a_bad_return_path_is_reported_with_its_line(
    project_dir: Path, value: str, why: str
) -> None:
    settings = project_dir / "trouw.toml"
    text = settings.read_text().replace("[sender]\n", f'[sender]\nreturn_path = "{value}"\n', 1)
    settings.write_text(text, encoding="utf-8")
    line = text.splitlines().index(f'return_path = "{value}"') + 1
    with pytest.raises(ProjectError) as caught:
        load_project(project_dir)
    message = str(caught.value)
    assert f"line {line}, key 'sender.return_path'" in message and why in message, message


# A DSN as some servers send it: no Original-Message-ID, no original headers; the final
# recipient is where the contact's mail was forwarded to, an address no contact has.
BARE_DSN = """\
Date: {date}
From: Mail Delivery System <MAILER-DAEMON@mx.forward.example>
Message-Id: <{report}@mx.forward.example>
Subject: Undelivered Mail Returned to Sender
To: {to}
Delivered-To: {to}
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

Your message could not be delivered.

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.forward.example

Final-Recipient: rfc822; {recipient}
Action: failed
Status: 5.1.1
Diagnostic-Code: smtp; 550 5.1.1 no such user

--B--
"""


def _dsn(to: str, recipient: str, report: str) -> bytes:
    text = BARE_DSN.format(date=REPORT_DATE, to=to, recipient=recipient, report=report)
    return text.replace("\n", "\r\n").encode()


@pytest.fixture
def verp_shop(cli: Cli, tmp_path: Path) -> dict[str, str]:
    """The bounces shop with a return path, its mail sent to an outbox: recipient -> the
    envelope sender its .eml names."""
    write_files(cli.project, FILES)
    settings = cli.project / "trouw.toml"
    text = settings.read_text().replace("[sender]\n", "[sender]\n" + RETURN_PATH, 1)
    settings.write_text(text + policy(), encoding="utf-8")
    ok(cli("import", "contacts", str(cli.project / "contacts.csv")))
    ok(cli("plan", "2027", "--as-of", "2027-01-01"))
    outbox = tmp_path / "outbox"
    ok(cli("send", "--as-of", DAY, "--outbox", str(outbox)))
    paths = {}
    for path in outbox.glob("*.eml"):
        mail = message_from_bytes(path.read_bytes())
        paths[parseaddr(str(mail["To"]))[1]] = parseaddr(str(mail["Return-Path"]))[1]
    assert len(paths) == 5 and all(VERP.fullmatch(p) for p in paths.values()), paths
    return paths


def _forged(address: str) -> str:
    """The address with one character of its token's signature changed."""
    at = address.index("@") - 5
    return f"{address[:at]}{'a' if address[at] != 'a' else 'b'}{address[at + 1 :]}"


def test_a_bare_dsn_is_matched_by_its_token_and_a_forged_one_is_not(
    cli: Cli, verp_shop: dict[str, str], tmp_path: Path
) -> None:
    bob_path = verp_shop["bob@x.example"]
    messages = [
        # Bob's mail bounced at the address it was forwarded to: only the token tells.
        _dsn(bob_path, "bob.forwarded@forward.example", "r1"),
        # A forged token naming Ann's row: not matched by it; the address matches Cor.
        _dsn(_forged(verp_shop["ann@x.example"]), "cor@x.example", "r2"),
        # A forged token and an unknown address: unmatched.
        _dsn(_forged(verp_shop["eva@x.example"]), "nobody@forward.example", "r3"),
    ]
    maildir = write_maildir(tmp_path / "Maildir", messages)
    result = cli("bounces", "fetch", "--maildir", str(maildir))
    ok(result)
    assert "3 hard bounces" in result.output
    assert "1 unmatched, 2 to a forged return path" in result.output
    assert result.output.count("forged: return path token") == 2
    engine = open_store(cli.db_url)
    with engine.connect() as connection:
        found = {
            str(row.contact_id): row.properties
            for row in connection.execute(
                select(events.c.contact_id, events.c.properties).where(events.c.type == "bounce")
            )
        }
        bob_row = connection.execute(
            select(ledger.c.id).where(ledger.c.contact_id == "c2")
        ).scalar_one()
    engine.dispose()
    assert set(found) == {"c2", "c3"}
    assert found["c2"]["ledger_id"] == bob_row and found["c2"]["campaign"] == "spring"
    assert found["c2"]["address"] == "bob.forwarded@forward.example"
    assert "ledger_id" not in found["c3"]  # matched by address only


def test_a_token_matches_first_in_an_mbox(
    cli: Cli, verp_shop: dict[str, str], tmp_path: Path
) -> None:
    # Delivered to Dora's return path, the report names Ann's address: the token wins.
    mbox = write_mbox(
        tmp_path / "bounces.mbox", [_dsn(verp_shop["dora@x.example"], "ann@x.example", "r4")]
    )
    ok(cli("bounces", "fetch", "--mbox", str(mbox)))
    engine = open_store(cli.db_url)
    with engine.connect() as connection:
        rows = connection.execute(
            select(events.c.contact_id, events.c.tag).where(events.c.type == "bounce")
        ).all()
    engine.dispose()
    assert [(str(c), t) for c, t in rows] == [("c4", "hard")]
