"""The send ledger: a durable send queue, one row per send, until it is settled.

A row is keyed by (contact, campaign, step, occurrence), unique in the
database, so a reservation is an INSERT that does nothing for a key that is
already there: two runs can never both own a send. A row goes

    reserved -> sending -> sent | failed | unknown
       |           +-> deferred (4xx: tried again after `next_attempt_at`)
       +-> deferred (released: it did not leave; the next run takes it)

    deferred -> reserved (a later run) ... | expired (its validity ran out)
    (owed)   -> cancelled (no longer right at send time) | suppressed

A reserved or sending row names its run (`run_id`); a run only moves rows it
owns. A run holds a lock that dies with it (runs.py), so the next run takes a
dead run's rows over at once: `reserved` rows had certainly not left and are
owed again (`deferred`); the `sending` row of each SMTP connection may have
reached the server and becomes `unknown`, never sent again unless the
operator asks. Each connection marks one mail `sending` at a time, so the
doubt after a crash is at most one mail per connection.

Functions take a Connection; the caller decides the transaction.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    and_,
    bindparam,
    func,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from trouw.store import contacts, ledger
from trouw.store.among import among

RESERVED = "reserved"
SENDING = "sending"
DEFERRED = "deferred"
SENT = "sent"
FAILED = "failed"
UNKNOWN = "unknown"
SUPPRESSED = "suppressed"
EXPIRED = "expired"
CANCELLED = "cancelled"
STATUSES = (RESERVED, SENDING, DEFERRED, SENT, FAILED, UNKNOWN, SUPPRESSED, EXPIRED, CANCELLED)
# Statuses that may have reached the inbox, and so count toward the caps.
COUNTED = frozenset({RESERVED, SENDING, SENT, UNKNOWN})
# Held by a run: reserved before delivery, sending while on the wire.
HELD = (RESERVED, SENDING)
# After a 4xx, the next try waits this long (then the next step; the last one repeats), as
# Postfix's deferred queue backs off from 5 minutes to about an hour and more.
RETRY_BACKOFF = tuple(timedelta(minutes=m) for m in (5, 10, 20, 40, 80, 160, 240))

Key = tuple[str, str, str, str]  # (contact_id, campaign, step, occurrence)


@dataclass(frozen=True)
class Send:
    """One send as the ledger holds it: `day` the run's day, `due` the day it is owed from."""

    contact_id: str
    campaign: str
    step: str
    occurrence: str
    day: date
    template: str | None
    channel: str
    due: date | None = None

    @property
    def key(self) -> Key:
        return (self.contact_id, self.campaign, self.step, self.occurrence)

    @property
    def owed_from(self) -> date:
        return self.due or self.day


@dataclass(frozen=True)
class Confirmation:
    """How a held send ended, or why it goes back to the queue (`deferred`).

    `attempted`: it was handed to the server (counts as an attempt); a mail
    released before it left is not. `retry_at`: a deferred row waits until then
    (None: the next run may take it).
    """

    key: Key
    status: str
    sent_at: datetime | None = None
    error: str | None = None
    template: str | None = None  # the variant rendered, when known (else the reserved one)
    attempted: bool = True
    retry_at: datetime | None = None


def message_id(key: Key, domain: str) -> str:
    """A Message-ID derived from the ledger key: a retry of the same row reuses it."""
    digest = hashlib.sha256("\x1f".join(key).encode()).hexdigest()[:32]
    return f"<{digest}@{domain}>"


def backoff(attempts: int, schedule: Sequence[timedelta] = RETRY_BACKOFF) -> timedelta:
    """How long a send deferred after its `attempts`-th try waits for the next one."""
    if not schedule:
        return timedelta(0)
    return schedule[min(max(attempts, 1), len(schedule)) - 1]


_KEY_COLUMNS = (ledger.c.contact_id, ledger.c.campaign, ledger.c.step, ledger.c.occurrence)
_TUPLE_KEY = tuple_(*_KEY_COLUMNS)
# SQLite: one statement run as an executemany: SQLAlchemy compiles it once and sends the
# rows as multi-row VALUES batches ("insertmanyvalues"), RETURNING the rows it made.
_RESERVE_SQLITE = sqlite_insert(ledger).on_conflict_do_nothing().returning(*_KEY_COLUMNS)
# PostgreSQL: one statement whose text never changes, the rows given as one array per
# column. The VALUES batches above are a new text of ~15 columns x the chunk's rows each
# time, which psycopg (not caching statements that long) splits for its placeholders in
# Python: that was 6% of a send worker's time, more than writing the rows.
_RESERVE_COLUMNS = ("contact_id", "campaign", "step", "occurrence", "day", "due", "template",
                    "channel", "message_id")  # fmt: skip
