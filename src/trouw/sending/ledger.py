"""The send ledger: one row per send, reserved before delivery and confirmed after.

A row is keyed by (contact, campaign, step, occurrence), unique in the
database, so a reservation is an INSERT that does nothing for a key that is
already there: a second run for the same day reserves nothing, and two runs
at once can never both own a send. A row goes

    reserved  -> sending  -> sent | failed | suppressed
    (chunk)      (batch of a few dozen, committed before the first of them leaves)

A run's rows carry its `reserved_at` as the owner's token: a run only moves
rows it still owns. When a run dies, its `reserved` rows had certainly not
left, so the next run deletes them and makes them again; its `sending` rows
may or may not have reached the inbox, so they become `unknown` and are never
sent again unless the operator asks. The window of doubt is one batch.

Functions take a Connection; the caller decides the transaction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, bindparam, delete, func, or_, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from trouw.store import contacts, ledger

RESERVED = "reserved"
SENDING = "sending"
SENT = "sent"
FAILED = "failed"
UNKNOWN = "unknown"
SUPPRESSED = "suppressed"
STATUSES = (RESERVED, SENDING, SENT, FAILED, UNKNOWN, SUPPRESSED)
# Statuses that may have reached the inbox, and so count toward the caps.
COUNTED = frozenset({RESERVED, SENDING, SENT, UNKNOWN})
# A reservation older than this belongs to a run that died: a live run confirms
# each batch long before (a batch is a few hundred mails).
STALE_AFTER = timedelta(minutes=10)

Key = tuple[str, str, str, str]  # (contact_id, campaign, step, occurrence)


@dataclass(frozen=True)
class Send:
    """One send as the ledger holds it."""

    contact_id: str
    campaign: str
    step: str
    occurrence: str
    day: date
    template: str | None
    channel: str

    @property
    def key(self) -> Key:
        return (self.contact_id, self.campaign, self.step, self.occurrence)


@dataclass(frozen=True)
class Confirmation:
    """How a reserved send ended: `sent`, `failed` or `suppressed`, with when and why."""

    key: Key
    status: str
    sent_at: datetime | None = None
    error: str | None = None
    template: str | None = None  # the variant rendered, when known (else the reserved one)


def message_id(key: Key, domain: str) -> str:
    """A Message-ID derived from the ledger key: a retry of the same row reuses it."""
    digest = hashlib.sha256("\x1f".join(key).encode()).hexdigest()[:32]
    return f"<{digest}@{domain}>"


_KEY_COLUMNS = (ledger.c.contact_id, ledger.c.campaign, ledger.c.step, ledger.c.occurrence)
# One statement per dialect, run as an executemany: SQLAlchemy compiles it once and sends
# the rows as multi-row VALUES batches ("insertmanyvalues"), RETURNING the rows it made.
_RESERVE: dict[str, Any] = {
    "postgresql": pg_insert(ledger).on_conflict_do_nothing().returning(*_KEY_COLUMNS),
    "sqlite": sqlite_insert(ledger).on_conflict_do_nothing().returning(*_KEY_COLUMNS),
}


def reserve(
    connection: Connection, sends: Sequence[Send], *, domain: str, now: datetime
) -> list[Send]:
    """Reserve `sends` in one INSERT; returns those this call reserved.

    A send whose key is already in the ledger (another run's, or an earlier
    day's) is left alone and not returned.
    """
    if not sends:
        return []
    rows = [
        {
            "contact_id": s.contact_id,
            "campaign": s.campaign,
            "step": s.step,
            "occurrence": s.occurrence,
            "day": s.day,
            "template": s.template,
            "channel": s.channel,
            "status": RESERVED,
            "message_id": message_id(s.key, domain),
            "reserved_at": now,
        }
        for s in sends
    ]
    returned = connection.execute(_RESERVE[connection.dialect.name], rows).all()
    reserved = {tuple(str(v) for v in row) for row in returned}
    return [s for s in sends if s.key in reserved]


def reclaim_unknown(connection: Connection, sends: Sequence[Send], *, now: datetime) -> list[Send]:
    """Turn these sends' `unknown` rows back into reservations (`--retry-unknown`)."""
    if not sends:
        return []
    keys = [s.key for s in sends]
    tuple_key = tuple_(ledger.c.contact_id, ledger.c.campaign, ledger.c.step, ledger.c.occurrence)
    returned = connection.execute(
        update(ledger)
        .where(ledger.c.status == UNKNOWN, tuple_key.in_(keys))
        .values(status=RESERVED, reserved_at=now, error=None)
        .returning(ledger.c.contact_id, ledger.c.campaign, ledger.c.step, ledger.c.occurrence)
    ).all()
    reclaimed = {tuple(str(v) for v in row) for row in returned}
    return [s for s in sends if s.key in reclaimed]


_KEY_MATCH = and_(
    ledger.c.contact_id == bindparam("k_contact"),
    ledger.c.campaign == bindparam("k_campaign"),
    ledger.c.step == bindparam("k_step"),
    ledger.c.occurrence == bindparam("k_occurrence"),
)


def _key_params(key: Key) -> dict[str, str]:
    return {"k_contact": key[0], "k_campaign": key[1], "k_step": key[2], "k_occurrence": key[3]}


def start_sending(connection: Connection, keys: Sequence[Key], *, token: datetime) -> list[Key]:
    """Mark these reservations of the run `token` as leaving now; returns the keys still owned.

    Committed before the first of them is handed to the transport: a `reserved`
    row has certainly not left, a `sending` row may have.
    """
    if not keys:
        return []
    tuple_key = tuple_(ledger.c.contact_id, ledger.c.campaign, ledger.c.step, ledger.c.occurrence)
    returned = connection.execute(
        update(ledger)
        .where(
            ledger.c.status == RESERVED, ledger.c.reserved_at == token, tuple_key.in_(list(keys))
        )
        .values(status=SENDING)
        .returning(ledger.c.contact_id, ledger.c.campaign, ledger.c.step, ledger.c.occurrence)
    ).all()
    owned = {tuple(str(v) for v in row) for row in returned}
    return [key for key in keys if key in owned]


def confirm(
    connection: Connection, confirmations: Iterable[Confirmation], *, token: datetime
) -> int:
    """Record how the run `token`'s sends ended, in one executemany; returns the rows updated.

    A row another run turned `unknown` while this one was slow is confirmed
    all the same: this run knows how it ended.
    """
    params = [
        {
            **_key_params(c.key),
            "new_status": c.status,
            "new_sent_at": c.sent_at,
            "new_error": c.error,
            "new_template": c.template,
        }
        for c in confirmations
    ]
    if not params:
        return 0
    statement = (
        update(ledger)
        .where(
            _KEY_MATCH,
            or_(ledger.c.status == SENDING, ledger.c.status == UNKNOWN),  # no IN: executemany
            ledger.c.reserved_at == bindparam("k_token"),
        )
        .values(
            status=bindparam("new_status"),
            sent_at=bindparam("new_sent_at"),
            error=bindparam("new_error"),
            template=func.coalesce(bindparam("new_template"), ledger.c.template),
        )
    )
    return connection.execute(statement, [{**p, "k_token": token} for p in params]).rowcount


def release(connection: Connection, keys: Iterable[Key], *, token: datetime) -> int:
    """Delete the run `token`'s reservations that certainly did not leave, for a later run."""
    params = [{**_key_params(key), "k_token": token} for key in keys]
    if not params:
        return 0
    statement = delete(ledger).where(
        _KEY_MATCH,
        or_(ledger.c.status == RESERVED, ledger.c.status == SENDING),
        ledger.c.reserved_at == bindparam("k_token"),
    )
    return connection.execute(statement, params).rowcount


def mark_stale(connection: Connection, *, before: datetime) -> tuple[int, int]:
    """Clear up the rows of runs that died (reserved before `before`, never confirmed).

    Their `reserved` rows never left: deleted, so this run makes them again.
    Their `sending` rows may have: `unknown`. Returns (released, unknown).
    """
    released = connection.execute(
        delete(ledger).where(ledger.c.status == RESERVED, ledger.c.reserved_at < before)
    ).rowcount
    unknown = connection.execute(
        update(ledger)
        .where(ledger.c.status == SENDING, ledger.c.reserved_at < before)
        .values(status=UNKNOWN, error="the run that sent it ended before confirming")
    ).rowcount
    return released, unknown


def claim_contacts(connection: Connection, contact_ids: Sequence[str]) -> set[str]:
    """PostgreSQL: lock these contacts for this transaction, skipping those another run holds.

    `SELECT … FOR NO KEY UPDATE SKIP LOCKED` on the contact rows: one worker at
    a time decides a contact's sends, so the caps hold across workers, and a
    worker that meets a held contact moves on to the next instead of waiting.
    Contacts that no longer exist are returned as claimed (nothing to hold).
    On SQLite the write transaction already holds the whole database.
    """
    if connection.dialect.name != "postgresql" or not contact_ids:
        return set(contact_ids)
    ids: Any = bindparam("ids", expanding=True)
    locked = set(
        connection.execute(
            select(contacts.c.id)
            .where(contacts.c.id.in_(ids))
            .with_for_update(skip_locked=True, key_share=True),
            {"ids": list(contact_ids)},
        ).scalars()
    )
    rest = [c for c in contact_ids if c not in locked]
    held = set(
        connection.execute(select(contacts.c.id).where(contacts.c.id.in_(ids)), {"ids": rest})
        .scalars()
        .all()
        if rest
        else ()
    )
    return {c for c in contact_ids if c not in held}


def unknown_sends(connection: Connection, day: date) -> list[Send]:
    """The `unknown` rows of a day, as sends (for `--retry-unknown`)."""
    query = (
        select(
            ledger.c.contact_id,
            ledger.c.campaign,
            ledger.c.step,
            ledger.c.occurrence,
            ledger.c.day,
            ledger.c.template,
            ledger.c.channel,
        )
        .where(ledger.c.day == day, ledger.c.status == UNKNOWN)
        .order_by(ledger.c.contact_id, ledger.c.campaign, ledger.c.step, ledger.c.occurrence)
    )
    return [Send(*row) for row in connection.execute(query)]


def count_unknown(connection: Connection, day: date) -> int:
    query = (
        select(func.count())
        .select_from(ledger)
        .where(ledger.c.day == day, ledger.c.status == UNKNOWN)
    )
    return int(connection.execute(query).scalar_one())


@dataclass
class History:
    """A contact's ledger: the keys it holds (with status) and the sends counted for caps."""

    status: dict[tuple[str, str, str], str]
    counted: dict[tuple[str, str, str], tuple[date, str]]  # key -> (day, campaign)
    recent: set[tuple[str, str, str]]  # keys reserved since the run started (by a peer)


def histories(
    connection: Connection,
    contact_ids: Sequence[str],
    *,
    since: date,
    until: date,
    run_started: datetime | None = None,
) -> dict[str, History]:
    """The ledger of these contacts: every key, and the counted sends with `day` in range.

    Keys reserved at or after `run_started` are also listed as `recent`: made
    by another worker of the same run (or a run working at the same time).
    """
    found: dict[str, History] = {}
    query = select(
        ledger.c.contact_id,
        ledger.c.campaign,
        ledger.c.step,
        ledger.c.occurrence,
        ledger.c.day,
        ledger.c.status,
        ledger.c.reserved_at,
    ).where(ledger.c.contact_id.in_(bindparam("ids", expanding=True)))
    for start in range(0, len(contact_ids), 500):
        ids = list(contact_ids[start : start + 500])
        for contact_id, campaign, step, occurrence, day, status, reserved_at in connection.execute(
            query, {"ids": ids}
        ):
            history = found.setdefault(str(contact_id), History({}, {}, set()))
            history.status[(campaign, step, occurrence)] = status
            if run_started is not None and reserved_at >= run_started:
                history.recent.add((campaign, step, occurrence))
            if status in COUNTED and since <= day <= until:
                history.counted[(campaign, step, occurrence)] = (day, campaign)
    return found


LOG_COLUMNS = (
    "contact_id",
    "campaign",
    "step",
    "occurrence",
    "day",
    "template",
    "channel",
    "status",
    "message_id",
    "sent_at",
)


def log_rows(
    connection: Connection, *, contact_id: str | None = None, campaign: str | None = None
) -> Iterable[dict[str, Any]]:
    """The ledger, filtered, in (day, contact, campaign, step) order, as JSON-ready rows."""
    query = select(*(ledger.c[name] for name in LOG_COLUMNS))
    if contact_id is not None:
        query = query.where(ledger.c.contact_id == contact_id)
    if campaign is not None:
        query = query.where(ledger.c.campaign == campaign)
    query = query.order_by(
        ledger.c.day, ledger.c.contact_id, ledger.c.campaign, ledger.c.step, ledger.c.occurrence
    )
    for row in connection.execution_options(yield_per=2000).execute(query).mappings():
        yield {
            name: (value.isoformat() if hasattr(value, "isoformat") else value)
            for name, value in row.items()
        }


__all__ = [
    "COUNTED",
    "FAILED",
    "LOG_COLUMNS",
    "RESERVED",
    "SENDING",
    "SENT",
    "STALE_AFTER",
    "STATUSES",
    "SUPPRESSED",
    "UNKNOWN",
    "Confirmation",
    "History",
    "Send",
    "claim_contacts",
    "confirm",
    "count_unknown",
    "histories",
    "log_rows",
    "mark_stale",
    "message_id",
    "reclaim_unknown",
    "release",
    "reserve",
    "start_sending",
    "unknown_sends",
]
