"""Running a compiled segment: its size, its members, one contact's membership.

Each function takes a Connection and runs one statement; the database does
the counting, nothing iterates over contacts or events in Python.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, func, select

from trouw.segments.compile import Clock, member_ids_query, members_query
from trouw.segments.definition import Catalog, Segment
from trouw.store import contacts

MEMBER_COLUMNS = ("contact_id", "email", "first_name", "last_name", "channel")


def count_members(connection: Connection, segment: Segment, catalog: Catalog, clock: Clock) -> int:
    """How many contacts are in the segment as of `clock.as_of`."""
    members = member_ids_query(segment, catalog, clock, connection.dialect.name).subquery()
    return int(connection.execute(select(func.count()).select_from(members)).scalar_one())


def member_rows(
    connection: Connection, segment: Segment, catalog: Catalog, clock: Clock
) -> Iterator[dict[str, Any]]:
    """The members with their address fields, ordered by id, streamed from the database."""
    predicate = members_query(segment, catalog, clock, connection.dialect.name).whereclause
    query = (
        select(
            contacts.c.id.label("contact_id"),
            contacts.c.email,
            contacts.c.first_name,
            contacts.c.last_name,
            contacts.c.channel,
        )
        .where(predicate if predicate is not None else contacts.c.id.is_not(None))
        .order_by(contacts.c.id)
    )
    result = connection.execution_options(yield_per=5000).execute(query)
    for row in result.mappings():
        yield dict(row)


def is_member(
    connection: Connection, segment: Segment, catalog: Catalog, clock: Clock, contact_id: str
) -> bool:
    query = members_query(segment, catalog, clock, connection.dialect.name).where(
        contacts.c.id == contact_id
    )
    return connection.execute(query).first() is not None