_RESERVE_PG = text(
    "INSERT INTO ledger (contact_id, campaign, step, occurrence, day, due, template, channel,"
    " message_id, status, reserved_at, attempts, run_id)"
    " SELECT r.contact_id, r.campaign, r.step, r.occurrence, r.day, r.due, r.template,"
    " r.channel, r.message_id, :status, :reserved_at, 0, :run_id"
    " FROM unnest(CAST(:contact_id AS TEXT[]), CAST(:campaign AS TEXT[]),"
    " CAST(:step AS TEXT[]), CAST(:occurrence AS TEXT[]), CAST(:day AS DATE[]),"
    " CAST(:due AS DATE[]), CAST(:template AS TEXT[]), CAST(:channel AS TEXT[]),"
    " CAST(:message_id AS TEXT[]))"
    " AS r(contact_id, campaign, step, occurrence, day, due, template, channel, message_id)"
    " ON CONFLICT DO NOTHING"
    " RETURNING contact_id, campaign, step, occurrence"
)
_SETTLE_NEW: dict[str, Any] = {
    "postgresql": pg_insert(ledger).on_conflict_do_nothing(),
    "sqlite": sqlite_insert(ledger).on_conflict_do_nothing(),
}


def _row(send: Send, status: str, *, domain: str, now: datetime, **values: Any) -> dict[str, Any]:
    return {
        "contact_id": send.contact_id,
        "campaign": send.campaign,
        "step": send.step,
        "occurrence": send.occurrence,
        "day": send.day,
        "due": send.owed_from,
        "template": send.template,
        "channel": send.channel,
        "status": status,
        "message_id": message_id(send.key, domain),
        "reserved_at": now,
        "attempts": 0,
        "run_id": None,
        "error": None,
        "next_attempt_at": None,
        **values,
    }


def reserve(
    connection: Connection, sends: Sequence[Send], *, domain: str, now: datetime, run_id: int
) -> list[Send]:
    """Reserve `sends` for the run `run_id` in one INSERT; returns those this call reserved.

    A send whose key is already in the ledger (another run's, or an earlier
    day's) is left alone and not returned.
    """
    if not sends:
        return []
    rows = [_row(s, RESERVED, domain=domain, now=now, run_id=run_id) for s in sends]
    if connection.dialect.name == "postgresql":
        columns = {name: [row[name] for row in rows] for name in _RESERVE_COLUMNS}
        params = {**columns, "status": RESERVED, "reserved_at": now, "run_id": run_id}
        returned = connection.execute(_RESERVE_PG, params).all()
    else:
        returned = connection.execute(_RESERVE_SQLITE, rows).all()
    reserved = {tuple(str(v) for v in row) for row in returned}
    return [s for s in sends if s.key in reserved]


