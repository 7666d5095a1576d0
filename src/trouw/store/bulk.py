"""Bulk inserts: one statement built once, fed batches of row tuples.

SQLAlchemy's executemany spends about as long turning each row dict into
driver values as the database spends storing it, so each dialect gets its
fastest correct path:

- SQLite: the INSERT is compiled once and rows go to the driver as tuples,
  converted to the storage formats SQLAlchemy's own types use (so reads
  through SQLAlchemy see ordinary values). Within a batch a date or moment
  object that rows share (a simulated day's) is converted once.
- PostgreSQL: rows are COPYed into a temporary staging table and moved with
  one INSERT … SELECT, which keeps the ON CONFLICT rules of the statement.
  That INSERT is sent in pipeline mode (`send`): the server moves the rows
  while the caller prepares its next batch, as in one COPY stream.
  A small batch (an API request's, a tracking server's) goes straight to the
  driver's executemany of the INSERT compiled once: creating, filling and
  truncating the staging table costs the server more than a few rows do.

The caller gives the conflict rule as a function of the dialect's INSERT, so
`excluded` means the same thing on both paths.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from contextlib import ExitStack, closing
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Connection, Date, DateTime, Table, bindparam, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.dml import Insert

# Adds an ON CONFLICT clause (or nothing) to a dialect-specific INSERT.
ConflictRule = Callable[[Any], Insert]
# Waits for a batch sent and returns how many rows the database wrote.
Written = Callable[[], int]


def _sqlite_datetime(value: datetime) -> str:
    # SQLAlchemy's SQLite DateTime format; always with microseconds so text compares right.
    return value.isoformat(" ", "microseconds")


def _sqlite_date(value: date) -> str:
    return value.isoformat()


# Up to this many rows, the PostgreSQL path skips the staging table.
SMALL_BATCH = 100

# json.dumps with options builds a new encoder per call; one shared encoder is ~1 µs faster.
_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def copy_types(connection: Connection, table: Table, columns: Sequence[str]) -> list[str]:
    """PostgreSQL's names of the types of `columns`, for COPY … (FORMAT BINARY).

    A binary COPY takes the values as the columns store them: the server parses no
    text, and the driver dumps each value without guessing its type (about half the
    client's time per row of a text COPY)."""
    return [
        str(table.c[name].type.compile(dialect=connection.dialect)).split("(")[0].lower()
        for name in columns
    ]


def _with_json_text(row: tuple[Any, ...], columns: Sequence[int]) -> tuple[Any, ...]:
    """`row` with its values at the indexes `columns` as JSON text: only those are looked
    at (a tuple rebuilt value by value cost more than encoding its JSON)."""
    values = list(row)
    for index in columns:
        value = values[index]
        if value is not None:
            values[index] = _json(value)
    return tuple(values)


class BulkInsert:
    """Insert rows of `columns` into `table`, with `on_conflict` applied."""

    def __init__(
        self, table: Table, columns: Sequence[str], on_conflict: ConflictRule = lambda s: s
    ) -> None:
        self.table = table
        self.columns = tuple(columns)
        self.on_conflict = on_conflict
        self._sqlite_sql: str | None = None
        # (column index, conversion, whether a repeated object's text is reused)
        self._converters: list[tuple[int, Callable[[Any], Any], bool]] = []
        self._postgresql_sql: dict[str, str] = {}  # "rows" and "staged" statements

    def run(self, connection: Connection, rows: Sequence[tuple[Any, ...]]) -> int:
        """Insert `rows`; return how many rows the database reports as written."""
        return self.send(connection, rows)()

    def send(self, connection: Connection, rows: Sequence[tuple[Any, ...]]) -> Written:
        """Start inserting `rows`; the function returned waits for the database and returns
        how many rows it wrote. Until it is called, `connection` serves nothing else.

        On PostgreSQL the server inserts a large batch while the caller goes on (reading
        the next batch, say); SQLite has inserted the rows when this returns."""
        if not rows:
            return lambda: 0
        dialect = connection.dialect.name
        if dialect == "sqlite":
            written = self._run_sqlite(connection, rows)
            return lambda: written
        if dialect == "postgresql":
            return self._send_postgresql(connection, rows)
        raise NotImplementedError(f"bulk insert into {dialect}")

    # -- SQLite

    def _run_sqlite(self, connection: Connection, rows: Sequence[tuple[Any, ...]]) -> int:
        if self._sqlite_sql is None:
            self._prepare_sqlite(connection)
        assert self._sqlite_sql is not None
        if self._converters:
            rows = self._converted(rows)
        return connection.exec_driver_sql(self._sqlite_sql, list(rows)).rowcount

    def _converted(self, rows: Sequence[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """`rows` in SQLite's storage formats. A date or datetime column remembers its last
        value within the batch, by identity (equal datetimes in two time zones have two
        texts); a JSON value may be a dict changed since, so it is converted each time. The
        memory is the batch's own: one BulkInsert may serve several threads."""
        converters = self._converters
        last: list[Any] = [None] * len(converters)
        done: list[Any] = [None] * len(converters)
        converted = []
        for row in rows:
            values = list(row)
            for slot, (index, convert, remember) in enumerate(converters):
                value = values[index]
                if value is not None:
                    if value is not last[slot]:  # else the same object: its text is known
                        done[slot] = convert(value)
                        if remember:
                            last[slot] = value
                    values[index] = done[slot]
            converted.append(tuple(values))
        return converted

    def _prepare_sqlite(self, connection: Connection) -> None:
        statement = self.on_conflict(sqlite.insert(self.table))
        compiled = statement.compile(dialect=connection.dialect, column_keys=list(self.columns))
        if list(compiled.positiontup or []) != list(self.columns):
            raise ValueError(f"statement binds {compiled.positiontup}, expected {self.columns}")
        self._sqlite_sql = compiled.string
        for index, name in enumerate(self.columns):
            column_type = self.table.c[name].type
            if isinstance(column_type, DateTime):
                self._converters.append((index, _sqlite_datetime, True))
            elif isinstance(column_type, Date):
                self._converters.append((index, _sqlite_date, True))
            elif isinstance(column_type, JSON):
                self._converters.append((index, _json, False))

    # -- PostgreSQL

    def _send_postgresql(self, connection: Connection, rows: Sequence[tuple[Any, ...]]) -> Written:
        json_columns = [
            index
            for index, name in enumerate(self.columns)
            if isinstance(self.table.c[name].type, JSON)
        ]
        if json_columns:  # jsonb takes its text form, in COPY and as a parameter
            rows = [_with_json_text(row, json_columns) for row in rows]
        if len(rows) <= SMALL_BATCH:
            written = self._run_postgresql_rows(connection, rows)
            return lambda: written
        return self._send_postgresql_staged(connection, rows)

    def _run_postgresql_rows(self, connection: Connection, rows: Sequence[tuple[Any, ...]]) -> int:
        sql = self._postgresql_sql.get("rows")
        if sql is None:
            statement = self.on_conflict(
                postgresql.insert(self.table)
                .values({name: bindparam(f"p{index}") for index, name in enumerate(self.columns)})
                .inline()  # no RETURNING of the new id
            )
            compiled = statement.compile(dialect=connection.dialect)
            names = [f"p{index}" for index in range(len(self.columns))]
            if list(compiled.bind_names.values()) != names:  # a column default would add one
                raise ValueError(
                    f"statement binds {compiled.bind_names.values()}, expected {names}"
                )
            # positional, in column order: the rows go to the driver as they are
            sql = self._postgresql_sql["rows"] = compiled.string % {
                f"p{index}": "%s" for index in range(len(self.columns))
            }
        cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.executemany(sql, rows)
            return int(cursor.rowcount)  # psycopg sums it over the rows
        finally:
            cursor.close()

    def _send_postgresql_staged(
        self, connection: Connection, rows: Sequence[tuple[Any, ...]]
    ) -> Written:
        staging = f"trouw_staging_{self.table.name}"
        names = ", ".join(self.columns)
        driver = connection.connection.driver_connection
        assert driver is not None
        # Same column types as the target, no constraints or defaults; lives per session.
        driver.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {staging} AS "
            f"SELECT {names} FROM {self.table.name} WITH NO DATA"
        )
        with driver.cursor() as cursor, cursor.copy(f"COPY {staging} ({names}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        sql = self._postgresql_sql.get("staged")
        if sql is None:
            source = (
                select(*(text(name) for name in self.columns))
                .select_from(text(staging))
                .where(text("true"))  # keeps ON CONFLICT from parsing as a join's ON
            )
            statement = self.on_conflict(
                postgresql.insert(self.table).from_select(list(self.columns), source)
            )
            sql = self._postgresql_sql["staged"] = str(
                statement.compile(dialect=connection.dialect)
            )
        # In pipeline mode the INSERT and the TRUNCATE are sent, and the server runs them
        # while the caller goes on; leaving the pipeline waits for them (raising their error).
        insert = driver.cursor()
        with ExitStack() as stack:
            stack.enter_context(driver.pipeline())
            insert.execute(sql)
            driver.execute(f"TRUNCATE {staging}")
            pipeline = stack.pop_all()  # left by written(), unless sending failed

        def written() -> int:
            with closing(insert):
                pipeline.close()
                return int(insert.rowcount)

        return written
