"""Membership history: a snapshot stores who was in a segment and who entered or left.

Set-based: the members go into `segment_members` with one INSERT … SELECT of
the compiled segment, and entered/left are counted by the database against
the previous snapshot of the same segment (the latest one as of the same day
or earlier). The caller's transaction makes the snapshot all or nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, and_, exists, func, insert, literal, select, update

from trouw.segments.compile import Clock, members_query
from trouw.segments.definition import Catalog, Segment
from trouw.store import segment_members, segment_snapshots


@dataclass(frozen=True)
class Snapshot:
    id: int
    segment: str
    size: int
    entered: int
    left: int
    previous_id: int | None


def save_snapshot(
    connection: Connection, segment: Segment, catalog: Catalog, clock: Clock
) -> Snapshot:
    """Evaluate the segment as of `clock.as_of` and store its members and changes."""
    previous_id = connection.execute(
        select(segment_snapshots.c.id)
        .where(
            segment_snapshots.c.segment == segment.name,
            segment_snapshots.c.as_of <= clock.as_of,
        )
        .order_by(segment_snapshots.c.as_of.desc(), segment_snapshots.c.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    created = connection.execute(
        insert(segment_snapshots).values(
            segment=segment.name,
            as_of=clock.as_of,
            taken_at=datetime.now(UTC).replace(tzinfo=None),
            size=0,
            entered=0,
            left=0,
        )
    )
    key = created.inserted_primary_key
    assert key is not None
    snapshot_id = int(key[0])
    members = members_query(segment, catalog, clock, connection.dialect.name).subquery()
    connection.execute(
        insert(segment_members).from_select(
            ["snapshot_id", "contact_id"], select(literal(snapshot_id), members.c.id)
        )
    )
    size = _size(connection, snapshot_id)
    if previous_id is None:
        entered, left = size, 0
    else:
        entered = _only_in(connection, snapshot_id, previous_id)
        left = _only_in(connection, previous_id, snapshot_id)
    connection.execute(
        update(segment_snapshots)
        .where(segment_snapshots.c.id == snapshot_id)
        .values(size=size, entered=entered, left=left)
    )
    return Snapshot(snapshot_id, segment.name, size, entered, left, previous_id)


def keep_day_snapshots(
    connection: Connection, names: Sequence[str], catalog: Catalog, clock: Clock
) -> int:
    """Snapshot each named segment as of `clock.as_of` unless it has one for that day: the
    baseline that tells tomorrow who entered (an `entered` trigger). Returns how many."""
    taken = set(
        connection.execute(
            select(segment_snapshots.c.segment).where(
                segment_snapshots.c.as_of == clock.as_of,
                segment_snapshots.c.segment.in_(names),
            )
        ).scalars()
    )
    missing = [name for name in names if name not in taken]
    for name in missing:
        save_snapshot(connection, catalog.get(name), catalog, clock)
    return len(missing)


def _size(connection: Connection, snapshot_id: int) -> int:
    query = select(func.count()).where(segment_members.c.snapshot_id == snapshot_id)
    return int(connection.execute(query).scalar_one())


def _only_in(connection: Connection, snapshot_id: int, other_id: int) -> int:
    """Members of one snapshot that are not in the other."""
    here = segment_members.alias("here")
    there = segment_members.alias("there")
    query = (
        select(func.count())
        .select_from(here)
        .where(
            here.c.snapshot_id == snapshot_id,
            ~exists().where(
                and_(there.c.snapshot_id == other_id, there.c.contact_id == here.c.contact_id)
            ),
        )
    )
    return int(connection.execute(query).scalar_one())
