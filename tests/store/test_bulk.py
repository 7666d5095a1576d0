"""Bulk inserts: a small batch and a large one store the same rows and count the same."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import Engine, func, insert, select

from trouw.importing import parser_for
from trouw.store import atomic, contacts, events
from trouw.store.bulk import SMALL_BATCH

NOW = datetime(2026, 2, 1, 9, 0)


def _add_contacts(engine: Engine, count: int) -> None:
    """Contacts c-0 … c-(count - 1)."""
    with atomic(engine) as connection:
        connection.execute(
            insert(contacts),
            [{"id": f"c-{i}", "email": f"c{i}@x.example", "channel": "email", "attributes": {},
              "created_at": NOW, "updated_at": NOW} for i in range(count)],
        )  # fmt: skip


def _event(n: int, duplicate_of: int | None = None) -> tuple[object, ...]:
    key = f"e-{duplicate_of if duplicate_of is not None else n}"
    return (key, f"c-{n % 3}", "purchase", datetime(2026, 3, 1, 12, n % 60), "shop",
            None, "Rake", "garden", 12.5, None, {"n": n, "note": "50% off"})  # fmt: skip


@pytest.mark.parametrize("size", [3, SMALL_BATCH + 7])
def test_a_batch_stores_each_new_event_once_and_counts_what_it_wrote(
    engine: Engine, size: int
) -> None:
    _add_contacts(engine, 3)
    parser = parser_for("events", "Europe/Amsterdam")
    first = [_event(n) for n in range(size)]
    # the second batch repeats every other event of the first, and adds as many new ones
    second = [
        _event(n, duplicate_of=n - size) if n % 2 else _event(n) for n in range(size, 2 * size)
    ]
    with atomic(engine) as connection:
        assert parser.insert.run(connection, first) == size
    new = sum(1 for n in range(size, 2 * size) if n % 2 == 0)
    with atomic(engine) as connection:
        assert parser.insert.run(connection, second) == new
    with engine.connect() as connection:
        stored = connection.execute(select(func.count()).select_from(events)).scalar_one()
        kept = connection.execute(
            select(events.c.properties).where(events.c.external_id == "e-1")
        ).scalar_one()
    assert stored == size + new
    assert kept == {"n": 1, "note": "50% off"}  # the first one stays, its JSON whole


def test_rows_sharing_a_moment_or_a_changed_dict_store_each_rows_own_values(
    engine: Engine,
) -> None:
    """On SQLite a batch converts a moment object its rows share once: rows that share it store
    it, a new moment its own, and a dict changed between batches its new content."""
    _add_contacts(engine, 1)
    parser = parser_for("events", "Europe/Amsterdam")
    later = datetime(2026, 3, 2, 8, 30)
    shared = {"note": "first"}

    def row(key: str, moment: datetime) -> tuple[object, ...]:
        return (key, "c-0", "purchase", moment, "shop", None, "Rake", "garden", 1.0, None, shared)

    with atomic(engine) as connection:
        parser.insert.run(connection, [row("a", NOW), row("b", NOW), row("c", later)])
    shared["note"] = "second"  # the same dict, changed: its new content goes in
    with atomic(engine) as connection:
        parser.insert.run(connection, [row("d", later), row("e", NOW)])
    with engine.connect() as connection:
        stored = connection.execute(
            select(events.c.external_id, events.c.occurred_at, events.c.properties).order_by(
                events.c.external_id
            )
        ).all()
    assert [tuple(r) for r in stored] == [
        ("a", NOW, {"note": "first"}),
        ("b", NOW, {"note": "first"}),
        ("c", later, {"note": "first"}),
        ("d", later, {"note": "second"}),
        ("e", NOW, {"note": "second"}),
    ]
