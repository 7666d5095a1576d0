"""A scratch copy of the database, for dry runs that write (the simulation's ledger).

- SQLite: the database file is copied with SQLite's online backup API (a
  consistent snapshot even while another process writes) into a temporary
  file that is deleted afterwards.
- PostgreSQL: every trouw table is copied into a new schema
  `trouw_simulate_<random>` of the same database (CREATE TABLE … LIKE, then
  INSERT … SELECT), with its own id sequences, and the scratch engine finds
  it first on its `search_path`. The schema is dropped afterwards. The real
  tables are only read; creating and dropping the schema needs the CREATE
  privilege on the database. The copies are analyzed, as imports are.

The copy's ledger keeps its keys (the primary key, and the unique key of a
send, which also finds a contact's rows) but none of its other indexes: they
serve the send queue, the log and bounces, which a replay never reads, and
each simulated day would write its sends into them (`KEYS_ONLY`).

Worker processes (simulate_workers.py) open the same copy from `scratch_url`:
the temporary file's URL, or on PostgreSQL the database's URL with the
schema's `search_path` in its `options`, so a plain engine on it finds the copy.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event, text

from trouw.errors import UserError
from trouw.store.engine import atomic, create_store_engine
from trouw.store.tables import metadata

SCHEMA_PREFIX = "trouw_simulate_"
SCRATCH_FOLDER = "trouw-simulate-"  # SQLite: the temporary folder's name starts so
# Tables whose `id` the database numbers (events, snapshots, plan, ledger).
NUMBERED = frozenset(
    t.name for t in metadata.sorted_tables if "id" in t.c and t.c.id.type.python_type is int
)


# The table the replay writes into, whose copy keeps only its keys: a day's sends go to
# random places in every index that starts with the contact, and at the day's commit each
# page they changed is written again. Without the four other indexes a row took 13.8 µs
# instead of 19.8, and a simulated year of 100,000 contacts took 10 to 14% less time.
KEYS_ONLY = "ledger"


@contextmanager
def scratch_copy(engine: Engine) -> Iterator[Engine]:
    """An engine on a throw-away copy of `engine`'s database; removed when the block ends."""
    dialect = engine.dialect.name
    if dialect == "sqlite":
        with _sqlite_copy(engine) as scratch:
            yield scratch
    elif dialect == "postgresql":
        with _postgresql_copy(engine) as scratch:
            yield scratch
    else:
        raise UserError(
            f"cannot make a scratch copy of a {dialect} database",
            key="database",
            fix="simulate on SQLite or PostgreSQL",
        )


@contextmanager
def _sqlite_copy(engine: Engine) -> Iterator[Engine]:
    database = engine.url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        raise UserError(
            "the simulation copies the SQLite database file, but this database has none",
            key="database",
            fix="use a file database, e.g. sqlite:///.trouw/trouw.db",
        )
    with tempfile.TemporaryDirectory(prefix=SCRATCH_FOLDER) as folder:
        target = Path(folder) / "scratch.db"
        import sqlite3

        destination = sqlite3.connect(target)
        # A copy thrown away with the run needs neither a journal nor to wait for the disk.
        destination.execute("PRAGMA journal_mode = OFF")
        destination.execute("PRAGMA synchronous = OFF")
        try:
            with engine.connect() as connection:
                source = connection.connection.driver_connection
                assert isinstance(source, sqlite3.Connection)
                source.backup(destination)
        finally:
            destination.close()
        scratch = scratch_engine(f"sqlite:///{target}")
        with atomic(scratch) as connection:
            # Those SQLite makes for the keys have no SQL of their own.
            others = connection.exec_driver_sql(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = ?"
                " AND sql IS NOT NULL",
                (KEYS_ONLY,),
            ).scalars()
            for name in list(others):
                connection.exec_driver_sql(f'DROP INDEX "{name}"')
        try:
            yield scratch
        finally:
            scratch.dispose()


@contextmanager
def _postgresql_copy(engine: Engine) -> Iterator[Engine]:
    schema = f"{SCHEMA_PREFIX}{uuid.uuid4().hex[:12]}"
    with atomic(engine) as connection:
        real = connection.execute(text("SELECT current_schema()")).scalar_one()
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        names = [t.name for t in metadata.sorted_tables] + ["alembic_version"]
        for name in names:
            source, copy = f'"{real}"."{name}"', f'"{schema}"."{name}"'
            # Indexes and NOT NULL/unique/primary keys, not the defaults: a serial's
            # default would draw numbers from the real table's sequence.
            connection.execute(
                text(f"CREATE TABLE {copy} (LIKE {source} INCLUDING CONSTRAINTS INCLUDING INDEXES)")
            )
            if name == KEYS_ONLY:
                others = connection.execute(
                    text(
                        "SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid ="
                        " CAST(:copy AS regclass) AND NOT indisprimary AND NOT indisunique"
                    ),
                    {"copy": copy},
                ).scalars()
                for index in list(others):
                    connection.execute(text(f"DROP INDEX {index}"))
            connection.execute(text(f"INSERT INTO {copy} SELECT * FROM {source}"))
            if name in NUMBERED:
                connection.execute(
                    text(f"ALTER TABLE {copy} ALTER COLUMN id ADD GENERATED BY DEFAULT AS IDENTITY")
                )
                connection.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{copy}', 'id'), "
                        f"COALESCE(MAX(id), 0) + 1, false) FROM {copy}"
                    )
                )
        # New tables have no statistics, and each statement is planned for its own
        # parameters (store/engine.py): without them a chunk's query may read a whole table.
        connection.execute(text("ANALYZE " + ", ".join(f'"{schema}"."{n}"' for n in names)))
    # In the URL, not the engine's connect_args: a worker's engine on scratch_url finds it too.
    given = engine.url.query.get("options") or ()
    options = " ".join(
        [*([given] if isinstance(given, str) else given), f"-c search_path={schema}"]
    )
    scratch = create_store_engine(
        engine.url.update_query_dict({"options": options}).render_as_string(hide_password=False)
    )
    try:
        yield scratch
    finally:
        scratch.dispose()
        with atomic(engine) as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


def scratch_engine(url: str) -> Engine:
    """An engine on the scratch copy at `url` (scratch_url), for this process. On SQLite
    without waiting for the disk: a copy thrown away with the run needs no durability, and
    syncing at each checkpoint was 7% of a simulated year in its worker processes."""
    engine = create_store_engine(url)
    if engine.dialect.name == "sqlite":

        @event.listens_for(engine, "connect")
        def _no_sync(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.execute("PRAGMA synchronous = OFF")

    return engine


def scratch_url(engine: Engine) -> str:
    """The URL (password included) another process opens `engine`'s scratch copy with
    (store.engine.create_store_engine); ValueError if `engine` is not on a scratch copy."""
    url = engine.url
    options = url.query.get("options")
    if url.get_backend_name() == "postgresql" and isinstance(options, str):
        is_copy = f"search_path={SCHEMA_PREFIX}" in options
    else:
        is_copy = Path(url.database or "").parent.name.startswith(SCRATCH_FOLDER)
    if not is_copy:
        raise ValueError(f"{url!r} is not a scratch copy made by scratch_copy")
    return url.render_as_string(hide_password=False)


__all__ = ["SCHEMA_PREFIX", "scratch_copy", "scratch_engine", "scratch_url"]
