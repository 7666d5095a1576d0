"""Statements compiled once and run on a raw DB-API connection, for the hot paths.

SQLAlchemy's own work per statement and transaction (connection checkout,
events, parameter handling) costs more than SQLite's for a one-row write. The
tracking server's click batches and the send run's per-mail ledger marks are
such writes: they keep the statement a SQLAlchemy construct, compile it once
for the dialect, and pass the parameters through the bind processors
SQLAlchemy would apply (datetimes as text on SQLite).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from typing import Any, cast

from sqlalchemy import Engine
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler


class Compiled:
    """A statement compiled once for a dialect, and its parameters as DB-API takes them."""

    def __init__(self, statement: ClauseElement, dialect: Dialect) -> None:
        compiled = cast(SQLCompiler, statement.compile(dialect=dialect))
        self.sql = compiled.string
        self._positional = dialect.positional
        # The statement's own literals (LIMIT 1, 'sent', …) are parameters too.
        self._defaults = {
            name: bind.effective_value
            for bind, name in compiled.bind_names.items()
            if not bind.required
        }
        # Positional styles (SQLite's ?) may use a name more than once, in this order.
        self._names = (
            list(compiled.positiontup or ())
            if self._positional
            else list(compiled.bind_names.values())
        )
        self._processors = {
            name: processor
            for bind, name in compiled.bind_names.items()
            if (processor := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None
        }

    def parameters(self, values: dict[str, Any]) -> Any:
        given = {**self._defaults, **values}
        converted = {
            name: self._processors[name](given[name]) if name in self._processors else given[name]
            for name in dict.fromkeys(self._names)
        }
        if self._positional:
            return tuple(converted[name] for name in self._names)
        return converted


class KeptConnection:
    """One DB-API connection kept between write transactions, run one at a time.

    Each transaction first takes `lock` (the SQLite write lock across processes),
    then BEGIN IMMEDIATE on SQLite. A failed transaction is rolled back and its
    connection dropped (perhaps broken: never back into the pool); the next one
    opens a fresh connection.
    """

    def __init__(self, engine: Engine, lock: AbstractContextManager[Any]) -> None:
        self._engine = engine
        self._lock = lock
        self._sqlite = engine.dialect.name == "sqlite"
        self._connection: Any = None

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """A DB-API cursor in a write transaction, committed when the block ends."""
        with self._lock:
            if self._connection is None:
                self._connection = self._engine.raw_connection()
            connection = self._connection
            try:
                cursor = connection.cursor()
                if self._sqlite:  # the driver's own transactions are off (store/engine.py)
                    cursor.execute("BEGIN IMMEDIATE")
                yield cursor
                connection.commit()
            except BaseException:
                self._connection = None
                with suppress(Exception):
                    connection.rollback()
                with suppress(Exception):
                    connection.invalidate()
                raise

    def close(self) -> None:
        if self._connection is not None:
            with suppress(Exception):
                self._connection.close()
            self._connection = None


__all__ = ["Compiled", "KeptConnection"]
