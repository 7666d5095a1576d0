"""Engines, the one transaction helper, and schema upgrades on first use.

SQLite is tuned for a cron tool: WAL (readers never block the writer), a busy
timeout (a second writer waits instead of failing), foreign keys on, and a
page cache sized for a shop's event indexes. The
driver's own transaction handling is switched off so that trouw decides when
a transaction begins, and writers can take the lock up front with
BEGIN IMMEDIATE instead of failing halfway through.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from trouw.errors import UserError

BUSY_TIMEOUT_MS = 30_000
# Page cache per connection, in KiB (SQLite's default is 2 MiB): the event
# indexes of a large shop do not fit in 2 MiB, and every miss is a read.
CACHE_KIB = 64 * 1024


def create_store_engine(url: str) -> Engine:
    """An engine for `url`, with SQLite tuned; the schema is not touched."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise UserError(
            f"'{url}' is not a database URL",
            key="database",
            fix="use e.g. sqlite:///path/trouw.db or postgresql+psycopg://user@host/db",
        ) from exc
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        # psycopg 3 is the supported driver; plain postgresql:// would ask for psycopg2.
        parsed = parsed.set(drivername="postgresql+psycopg")
    database = parsed.database or ""
    # A URI filename (file:…?uri=true) is SQLite's to resolve: no folder is made for it.
    plain_file = database not in ("", ":memory:") and not database.startswith("file:")
    if parsed.get_backend_name() == "sqlite" and plain_file:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    try:
        engine = create_engine(parsed)
    except NoSuchModuleError as exc:
        raise UserError(
            f"no driver for '{parsed.drivername}'",
            key="database",
            fix="for PostgreSQL: pip install 'trouw[postgres]'",
        ) from exc
    except ModuleNotFoundError as exc:
        raise UserError(
            f"the database driver is not installed ({exc.name})",
            key="database",
            fix="for PostgreSQL: pip install 'trouw[postgres]'",
        ) from exc
    if engine.dialect.name == "sqlite":
        _tune_sqlite(engine)
    elif engine.dialect.name == "postgresql":
        _tune_postgresql(engine)
    return engine


# psycopg prepares a statement on the server after this many runs: never, in effect (see
# _tune_postgresql). A statement run with `prepare=True` is prepared all the same.
PREPARE_ONLY_WHEN_ASKED = 2**62


def _tune_postgresql(engine: Engine) -> None:
    """Every statement of ours planned for its own parameters: psycopg does not prepare one
    on the server by itself. Prepared (psycopg does it after five runs by default),
    PostgreSQL may keep a generic plan, blind to the values: a chunk's query over a range
    of contact ids (plan, simulate, send) then reads what the whole shop has for every
    chunk. Measured at 3M contacts, the fire-safety segment's members of one chunk: 4.5 s
    generic, 0.1 s planned for the range.

    A statement that finds one row by its key, run for every mail (sending/courier.py),
    asks to be prepared (`prepare=True`): parsed and planned once per connection, not for
    every row, where any plan is the key's index.

    The server's own statements keep their cached plans: a foreign key's check is one such
    statement per row inserted. Forcing custom plans for the session instead
    (plan_cache_mode) planned that check anew for every row: importing a million events
    spent 35.5 s in the server's INSERT instead of 19.1 s."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Not None: that would refuse `prepare=True` too.
        dbapi_connection.prepare_threshold = PREPARE_ONLY_WHEN_ASKED


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we emit BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        _write_ahead(cursor)
        cursor.execute("PRAGMA synchronous = NORMAL")  # durable at checkpoints; safe in WAL
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
        connection.exec_driver_sql(f"BEGIN {mode}")


def _write_ahead(cursor: Any) -> None:
    """Switch to WAL. Switching needs the database to itself, and SQLite answers "locked" at
    once, without the busy timeout, while another process opening a new database at the
    same moment holds it (two cron jobs on a fresh project): try again for as long as the
    busy timeout would have waited."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


@contextmanager
def atomic(engine: Engine, *, write: bool = True) -> Iterator[Connection]:
    """One transaction: commit when the block ends, roll back if it raises.

    `write=True` takes SQLite's write lock at BEGIN, so two writers queue up
    behind the busy timeout instead of one failing with "database is locked"
    after it has done its reads.
    """
    with engine.connect() as connection:
        if write and engine.dialect.name == "sqlite":
            connection = connection.execution_options(sqlite_begin="IMMEDIATE")
        with connection.begin():
            yield connection


def refresh_statistics(engine: Engine, table: Table) -> None:
    """Have PostgreSQL's planner see a table's new rows at once (ANALYZE), after a big write.

    Without statistics (a fresh import) or with old ones, PostgreSQL may take an
    anti-join on a few estimated rows for one on a table of thousands: a segment
    count of 4 s instead of 40 ms. Autovacuum analyzes too, but a minute or more
    later, after the cron job that imported has counted its segments. ANALYZE
    reads a sample, so it takes about as long on ten million rows as on one
    hundred thousand. SQLite's planner does not need it for trouw's queries.
    """
    if engine.dialect.name == "postgresql":
        with engine.begin() as connection:
            connection.execute(text(f"ANALYZE {table.name}"))


# A table is analyzed again once this share of its rows changed since it last was
# (autovacuum's own default, autovacuum_analyze_scale_factor).
STALE_SHARE = 0.1


def refresh_stale_statistics(engine: Engine, table: Table) -> bool:
    """ANALYZE `table` (PostgreSQL) when it has no statistics yet or a tenth of its rows
    changed since; True if it did.

    Every statement is planned for its own parameters (`_tune_postgresql`), so
    a plan is only as good as the statistics it is made from. A table that has
    none, such as a ledger that grew by a whole first month of sends before
    autovacuum came by, or a database just copied from a template, gets the
    planner's default guesses: looking up 500 contacts' ledger rows read all of
    its two million rows (0.5 s) instead of 1,200 through the contact index
    (1 ms), for every chunk of a send run. Fresh statistics cost one ANALYZE,
    which reads a bounded sample.
    """
    if engine.dialect.name != "postgresql":
        return False
    stale = text(
        "SELECT (s.last_analyze IS NULL AND s.last_autoanalyze IS NULL)"
        " OR s.n_mod_since_analyze > :share * greatest(c.reltuples, 1000)"
        " FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid"
        " WHERE s.relid = CAST(:table AS regclass)"
    )
    with engine.begin() as connection:
        if not connection.execute(stale, {"share": STALE_SHARE, "table": table.name}).scalar():
            return False
        connection.execute(text(f"ANALYZE {table.name}"))
    return True
