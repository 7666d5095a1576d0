"""Bulk inserts: one statement built once, fed batches of row tuples.

SQLAlchemy's executemany spends about as long turning each row dict into
driver values as SQLite spends storing it. On SQLite the statement is
compiled once and rows go to the driver as tuples, converted with the same
storage formats SQLAlchemy's own types use (so reads through SQLAlchemy see
ordinary values). Other databases take the plain SQLAlchemy path, which
batches rows into multi-row VALUES for PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Connection, Date, DateTime
from sqlalchemy.sql.dml import Insert


def _sqlite_datetime(value: datetime) -> str:
    # SQLAlchemy's SQLite DateTime format; always with microseconds so text compares right.
    return value.isoformat(" ", "microseconds")


def _sqlite_date(value: date) -> str:
    return value.isoformat()


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class BulkInsert:
    """`statement` (an INSERT, maybe with ON CONFLICT) for rows of `columns`."""

    def __init__(self, statement: Insert, columns: Sequence[str]) -> None:
        self.statement = statement
        self.columns = tuple(columns)
        self._sqlite_sql: str | None = None
        self._converters: list[tuple[int, Callable[[Any], Any]]] = []

    def run(self, connection: Connection, rows: Sequence[tuple[Any, ...]]) -> int:
        """Insert `rows`; return how many rows the database reports as changed."""
        if not rows:
            return 0
        if connection.dialect.name != "sqlite":
            # Batched executemany reports no rowcount; RETURNING lists the rows written.
            dicts = [dict(zip(self.columns, row, strict=True)) for row in rows]
            key = next(iter(self.statement.table.primary_key))
            return len(connection.execute(self.statement.returning(key), dicts).all())
        if self._sqlite_sql is None:
            self._prepare_sqlite(connection)
        assert self._sqlite_sql is not None
        if self._converters:
            rows = [self._convert(row) for row in rows]
        result = connection.exec_driver_sql(self._sqlite_sql, list(rows))
        return result.rowcount

    def _convert(self, row: tuple[Any, ...]) -> tuple[Any, ...]:
        values = list(row)
        for index, convert in self._converters:
            value = values[index]
            if value is not None:
                values[index] = convert(value)
        return tuple(values)

    def _prepare_sqlite(self, connection: Connection) -> None:
        compiled = self.statement.compile(
            dialect=connection.dialect, column_keys=list(self.columns)
        )
        order = compiled.positiontup or []
        if list(order) != list(self.columns):
            raise ValueError(f"statement binds {order}, expected {self.columns}")
        self._sqlite_sql = compiled.string
        table = self.statement.table
        for index, name in enumerate(self.columns):
            column_type = table.c[name].type
            if isinstance(column_type, DateTime):
                self._converters.append((index, _sqlite_datetime))
            elif isinstance(column_type, Date):
                self._converters.append((index, _sqlite_date))
            elif isinstance(column_type, JSON):
                self._converters.append((index, _json))
