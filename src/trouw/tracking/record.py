"""What a tracked link records: clicks, opens and unsubscribes, as ordinary events.

Each function takes the connection of one short write transaction. An event
is written by one INSERT … SELECT that finds the contact and the ledger row of
the mail the link came from in the same statement; clicks and opens come in
batches (`VisitRecorder`, fed by the app's group commit), one executemany of
that statement per batch, so a tracking server keeps up with the burst after a
send. A contact that no longer exists (it was forgotten) selects no row, and
so gets nothing recorded: its old links must not bring it back. Nor may they
count for a later contact imported with the same id: a link records only when
the link key it carries is its contact's (`contacts.link_key`, made anew with
each contact row; both are NULL for contacts made before link keys existed).

The event's properties say which mail it was about:
{"campaign", and when the ledger has the mail: "step", "occurrence",
"template", "ledger_id"}. The mail is the latest ledger row of (contact,
campaign) that was sent, or the latest of any status when none was.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Connection,
    DateTime,
    Engine,
    Insert,
    Select,
    String,
    Text,
    and_,
    bindparam,
    case,
    exists,
    func,
    literal_column,
    or_,
    select,
)

from trouw.sending.ledger import SENT
from trouw.store import contacts, events, ledger
from trouw.store.among import among
from trouw.store.compiled import Compiled, KeptConnection

CLICK = "click"
OPEN = "open"
UNSUBSCRIBE = "unsubscribe"  # the type the send run stops on (sending.run.STOPPING)
# An unsubscribe tagged so leaves one topic only (the preference centre): not "all marketing".
TOPIC_TAG = "topic:"
# events.tag is VARCHAR(200): a longer tag from a template is cut, not a failed click.
TAG_LENGTH = 200


@dataclass(frozen=True)
class Contact:
    id: str
    locale: str | None
    link_key: str | None = None

    def holds(self, link_key: str | None) -> bool:
        """Whether a link carrying `link_key` was made for this contact (this row)."""
        return self.link_key == link_key


@dataclass(frozen=True)
class Visit:
    """A click or an open, as the request saw it, waiting to be recorded."""

    contact_id: str
    campaign: str
    kind: str  # CLICK or OPEN
    at: datetime
    tag: str
    url: str | None = None
    link_key: str | None = None  # what the link carries; it must be the contact's

    @classmethod
    def click(
        cls,
        contact_id: str,
        campaign: str,
        tag: str,
        url: str,
        at: datetime,
        link_key: str | None = None,
    ) -> Visit:
        return cls(contact_id, campaign, CLICK, at, tag, url, link_key)

    @classmethod
    def open(
        cls, contact_id: str, campaign: str, at: datetime, link_key: str | None = None
    ) -> Visit:
        # The tag is the campaign, as for a click on a link without a tag of its own.
        return cls(contact_id, campaign, OPEN, at, campaign, None, link_key)


def now_utc() -> datetime:
    """Now as events store it: naive UTC."""
    return datetime.now(UTC).replace(tzinfo=None)


class VisitRecorder:
    """Records batches of clicks and opens on one DB-API connection that it keeps.

    This is the tracking server's hot path, and SQLAlchemy's own work per
    statement and per transaction (about 0.4 ms a batch) cost more than the
    database's. So the statements are SQLAlchemy's, compiled once for the
    database's dialect, and run on a raw DB-API connection kept between
    batches. The parameters go through the bind processors SQLAlchemy would
    apply (datetimes as text on SQLite).

    One transaction at a time (the group commit's leader runs it):
    `with recorder.transaction() as cursor:` then `recorder.write(cursor,
    visits)`. A failed transaction is rolled back and its connection dropped;
    the next one opens a fresh connection.
    """

    def __init__(self, engine: Engine, lock: AbstractContextManager[Any]) -> None:
        self._find = Compiled(_find_contacts(engine.dialect.name), engine.dialect)
        self._insert = Compiled(_insert_event(engine.dialect.name, once=False), engine.dialect)
        self._kept = KeptConnection(engine, lock)

    def transaction(self) -> AbstractContextManager[Any]:
        """A DB-API cursor in a write transaction, committed when the block ends."""
        return self._kept.transaction()

    def write(self, cursor: Any, visits: Sequence[Visit]) -> list[bool]:
        """Record the visits; per visit, whether its contact exists (and holds its link key).

        The contacts are looked up first, and on PostgreSQL locked (FOR KEY
        SHARE) until the commit, so a contact being forgotten is either gone
        already (its visits record nothing) or waits until its new events exist
        and go with it. The INSERT … SELECT would skip a missing contact by
        itself; the lookup is what tells each request whether its visit
        counted, which the statement's total row count cannot.
        """
        wanted = sorted({visit.contact_id for visit in visits})
        cursor.execute(self._find.sql, self._find.parameters({"ids": wanted}))
        keys = dict(cursor.fetchall())  # contact id -> its link key
        held = [v.contact_id in keys and keys[v.contact_id] == v.link_key for v in visits]
        rows = [
            self._insert.parameters(_values(v)) for v, ok in zip(visits, held, strict=True) if ok
        ]
        if rows:
            cursor.executemany(self._insert.sql, rows)
        return held

    def close(self) -> None:
        self._kept.close()


def _find_contacts(dialect: str) -> Select[Any]:
    """The ids among the given ones that exist, with their link keys (locked on PostgreSQL
    until the commit, see VisitRecorder.write)."""
    found = select(contacts.c.id, contacts.c.link_key).where(among(contacts.c.id, dialect))
    return found if dialect == "sqlite" else found.with_for_update(read=True, key_share=True)


def record_unsubscribe(
    connection: Connection,
    contact_id: str,
    campaign: str,
    at: datetime,
    link_key: str | None = None,
) -> tuple[Contact, bool] | None:
    """Record the contact's unsubscribe, once per contact.

    None if the contact is gone (or is another holder of the id than the link's);
    else the contact and whether this call recorded it (False: they had already
    unsubscribed, and nothing is added).
    """
    # The contact row is locked first (PostgreSQL; SQLite's one writer is alone
    # anyway), so that of two POSTs at once the second waits and then sees the
    # first one's event. NO KEY UPDATE: clicks, whose inserts only need the key,
    # are not held up.
    contact = find_contact(connection, contact_id, lock=True)
    if contact is None or not contact.holds(link_key):
        return None
    added = _record(connection, contact_id, campaign, UNSUBSCRIBE, at, tag=campaign, once=True)
    return contact, added


def find_contact(connection: Connection, contact_id: str, *, lock: bool = False) -> Contact | None:
    """The contact with this id, or None if there is none (any more)."""
    query = select(contacts.c.id, contacts.c.locale, contacts.c.link_key).where(
        contacts.c.id == contact_id
    )
    if lock:
        query = query.with_for_update(key_share=True)
    row = connection.execute(query).first()
    return None if row is None else Contact(str(row.id), row.locale, row.link_key)


def is_unsubscribed(connection: Connection, contact_id: str) -> bool:
    """Whether the contact has an unsubscribe event from all marketing (from a link or
    imported); one from a single topic does not count."""
    query = select(events.c.id).where(
        events.c.contact_id == contact_id, events.c.type == UNSUBSCRIBE, _whole(events.c.tag)
    )
    return connection.execute(query.limit(1)).first() is not None


def _record(
    connection: Connection,
    contact_id: str,
    campaign: str,
    kind: str,
    at: datetime,
    *,
    tag: str,
    url: str | None = None,
    once: bool = False,
) -> bool:
    statement = _insert_event(connection.dialect.name, once=once)
    values = _values(Visit(contact_id, campaign, kind, at, tag, url))
    return connection.execute(statement, values).rowcount == 1


def _values(visit: Visit) -> dict[str, Any]:
    """The parameters of `_insert_event` for one event."""
    return {
        "contact_id": visit.contact_id,
        "campaign": visit.campaign,
        "type": visit.kind,
        "at": visit.at,
        "tag": visit.tag[:TAG_LENGTH],
        "url": visit.url,
    }


@functools.cache
def _insert_event(dialect: str, *, once: bool) -> Insert:
    """INSERT INTO events SELECT … FROM contacts LEFT JOIN the mail: no row, no event."""
    # The JSON is made by the database, so the statement needs no round trip first.
    build_json = func.jsonb_build_object if dialect == "postgresql" else func.json_object
    # Typed parameters, which SQLAlchemy casts on PostgreSQL: it cannot guess the type
    # of one passed to a JSON builder.
    campaign = bindparam("campaign", type_=String())
    mail = ledger.alias("mail")
    candidate = ledger.alias("candidate")
    latest = (
        select(candidate.c.id)
        .where(candidate.c.contact_id == contacts.c.id, candidate.c.campaign == campaign)
        .order_by(
            case((candidate.c.status == SENT, 0), else_=1),
            candidate.c.day.desc(),
            candidate.c.id.desc(),
        )
        .limit(1)
        .scalar_subquery()
    )
    properties = case(
        (mail.c.id.is_(None), _json_object(build_json, campaign=campaign)),
        else_=_json_object(
            build_json,
            campaign=campaign,
            step=mail.c.step,
            occurrence=mail.c.occurrence,
            template=mail.c.template,
            ledger_id=mail.c.id,
        ),
    )
    conditions: list[Any] = [contacts.c.id == bindparam("contact_id")]
    if once:
        earlier = and_(
            events.c.contact_id == contacts.c.id,
            events.c.type == bindparam("type"),
            _whole(events.c.tag),  # leaving one topic is no reason not to leave them all
        )
        conditions.append(~exists().where(earlier))
    rows = (
        select(
            contacts.c.id,
            bindparam("type", type_=String()),
            bindparam("at", type_=DateTime()),
            bindparam("tag", type_=String()),
            bindparam("url", type_=Text()),
            properties,
        )
        .select_from(contacts.outerjoin(mail, mail.c.id == latest))
        .where(*conditions)
    )
    columns = ["contact_id", "type", "occurred_at", "tag", "url", "properties"]
    # rowcount tells whether the contact was there (SQLAlchemy keeps it for INSERTs
    # only when asked).
    return events.insert().from_select(columns, rows).execution_options(preserve_rowcount=True)


def _whole(tag: Any) -> Any:
    """The condition that an unsubscribe's `tag` is not a single topic's."""
    return or_(tag.is_(None), ~tag.startswith(TOPIC_TAG, autoescape=True))


def _json_object(build: Any, **pairs: Any) -> Any:
    """`build('key', value, …)`: the keys as SQL string literals, the values as given."""
    arguments: list[Any] = []
    for key, value in pairs.items():
        arguments += [literal_column(f"'{key}'"), value]
    return build(*arguments)
