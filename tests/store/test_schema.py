"""The schema: created on first use, migrated on upgrade, tuned for SQLite."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, func, insert, select, text

from trouw.store import contacts, create_store_engine, events, metadata, open_store, plan
from trouw.store.plan_years import partitions as plan_partitions
from trouw.store.schema import HEAD, MIGRATIONS, current_revision, upgrade_schema


def test_head_constant_is_the_newest_migration() -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_current_head() == HEAD


def test_migrations_build_exactly_the_declared_tables(engine: Engine) -> None:
    assert current_revision(engine) == HEAD
    with engine.connect() as connection:
        partitions = set()  # of `plan` on PostgreSQL, made by migrations and plans
        if connection.dialect.name == "postgresql":
            partitions = set(plan_partitions(connection))
        assert partitions in (set(), {"plan_default"})

        def declared(name: str | None, kind: str, parents: dict[str, str | None]) -> bool:
            return (name if kind == "table" else parents.get("table_name")) not in partitions

        context = MigrationContext.configure(
            connection,
            opts={
                "compare_type": True,
                "compare_server_default": True,
                "include_name": declared,
            },
        )
        assert compare_metadata(context, metadata) == []


def test_an_old_database_keeps_its_data_after_upgrade(db_url: str) -> None:
    engine = create_store_engine(db_url)
    upgrade_schema(engine, "0001")  # a database made by the first release
    now = datetime(2026, 1, 1)
    with engine.begin() as connection:
        connection.execute(
            insert(contacts).values(
                id="old",
                email="old@example.nl",
                attributes={"tier": "gold"},
                created_at=now,
                updated_at=now,
            )
        )
        connection.execute(
            insert(events).values(
                contact_id="old",
                type="purchase",
                occurred_at=now,
                amount=10.0,
                properties={},
            )
        )
    assert current_revision(engine) == "0001"
    engine.dispose()

    upgraded = open_store(db_url)  # what any command does on first use after an upgrade
    assert current_revision(upgraded) == HEAD
    with upgraded.connect() as connection:
        row = connection.execute(select(contacts)).mappings().one()
        assert row["attributes"] == {"tier": "gold"}
        assert connection.execute(select(events.c.amount)).scalar_one() == 10.0
        assert connection.execute(text("SELECT count(*) FROM ledger")).scalar_one() == 0
    upgraded.dispose()


def test_a_plan_made_before_partitions_keeps_its_rows_and_ids(db_url: str) -> None:
    """Migration 0010: on PostgreSQL the plan's rows move into their years' partitions."""
    engine = create_store_engine(db_url)
    upgrade_schema(engine, "0009")
    rows = [
        {"contact_id": f"c{n}", "day": day, "campaign": "news", "step": "mail",
         "occurrence": f"news:{day}", "template": "news.html", "channel": "email",
         "priority": 10, "status": "planned", "reason": None}
        for n, day in enumerate([date(2026, 12, 30), date(2027, 1, 4), date(2027, 6, 1)])
    ]  # fmt: skip
    with engine.begin() as connection:
        connection.execute(insert(plan), rows)
        before = connection.execute(select(plan).order_by(plan.c.id)).all()
    engine.dispose()

    upgraded = open_store(db_url)
    with upgraded.begin() as connection:
        assert connection.execute(select(plan).order_by(plan.c.id)).all() == before
        connection.execute(insert(plan), rows[:1])  # ids go on from the same sequence
        assert connection.execute(select(func.max(plan.c.id))).scalar_one() > before[-1].id
        if connection.dialect.name == "postgresql":
            assert plan_partitions(connection) == ["plan_default", "plan_y2026", "plan_y2027"]
            in_2027 = "SELECT count(*) FROM plan_y2027"
            assert connection.execute(text(in_2027)).scalar_one() == 2
    upgraded.dispose()


def test_sqlite_is_tuned_for_a_cron_tool(tmp_path: Path) -> None:
    engine = open_store(f"sqlite:///{tmp_path / 'sub' / 'trouw.db'}")
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 10_000
    engine.dispose()


def test_two_processes_opening_a_new_database_at_once_migrate_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'race.db'}"
    with ThreadPoolExecutor(4) as pool:
        engines = list(pool.map(lambda _: open_store(url), range(4)))
    assert {current_revision(engine) for engine in engines} == {HEAD}
    for engine in engines:
        engine.dispose()