def reclaim(
    connection: Connection,
    sends: Sequence[Send],
    *,
    status: str,
    now: datetime,
    run_id: int,
) -> list[Send]:
    """Reserve again these sends' rows that are `status` (deferred, or unknown when the
    operator asks); their `day` becomes the run's. Returns those this call reserved."""
    if not sends:
        return []
    day = sends[0].day
    returned = connection.execute(
        update(ledger)
        .where(ledger.c.status == status, _TUPLE_KEY.in_([s.key for s in sends]))
        .values(status=RESERVED, reserved_at=now, run_id=run_id, day=day)
        .returning(*_KEY_COLUMNS)
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


# The row is found by its key; its status only confirms that it is still reserved. Written
# `status || ''` so that PostgreSQL cannot look the status up instead: the run's ANALYZE
# sees hardly any `reserved` rows (they live minutes), so the planner took `status =
# 'reserved'` for one row and scanned ix_ledger_status_next_attempt_at, through every
# reservation in flight and their dead versions. In one day of 1M contacts (171,503 mails)
# that was 0.63 ms a mark, 108 s, about half the server's statement time; by key, as
# CONFIRM goes, 0.08 ms.
START_SENDING = (
    update(ledger)
    .where(
        _KEY_MATCH,
        ledger.c.status.concat("") == RESERVED,
        ledger.c.run_id == bindparam("k_run"),
    )
    .values(status=SENDING)
)


def start_sending(connection: Connection, key: Key, *, run_id: int) -> bool:
    """Mark this reservation of the run as leaving now; False if the run no longer owns it.

    Committed before the mail is handed to the transport: a `reserved` row has
    certainly not left, a `sending` row may have.
    """
    result = connection.execute(START_SENDING, start_params(key, run_id))
    return bool(result.rowcount)


CONFIRM = (
    update(ledger)
    .where(
        _KEY_MATCH,
        # no IN: executemany
        or_(ledger.c.status == RESERVED, ledger.c.status == SENDING, ledger.c.status == UNKNOWN),
        ledger.c.run_id == bindparam("k_run"),
    )
    .values(
        status=bindparam("new_status"),
        sent_at=bindparam("new_sent_at"),
        error=func.coalesce(bindparam("new_error"), ledger.c.error),
        template=func.coalesce(bindparam("new_template"), ledger.c.template),
        attempts=ledger.c.attempts + bindparam("new_attempts"),
        next_attempt_at=bindparam("new_retry_at"),
        run_id=bindparam("new_run"),
    )
)


def confirm_params(c: Confirmation, run_id: int) -> dict[str, Any]:
    """The parameters of CONFIRM for one confirmation."""
    return {
        **_key_params(c.key),
        "k_run": run_id,
        "new_status": c.status,
        "new_sent_at": c.sent_at,
        "new_error": c.error,
        "new_template": c.template,
        "new_attempts": 1 if c.attempted else 0,
        "new_retry_at": c.retry_at,
        "new_run": None if c.status == DEFERRED else run_id,
    }


def start_params(key: Key, run_id: int) -> dict[str, Any]:
    """The parameters of START_SENDING for one send."""
    return {**_key_params(key), "k_run": run_id}


def confirm(connection: Connection, confirmations: Iterable[Confirmation], *, run_id: int) -> int:
    """Record how the run's held sends ended, in one executemany; returns the rows updated.

    A row the run still holds, or one another run turned `unknown` after taking
    this run for dead, is confirmed: this run knows how it ended. A `deferred`
    row leaves the run (its `run_id` is cleared) so any later run may take it.
    """
    params = [confirm_params(c, run_id) for c in confirmations]
    if not params:
        return 0
    return connection.execute(CONFIRM, params).rowcount


def release(connection: Connection, keys: Iterable[tuple[Key, str]], *, run_id: int) -> int:
    """Give the run's held sends that certainly did not leave back to the queue, each with
    why (`deferred`, no attempt counted, the next run may take them)."""
    return confirm(
        connection,
        (Confirmation(key, DEFERRED, error=reason, attempted=False) for key, reason in keys),
        run_id=run_id,
    )


def settle(
    connection: Connection,
    settled: Sequence[tuple[Send, str | None, str, str]],
    *,
    domain: str,
    now: datetime,
) -> None:
    """Write why owed sends do not go out now: (send, its ledger status or None, new status,
    reason). A new row for a send not yet in the ledger; a row still `deferred` is updated."""
    fresh = [
        _row(send, status, domain=domain, now=now, error=reason)
        for send, state, status, reason in settled
        if state is None
    ]
    if fresh:
        connection.execute(_SETTLE_NEW[connection.dialect.name], fresh)
    known = [
        {**_key_params(send.key), "new_status": status, "new_error": reason, "new_day": send.day}
        for send, state, status, reason in settled
        if state == DEFERRED
    ]
    if known:
        connection.execute(
            update(ledger)
            .where(_KEY_MATCH, ledger.c.status == DEFERRED)
            .values(
                status=bindparam("new_status"),
                error=bindparam("new_error"),
                day=bindparam("new_day"),
            ),
            known,
        )


@dataclass
class TakeOver:
    """What a run found held by other runs: taken over from dead ones, left to live ones."""

    released: int = 0  # reserved by a dead run: owed again
    unknown: int = 0  # on the wire when a run died
    held: dict[int, int] | None = None  # live run id -> rows it holds


def take_over(connection: Connection, alive: Any) -> TakeOver:
    """Take over the held rows of runs that died; count those of live runs.

    `alive(connection, run_ids)` says which runs still hold their lock.
    """
    holders = [
        (int(run_id), int(n))
        for run_id, n in connection.execute(
            select(ledger.c.run_id, func.count())
            .where(ledger.c.status.in_(HELD), ledger.c.run_id.is_not(None))
            .group_by(ledger.c.run_id)
        )
    ]
    live = alive(connection, [run_id for run_id, _ in holders])
    dead = [run_id for run_id, _ in holders if run_id not in live]
    found = TakeOver(held={run_id: n for run_id, n in holders if run_id in live})
    # Rows of a run from before runs held locks carry no run: taken as dead, as before.
    orphan = or_(ledger.c.run_id.in_(dead), ledger.c.run_id.is_(None))
    if dead or _has_orphans(connection):
        found.released = connection.execute(
            update(ledger)
            .where(ledger.c.status == RESERVED, orphan)
            .values(
                status=DEFERRED,
                run_id=None,
                next_attempt_at=None,
                error=func.coalesce(ledger.c.error, "not sent: the run that reserved it ended"),
            )
        ).rowcount
        found.unknown = connection.execute(
            update(ledger)
            .where(ledger.c.status == SENDING, orphan)
            .values(status=UNKNOWN, error="the run that sent it ended before the server answered")
        ).rowcount
    return found


def _has_orphans(connection: Connection) -> bool:
    query = select(ledger.c.id).where(ledger.c.status.in_(HELD), ledger.c.run_id.is_(None))
    return connection.execute(query.limit(1)).first() is not None


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
    wanted = among(contacts.c.id, connection.dialect.name)
    locked = set(
        connection.execute(
            select(contacts.c.id).where(wanted).with_for_update(skip_locked=True, key_share=True),
            {"ids": list(contact_ids)},
        ).scalars()
    )
    rest = [c for c in contact_ids if c not in locked]
    held = set(
        connection.execute(select(contacts.c.id).where(wanted), {"ids": rest}).scalars().all()
        if rest
        else ()
    )
    return {c for c in contact_ids if c not in held}


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


def statuses(
    connection: Connection, contact_ids: Sequence[str], campaigns: Iterable[str]
) -> dict[str, dict[tuple[str, str, str], str]]:
    """These contacts' keys of these campaigns, with their status: the part of their
    `histories` that says whether a send is made, read without the rest of their ledger."""
    found: dict[str, dict[tuple[str, str, str], str]] = {}
    query = select(
        ledger.c.contact_id, ledger.c.campaign, ledger.c.step, ledger.c.occurrence, ledger.c.status
    ).where(
        among(ledger.c.contact_id, connection.dialect.name),
        ledger.c.campaign.in_(bindparam("campaigns", expanding=True)),
    )
    wanted = sorted(set(campaigns))
    for start in range(0, len(contact_ids), 500):
        ids = list(contact_ids[start : start + 500])
        for contact_id, campaign, step, occurrence, status in connection.execute(
            query, {"ids": ids, "campaigns": wanted}
        ):
            found.setdefault(str(contact_id), {})[(campaign, step, occurrence)] = status
    return found


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
    ).where(among(ledger.c.contact_id, connection.dialect.name))
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
    "error",
)


