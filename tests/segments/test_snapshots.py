"""Snapshots: members stored set-based, entered and left against the previous one."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from sqlalchemy import Engine, select

from tests.conftest import write_files
from tests.segments.helpers import ZONE, contact, event, load, local
from trouw.segments import Clock, load_catalog, save_snapshot
from trouw.store import atomic, segment_members, segment_snapshots


def test_snapshots_record_who_entered_and_left(engine: Engine, tmp_path: Path) -> None:
    write_files(tmp_path, {"segments/recent.yaml": "where: {event: purchase, within: 7d}\n"})
    catalog = load_catalog(tmp_path / "segments")
    segment = catalog.get("recent")
    with engine.begin() as connection:
        load(
            connection,
            [contact("a"), contact("b"), contact("c")],
            [
                event("a", "purchase", local(date(2027, 3, 1))),
                event("b", "purchase", local(date(2027, 3, 6))),
                event("c", "purchase", local(date(2027, 3, 9))),
            ],
        )
    with atomic(engine) as connection:
        first = save_snapshot(connection, segment, catalog, Clock(date(2027, 3, 6), ZONE))
    with atomic(engine) as connection:
        second = save_snapshot(connection, segment, catalog, Clock(date(2027, 3, 9), ZONE))
    assert (first.size, first.entered, first.left) == (2, 2, 0)
    assert (second.size, second.entered, second.left) == (2, 1, 1)
    assert second.previous_id == first.id
    with engine.connect() as connection:
        members = connection.execute(
            select(segment_members.c.contact_id).where(segment_members.c.snapshot_id == second.id)
        ).scalars()
        assert sorted(members) == ["b", "c"]
        stored = connection.execute(
            select(
                segment_snapshots.c.size, segment_snapshots.c.entered, segment_snapshots.c.left
            ).where(segment_snapshots.c.id == second.id)
        ).one()
        assert tuple(stored) == (2, 1, 1)
