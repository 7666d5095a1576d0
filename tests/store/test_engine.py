"""The engine's settings per database (store/engine.py)."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from sqlalchemy import Connection, Engine, insert, text

from trouw.store import ledger, refresh_stale_statistics


def test_postgresql_plans_each_statement_for_its_own_parameters(engine: Engine) -> None:
    """A chunk's query over a range of contact ids, run again and again, must not fall back
    to a generic plan that reads the whole shop for every chunk: no statement of ours is
    prepared on the server, on any pooled connection, however often it runs. The server's
    own statements keep their cached plans: forcing custom plans for the whole session
    planned a foreign key's check anew for every row inserted (an import of events took
    twice as long in the server)."""
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's plan cache")
    for _ in range(3):
        with engine.connect() as connection:  # rolled back when returned to the pool
            for low in range(7):  # psycopg's default prepares after five runs
                connection.execute(text("SELECT :low + 1"), {"low": low}).scalar_one()
            prepared = connection.execute(text("SELECT count(*) FROM pg_prepared_statements"))
            assert prepared.scalar_one() == 0
            mode = connection.execute(text("SHOW plan_cache_mode")).scalar_one()
            assert mode == "auto"


def test_postgresql_prepares_a_statement_that_asks_for_it(engine: Engine) -> None:
    """The send's per-mail updates of a ledger row by its key ask to be prepared
    (sending/courier.py): parsed and planned once per connection, not for every mail."""
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's prepared statements")
    with engine.connect() as connection:
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        for low in range(3):
            cursor.execute("SELECT %s::int + 1", (low,), prepare=True)
        cursor.execute("SELECT name FROM pg_prepared_statements")
        assert len(cursor.fetchall()) == 1
        cursor.close()


def _ledger_rows(connection: Connection, first: int, count: int) -> None:
    rows = [
        {"contact_id": f"c{n}", "campaign": "spring", "step": "main", "occurrence": "2027",
         "day": date(2027, 4, 6), "channel": "email", "status": "sent",
         "reserved_at": datetime(2027, 4, 6, 9)}
        for n in range(first, first + count)
    ]  # fmt: skip
    connection.execute(insert(ledger), rows)


def _analyzed(engine: Engine) -> bool:
    with engine.connect() as connection:
        query = text("SELECT count(*) FROM pg_stats WHERE tablename = 'ledger'")
        return bool(connection.execute(query).scalar_one())


def test_postgresql_statistics_are_refreshed_when_missing_or_a_tenth_of_the_rows_changed(
    engine: Engine,
) -> None:
    """Planned for its own parameters, a statement is only as good as the statistics: a
    ledger without any is read whole for each chunk's few contacts. A send run analyzes it
    when it has none or a tenth of its rows changed since, and not otherwise."""
    if engine.dialect.name != "postgresql":
        assert refresh_stale_statistics(engine, ledger) is False  # SQLite needs none
        return
    with engine.begin() as connection:  # autovacuum would analyze at any moment
        connection.execute(text("ALTER TABLE ledger SET (autovacuum_enabled = false)"))
        _ledger_rows(connection, 0, 2000)
    _flush_statistics(engine)
    assert not _analyzed(engine)
    assert refresh_stale_statistics(engine, ledger) is True
    assert _analyzed(engine)
    assert refresh_stale_statistics(engine, ledger) is False  # fresh: not again
    with engine.begin() as connection:
        _ledger_rows(connection, 2000, 100)  # 5%: still fresh enough
    _flush_statistics(engine)
    assert refresh_stale_statistics(engine, ledger) is False
    with engine.begin() as connection:
        _ledger_rows(connection, 2100, 300)  # 20% since the last ANALYZE
    _flush_statistics(engine)
    assert refresh_stale_statistics(engine, ledger) is True
    assert refresh_stale_statistics(engine, ledger) is False


def _flush_statistics(engine: Engine) -> None:
    """Make the pooled connections' counts of changed rows visible at once (PostgreSQL 15
    reports them at most once a second otherwise)."""
    pool = engine.pool
    connections = [engine.raw_connection() for _ in range(pool.checkedin() + 1)]
    for raw in connections:
        with raw.cursor() as cursor:
            cursor.execute("SELECT pg_stat_force_next_flush()")
        raw.commit()
    for raw in connections:
        raw.close()
