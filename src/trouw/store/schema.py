"""Bring a database's schema to the current revision, on first use.

Alembic owns the migrations (`migrations/versions`). Every command calls
`open_store`, which costs one small query when the schema is current and
runs the pending migrations otherwise, inside a transaction that holds the
write lock, so two processes starting at once never migrate twice.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Connection, Engine, inspect, text

from trouw.store.engine import atomic, create_store_engine

MIGRATIONS = Path(__file__).parent / "migrations"
# The newest revision in migrations/versions; a test keeps the two in step.
HEAD = "0010"
# Key of the PostgreSQL advisory lock that serialises migrations ("trouw" in ASCII).
MIGRATION_LOCK = 0x74726F7577


def open_store(url: str) -> Engine:
    """An engine for `url` whose schema is at HEAD."""
    engine = create_store_engine(url)
    if current_revision(engine) != HEAD:
        upgrade_schema(engine)
    return engine


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return _revision(connection)


def _revision(connection: Connection) -> str | None:
    if not inspect(connection).has_table("alembic_version"):
        return None
    return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()


def upgrade_schema(engine: Engine, revision: str = "head") -> None:
    """Run the pending migrations up to `revision` in one locked transaction."""
    from alembic import command  # imported here: most runs never need it
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with atomic(engine) as connection:
        if engine.dialect.name == "postgresql":
            # Serialise concurrent first runs; released at commit.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        if revision == "head" and _revision(connection) == HEAD:
            return  # another process migrated while we waited for the lock
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