def log_rows(
    connection: Connection,
    *,
    contact_id: str | None = None,
    campaign: str | None = None,
    statuses: Sequence[str] = (),
    day: date | None = None,
    since: date | None = None,
) -> Iterable[dict[str, Any]]:
    """The ledger, filtered, in (day, contact, campaign, step) order, as JSON-ready rows."""
    query = select(*(ledger.c[name] for name in LOG_COLUMNS))
    if contact_id is not None:
        query = query.where(ledger.c.contact_id == contact_id)
    if campaign is not None:
        query = query.where(ledger.c.campaign == campaign)
    if statuses:
        query = query.where(ledger.c.status.in_(list(statuses)))
    if day is not None:
        query = query.where(ledger.c.day == day)
    if since is not None:
        query = query.where(ledger.c.day >= since)
    query = query.order_by(
        ledger.c.day, ledger.c.contact_id, ledger.c.campaign, ledger.c.step, ledger.c.occurrence
    )
    for row in connection.execution_options(yield_per=2000).execute(query).mappings():
        yield {
            name: (value.isoformat() if hasattr(value, "isoformat") else value)
            for name, value in row.items()
        }


__all__ = [
    "CANCELLED",
    "CONFIRM",
    "COUNTED",
    "DEFERRED",
    "EXPIRED",
    "FAILED",
    "HELD",
    "LOG_COLUMNS",
    "RESERVED",
    "RETRY_BACKOFF",
    "SENDING",
    "SENT",
    "START_SENDING",
    "STATUSES",
    "SUPPRESSED",
    "UNKNOWN",
    "Confirmation",
    "History",
    "Send",
    "TakeOver",
    "backoff",
    "claim_contacts",
    "confirm",
    "confirm_params",
    "count_unknown",
    "histories",
    "log_rows",
    "message_id",
    "reclaim",
    "release",
    "reserve",
    "settle",
    "start_params",
    "start_sending",
    "statuses",
    "take_over",
]
