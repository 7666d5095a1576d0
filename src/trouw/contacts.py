"""One person's data: show it, export all of it, or forget it.

Forgetting erases the profile, its events, plan and ledger rows, and keeps
only a hash of the email address as a suppression record, so that a later
re-import of the same address is never mailed again. The links in mail they
were sent stop counting: they carry the contact row's link key, and a
contact imported later under the same id is a new row with another key
(templates/links.py).

Mail written to files (`send --outbox DIR`, letters for post contacts) is
outside the database: `forget_contact` names the files their sent ledger
rows made (as `send` names them: mails, which are files only if they went to
an outbox, and letters); `remove_sent_files` deletes those found in the
folders given, and makes the day's letter bundle (`DAY/letters.pdf`,
`addresses.csv`) of each deleted letter again without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, delete, exists, insert, select

from trouw.errors import ContactNotFound
from trouw.importing import email_hash
from trouw.store import contacts, events, ledger, plan, segment_members, suppressions


def _jsonable(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def get_contact(connection: Connection, contact_id: str) -> dict[str, Any]:
    row = connection.execute(select(contacts).where(contacts.c.id == contact_id)).mappings().first()
    if row is None:
        raise ContactNotFound(
            f"no contact with id '{contact_id}'",
            fix="check the id with `trouw segments members` or import the contact",
        )
    return dict(row)


def is_suppressed(connection: Connection, email: str | None) -> bool:
    if not email:
        return False
    return bool(
        connection.execute(
            select(exists().where(suppressions.c.email_hash == email_hash(email)))
        ).scalar()
    )


def recent_events(connection: Connection, contact_id: str, limit: int = 10) -> list[dict[str, Any]]:
    query = (
        select(events)
        .where(events.c.contact_id == contact_id)
        .order_by(events.c.occurred_at.desc(), events.c.id.desc())
        .limit(limit)
    )
    return [dict(row) for row in connection.execute(query).mappings()]


def export_contact(connection: Connection, contact_id: str) -> dict[str, Any]:
    """Everything stored about one person, as JSON-ready data (a GDPR access request)."""
    profile = get_contact(connection, contact_id)

    def rows(table: Any, order: Any) -> list[dict[str, Any]]:
        query = select(table).where(table.c.contact_id == contact_id).order_by(order)
        return [
            {key: _jsonable(value) for key, value in row.items()}
            for row in connection.execute(query).mappings()
        ]

    return {
        "contact": {key: _jsonable(value) for key, value in profile.items()},
        "suppressed": is_suppressed(connection, profile["email"]),
        "events": rows(events, events.c.occurred_at),
        "plan": rows(plan, plan.c.day),
        "ledger": rows(ledger, ledger.c.day),
        "segment_memberships": rows(segment_members, segment_members.c.snapshot_id),
    }


@dataclass(frozen=True)
class Forgotten:
    """What forgetting a person erased: rows per table, and the names of the files their
    sent mails (if sent to an outbox) and letters were written to, without extension
    (`DAY-CAMPAIGN-STEP-ID-HASH`)."""

    counts: dict[str, int]
    mail_files: list[str] = field(default_factory=list)
    letter_files: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class RemovedFiles:
    """What `remove_sent_files` did and could not do."""

    removed: list[Path]
    days: list[Path]  # the letter days whose bundle was made again (or removed) without them
    missing: list[str]  # names searched for and not found
    unsearched: int  # mails that may be in an outbox folder nobody named


def forget_contact(connection: Connection, contact_id: str) -> Forgotten:
    """Erase one person; keep a suppression record of the address."""
    profile = get_contact(connection, contact_id)
    mails, letters = sent_file_names(connection, contact_id)
    counts = {}
    for name, table in (
        ("events", events),
        ("plan", plan),
        ("ledger", ledger),
        ("segment_memberships", segment_members),
    ):
        counts[name] = connection.execute(
            delete(table).where(table.c.contact_id == contact_id)
        ).rowcount
    connection.execute(delete(contacts).where(contacts.c.id == contact_id))
    if profile["email"] and not is_suppressed(connection, profile["email"]):
        connection.execute(
            insert(suppressions).values(
                email_hash=email_hash(profile["email"]),
                reason="forgotten",
                created_at=datetime.now(UTC).replace(tzinfo=None),
            )
        )
    return Forgotten(counts, mails, letters)


def sent_file_names(connection: Connection, contact_id: str) -> tuple[list[str], list[str]]:
    """The names (without extension) `send` gave the files of the contact's sent mails and
    letters: the run's day, campaign, step, contact and Message-ID. (Mails, then letters.)"""
    from trouw.sending.ledger import SENT
    from trouw.sending.run import safe_name  # the one rule for the names; a heavy import

    query = (
        select(
            ledger.c.day, ledger.c.campaign, ledger.c.step, ledger.c.message_id, ledger.c.channel
        )
        .where(ledger.c.contact_id == contact_id, ledger.c.status == SENT)
        .where(ledger.c.message_id.is_not(None))
        .order_by(ledger.c.day, ledger.c.id)
    )
    mails: list[str] = []
    letters: list[str] = []
    for day, campaign, step, message_id, channel in connection.execute(query):
        name = safe_name(day.isoformat(), campaign, step, contact_id, str(message_id)[1:9])
        (letters if channel == "post" else mails).append(name)
    return mails, letters


def remove_sent_files(
    forgotten: Forgotten, outboxes: Sequence[Path], letters_dir: Path | None
) -> RemovedFiles:
    """Delete a forgotten person's mails (.eml) in the outbox folders and letters (.html,
    .pdf) in those folders' letters/ and the letters folder. Mails are files only when
    they went to an outbox: without one named, they are counted, not searched for. The
    bundle of a day that held one of the letters is made again without it."""
    from trouw.sending.letterdays import finish_days, pdf_merger
    from trouw.sending.letters import pdf_writer

    folders = [*outboxes, *[folder / "letters" for folder in outboxes]]
    folders += [letters_dir] if letters_dir is not None else []
    wanted = [*forgotten.letter_files, *(forgotten.mail_files if outboxes else [])]
    removed: list[Path] = []
    days: set[Path] = set()
    found: set[str] = set()
    for folder in dict.fromkeys(folders):
        for name in wanted:
            for extension in (".eml", ".html", ".pdf"):
                path = folder / f"{name}{extension}"
                if not path.is_file():
                    continue
                path.unlink()
                removed.append(path)
                found.add(name)
                if extension != ".eml" and (folder / name[:10]).is_dir():
                    days.add(folder / name[:10])  # the day's bundle holds the letter too
    for folder in sorted({day.parent for day in days}):
        finish_days(folder, pdf=pdf_writer(), merge=pdf_merger())
    missing = [name for name in wanted if name not in found]
    unsearched = 0 if outboxes else len(forgotten.mail_files)
    return RemovedFiles(removed, sorted(days), missing, unsearched)
