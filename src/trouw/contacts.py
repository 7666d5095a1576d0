"""One person's data: show it, export all of it, or forget it.

Forgetting erases the profile, its events, plan and ledger rows, and keeps
only a hash of the email address as a suppression record, so that a later
re-import of the same address is never mailed again.
"""

from __future__ import annotations

from datetime import UTC, datetime
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


def forget_contact(connection: Connection, contact_id: str) -> dict[str, int]:
    """Erase one person; keep a suppression record of the address. Returns counts."""
    profile = get_contact(connection, contact_id)
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
    return counts
