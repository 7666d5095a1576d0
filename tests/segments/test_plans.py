"""The query plans SQLite picks for the example segments, and the shape of a chunk's on
PostgreSQL.

At a million contacts the difference between a probe of the contact-first
index per contact and a scan of every matching event (plus a table read and a
sort per row) is the difference between one second and ten; the benchmark in
scripts/bench_segments.py measures it, this test keeps the shape from sliding
back. A fresh database has no ANALYZE statistics, as a shop's has after import.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from sqlalchemy.dialects import postgresql

from tests.segments.helpers import ZONE
from trouw.segments import Clock, chunk_members_query, load_catalog, members_query
from trouw.store import open_store

SEGMENTS = Path(__file__).resolve().parents[2] / "segments"
CATALOG = load_catalog(SEGMENTS)


@pytest.mark.parametrize("name", CATALOG.names)
def test_sqlite_probes_the_contact_index_instead_of_sorting_events(
    name: str, tmp_path: Path
) -> None:
    engine = open_store(f"sqlite:///{tmp_path / 'plans.db'}")
    query = members_query(CATALOG.get(name), CATALOG, Clock(date(2027, 3, 1), ZONE), "sqlite")
    compiled = query.compile(engine, compile_kwargs={"literal_binds": True})
    with engine.connect() as connection:
        plan = [row[3] for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {compiled}")]
    engine.dispose()
    assert not [step for step in plan if "TEMP B-TREE" in step], plan
    on_events = [step for step in plan if " events " in f"{step} "]
    assert all("ix_events_contact_type_time (contact_id=?" in step for step in on_events), plan


# Made of event and NPS conditions alone: read from the events as sets.
EVENT_SEGMENTS = [
    "active-customers",
    "big-spenders",
    "cart-abandoners",
    "detractors",
    "fire-safety-prospects",
    "lapsed-buyers",
    "promoters",
    "repeat-buyers",
]


@pytest.mark.parametrize("name", EVENT_SEGMENTS)
def test_postgresql_reads_a_chunks_members_from_the_chunks_events_alone(name: str) -> None:
    # In the per-contact shape PostgreSQL read every matching event of the shop for each
    # chunk, or probed the index once per contact (scripts/bench_pg.py, plan).
    query = chunk_members_query(
        CATALOG.get(name), CATALOG, Clock(date(2027, 3, 1), ZONE), "postgresql", "c1", "c9"
    )
    sql = " ".join(str(query.compile(dialect=postgresql.dialect())).split())
    assert "contacts" not in sql.replace("events.contact_id", ""), sql
    reads = sql.count("FROM events")
    assert reads >= 1
    assert sql.count("events.contact_id >= %(contact_id_") == reads, sql
    assert sql.count("events.contact_id <= %(contact_id_") == reads, sql
