"""What a provider's bounce or complaint records: a suppression and events (no HTTP here).

A hard bounce or a complaint suppresses the address (`suppress_addresses`, the
same record `trouw send` and imports keep), whether or not a contact has it.
Each contact with the address (case-insensitively), or else the contact of the
ledger row with the provider's Message-ID, gets a `bounce` (tag hard/soft) or
`complaint` event; when the Message-ID names one of their mails, the event's
properties say which, as a click's do. The event's external id is made from
the provider's event id, so a webhook delivered twice records once.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.dialects import postgresql, sqlite

from trouw.importing import normalise_email, suppress_addresses
from trouw.store import contacts, events, ledger
from trouw.tracking.record import now_utc

BOUNCE = "bounce"
COMPLAINT = "complaint"
HARD = "hard"
SOFT = "soft"
DETAIL_LENGTH = 500


@dataclass(frozen=True)
class Feedback:
    """One recipient's bounce or complaint, as a provider reported it."""

    provider: str  # ses, postmark, sendgrid, mailgun
    kind: str  # BOUNCE or COMPLAINT
    address: str
    hard: bool = True  # a hard bounce; complaints always suppress
    event_id: str | None = None  # the provider's id of the event (with the address: unique)
    message_id: str | None = None  # the Message-ID header of the mail, when given
    at: datetime | None = None  # naive UTC; None: now
    detail: str = ""  # the provider's diagnostic

    @property
    def suppresses(self) -> bool:
        return self.kind == COMPLAINT or self.hard

    @property
    def tag(self) -> str | None:
        if self.kind == BOUNCE:
            return HARD if self.hard else SOFT
        return None


@dataclass
class Outcome:
    contacts: list[str] = field(default_factory=list)  # who it was recorded for
    recorded: int = 0  # events written (0 for a repeat)
    suppressed: bool = False  # the address is newly suppressed


def record_feedback(connection: Connection, item: Feedback) -> Outcome:
    """Suppress the address when it must be, and record the event for its contacts."""
    address = normalise_email(item.address)
    outcome = Outcome()
    if item.suppresses:
        outcome.suppressed = suppress_addresses(connection, [address], item.kind) > 0
    mail_ids = _message_ids(item.message_id)
    owners = _owners(connection, address, mail_ids)
    outcome.contacts = owners
    if not owners:
        return outcome
    mails = _mails(connection, owners, mail_ids)
    rows = []
    for contact_id in owners:
        properties: dict[str, Any] = {"provider": item.provider}
        if item.detail:
            properties["detail"] = item.detail[:DETAIL_LENGTH]
        if contact_id in mails:
            properties.update(mails[contact_id])
        rows.append(
            {
                "external_id": _external_id(item, contact_id),
                "contact_id": contact_id,
                "type": item.kind,
                "occurred_at": item.at or now_utc(),
                "tag": item.tag,
                "properties": properties,
            }
        )
    dialect = postgresql if connection.dialect.name == "postgresql" else sqlite
    statement = (
        dialect.insert(events)
        .on_conflict_do_nothing(index_elements=["external_id"])
        .execution_options(preserve_rowcount=True)  # else unknown for INSERTs on psycopg
    )
    for row in rows:  # one by one: rowcount tells what a repeat did not write
        outcome.recorded += connection.execute(statement, row).rowcount
    return outcome


def _message_ids(message_id: str | None) -> list[str]:
    """The forms a Message-ID may be stored in: the ledger keeps it with its <>."""
    if not message_id:
        return []
    bare = message_id.strip().strip("<>").strip()
    return [f"<{bare}>", bare] if bare else []


def _owners(connection: Connection, address: str, mail_ids: list[str]) -> list[str]:
    """The contacts with the address, else the one the Message-ID's mail went to."""
    query = select(contacts.c.id).order_by(contacts.c.id)
    if connection.dialect.name == "postgresql":
        # A contact being forgotten either is gone already or waits for this commit.
        query = query.with_for_update(read=True, key_share=True)
    # The exact address first (indexed); the case-insensitive scan only when it finds none.
    for condition in (
        contacts.c.email == address,
        func.lower(contacts.c.email) == address.lower(),
    ):
        found = [str(c) for c in connection.execute(query.where(condition)).scalars()]
        if found:
            return found
    if mail_ids:
        mailed = select(ledger.c.contact_id).where(ledger.c.message_id.in_(mail_ids))
        return [str(c) for c in connection.execute(query.where(contacts.c.id.in_(mailed)))]
    return []


def _mails(
    connection: Connection, owners: list[str], mail_ids: list[str]
) -> dict[str, dict[str, Any]]:
    """Per contact, the ledger row with the Message-ID: which mail bounced."""
    if not mail_ids:
        return {}
    query = select(
        ledger.c.contact_id,
        ledger.c.campaign,
        ledger.c.step,
        ledger.c.occurrence,
        ledger.c.template,
        ledger.c.id,
    ).where(ledger.c.contact_id.in_(owners), ledger.c.message_id.in_(mail_ids))
    found: dict[str, dict[str, Any]] = {}
    for row in connection.execute(query):
        found[str(row.contact_id)] = {
            "campaign": row.campaign,
            "step": row.step,
            "occurrence": row.occurrence,
            "template": row.template,
            "ledger_id": row.id,
        }
    return found


def _external_id(item: Feedback, contact_id: str) -> str | None:
    """Unique per provider event, recipient and contact; None without a provider id."""
    if not item.event_id:
        return None
    key = "\x1f".join((item.event_id, item.kind, item.address.lower(), contact_id))
    return f"{item.provider}:{hashlib.sha256(key.encode()).hexdigest()[:40]}"
