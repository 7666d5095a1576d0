"""Findings -> events, suppressions and the memory of processed messages.

Each message is applied in one transaction that also records its key in
`processed_messages`: a message whose key is there was applied before and is
only put away again. So a rerun, or a run after a crash between the commit and
the mailbox's move, never acts on a message twice.

A finding belongs to the ledger row the message's VERP return path names (a
valid token, verp.py: the most reliable, as it needs none of the original
headers; a forged one is counted and the other ways are tried), else to the
ledger row whose `message_id` is the reported one (the event then names the
campaign, step, occurrence, template and ledger id, as tracked clicks do, so
reports count the bounce for that mail), else to the
contacts with the reported address (domain always case-insensitive; the local
part too unless `[bounces] local_part = "exact"`).

Effects: a hard bounce or a complaint suppresses the address and records a
`bounce` (tag hard) or `complaint` event; a soft bounce records a `bounce`
event tagged soft, and `soft_limit` of them within `soft_window` suppress the
address; an unsubscribe records an `unsubscribe` event. The ledger row stays
`sent`: the mail did leave, the bounce is an event about it, and the report's
"delivered" is sent minus the sent mails that bounced after (reports/funnel.py).
An address no contact has is reported; a hard bounce or complaint for it is
still suppressed, as in an import of a provider's bounce export.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, Connection, Engine, func, insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from trouw.bounces.mailboxes import Reader
from trouw.bounces.parse import Finding, Report, read_report
from trouw.bounces.verp import read_token
from trouw.durations import parse_duration
from trouw.importing import contacts_with, normalise_email, suppress_addresses
from trouw.project import Bounces
from trouw.store import atomic, contacts, events, ledger, processed_messages
from trouw.templates.links import accepted_secrets, signing_key

EVENT_TYPES = {"hard": "bounce", "soft": "bounce", "complaint": "complaint"}
SUPPRESSING = {"hard": "hard-bounce", "complaint": "complaint"}
MAX_UNMATCHED = 100  # unmatched addresses kept for the summary; all are counted


@dataclass
class FetchSummary:
    read: int = 0  # messages read from the mailbox
    known: int = 0  # processed by an earlier run: put away, not applied again
    hard: int = 0
    soft: int = 0
    complaints: int = 0
    unsubscribes: int = 0
    suppressed: int = 0  # addresses newly suppressed
    skipped: int = 0  # messages that are no report (an out-of-office, ...)
    unmatched: int = 0  # findings about no contact and no sent mail
    unmatched_shown: list[str] = field(default_factory=list)
    forged: int = 0  # messages to a return path whose token is forged or altered
    forged_shown: list[str] = field(default_factory=list)

    def forge(self, token: str) -> None:
        self.forged += 1
        if len(self.forged_shown) < MAX_UNMATCHED:
            self.forged_shown.append(token)

    def unmatch(self, what: str) -> None:
        self.unmatched += 1
        if len(self.unmatched_shown) < MAX_UNMATCHED:
            self.unmatched_shown.append(what)


class Recipient(NamedTuple):
    """A contact a finding is about, and the sent mail when the report named it."""

    contact_id: str
    email: str | None
    mail: dict[str, Any]  # campaign, step, occurrence, template, ledger_id; {} when unknown


def fetch_bounces(engine: Engine, reader: Reader, rules: Bounces) -> FetchSummary:
    """Apply every message of the mailbox once, each in its own transaction, and put each
    away after its commit."""
    summary = FetchSummary()
    for handle, raw in reader.messages():
        summary.read += 1
        report = read_report(raw)
        with atomic(engine) as connection:
            if _remember(connection, report):
                apply_report(connection, report, rules, summary)
            else:
                summary.known += 1
        reader.done(handle)
    return summary


def _remember(connection: Connection, report: Report) -> bool:
    """Record the message as processed; False when it was already (by this or another run,
    which a concurrent run waits for on PostgreSQL and SQLite alike)."""
    dialect_insert = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
    outcome = ",".join(sorted({f.kind for f in report.findings})) or "skipped"
    added = connection.execute(
        dialect_insert(processed_messages)
        .values(
            key=report.key,
            message_id=(report.message_id or "")[:300] or None,
            processed_at=datetime.now(UTC).replace(tzinfo=None),
            outcome=outcome[:20],
        )
        .on_conflict_do_nothing()
        .returning(processed_messages.c.key)
    )
    return added.first() is not None


def apply_report(
    connection: Connection, report: Report, rules: Bounces, summary: FetchSummary
) -> None:
    if not report.findings:
        summary.skipped += 1
        return
    by_token = _token_recipient(connection, report, summary)
    for number, finding in enumerate(report.findings):
        _count(finding, summary)
        recipients = [by_token] if by_token else _recipients(connection, finding, rules)
        address = finding.address or next((r.email for r in recipients if r.email), None)
        if finding.kind in SUPPRESSING and address:
            summary.suppressed += suppress_addresses(
                connection, [address], SUPPRESSING[finding.kind]
            )
        if not recipients:
            summary.unmatch(finding.address or finding.message_id or "(no address)")
            continue
        connection.execute(
            insert(events),
            [_event(report, number, finding, recipient, address) for recipient in recipients],
        )
        if finding.kind == "soft" and address:
            summary.suppressed += _soft_limit(connection, report, recipients, address, rules)


def _count(finding: Finding, summary: FetchSummary) -> None:
    if finding.kind == "hard":
        summary.hard += 1
    elif finding.kind == "soft":
        summary.soft += 1
    elif finding.kind == "complaint":
        summary.complaints += 1
    else:
        summary.unsubscribes += 1


def _token_recipient(
    connection: Connection, report: Report, summary: FetchSummary
) -> Recipient | None:
    """The contact and mail a valid VERP token of the report names; a forged one is counted."""
    if not report.tokens:
        return None
    secrets = [signing_key(connection).secret, *accepted_secrets(connection)]
    for token in report.tokens:
        digest = read_token(token, secrets)
        if digest is None:
            summary.forge(token)
            continue
        # The Message-ID is <digest@domain>; the domain is the sender's at the time.
        found = _mail(connection, ledger.c.message_id.like(f"<{digest}@%"))
        if found is not None:
            return found
    return None


def _recipients(connection: Connection, finding: Finding, rules: Bounces) -> list[Recipient]:
    """The contacts the finding is about: the one of the sent mail it names, else those with
    its address."""
    if finding.message_id:
        mail = _mail(connection, ledger.c.message_id == finding.message_id)
        # A report about several recipients of one mail names each: one that is not the
        # contact of the mail is found by its address.
        named = finding.address and mail is not None and not _same(finding.address, mail.email)
        if mail is not None and not named:
            return [mail]
    if not finding.address:
        return []
    return [
        Recipient(contact_id, email, {})
        for contact_id, email in contacts_with(connection, [finding.address], rules.local_part)
    ]


def _mail(connection: Connection, where: ColumnElement[bool]) -> Recipient | None:
    """The contact of the newest ledger row `where` picks, with that mail."""
    row = connection.execute(
        select(
            ledger.c.id,
            ledger.c.contact_id,
            ledger.c.campaign,
            ledger.c.step,
            ledger.c.occurrence,
            ledger.c.template,
            contacts.c.email,
        )
        .join(contacts, contacts.c.id == ledger.c.contact_id)
        .where(where)
        .order_by(ledger.c.id.desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    mail = {
        "ledger_id": int(row.id),
        "campaign": row.campaign,
        "step": row.step,
        "occurrence": row.occurrence,
        "template": row.template,
    }
    return Recipient(str(row.contact_id), row.email, mail)


def _same(address: str, email: str | None) -> bool:
    return email is not None and normalise_email(address).lower() == email.lower()


def _event(
    report: Report, number: int, finding: Finding, recipient: Recipient, address: str | None
) -> dict[str, Any]:
    kind = EVENT_TYPES.get(finding.kind, "unsubscribe")
    properties: dict[str, Any] = {"source": report.source, **recipient.mail}
    for name, value in (
        ("address", address),
        ("status", finding.status),
        ("reason", finding.reason),
        ("message_id", finding.message_id),
        ("report_id", report.message_id),
    ):
        if value:
            properties[name] = value[:1000]
    if finding.kind in ("hard", "soft"):
        tag: str | None = finding.kind
    else:  # as the tracking server tags an unsubscribe: the campaign, when known
        tag = recipient.mail.get("campaign") if finding.kind == "unsubscribe" else None
    return {
        # Unique per message, finding and contact: the database refuses a second copy.
        "external_id": f"mailbox:{report.key[:40]}:{number}:{recipient.contact_id}"[:200],
        "contact_id": recipient.contact_id,
        "type": kind,
        "occurred_at": report.received_at,
        "tag": tag,
        "properties": properties,
    }


def _soft_limit(
    connection: Connection,
    report: Report,
    recipients: Sequence[Recipient],
    address: str,
    rules: Bounces,
) -> int:
    """Suppress `address` when one of its contacts has `soft_limit` soft bounces within
    `soft_window` up to this one; returns how many addresses that newly suppressed."""
    since = report.received_at - timedelta(days=parse_duration(rules.soft_window).approx_days())
    counts = connection.execute(
        select(func.count())
        .select_from(events)
        .where(
            events.c.contact_id.in_([r.contact_id for r in recipients]),
            events.c.type == "bounce",
            events.c.tag == "soft",
            events.c.occurred_at > since,
            events.c.occurred_at <= report.received_at,
        )
        .group_by(events.c.contact_id)
    ).scalars()
    if max(counts, default=0) < rules.soft_limit:
        return 0
    return suppress_addresses(connection, [address], "soft-bounces")
