"""Statements compiled once and run on a raw DB-API connection, for the hot paths.

SQLAlchemy's own work per statement and transaction (connection checkout,
events, parameter handling) costs more than SQLite's for a one-row write. The
tracking server's click batches and the send run's per-mail ledger marks are
such writes: they keep the statement a SQLAlchemy construct, compile it once
for the dialect, and pass the parameters through the bind processors
SQLAlchemy would apply (datetimes as text on SQLite).

On PostgreSQL, `PreparedCalls` runs many short statements in one round trip
and one transaction, for little work in Python (the send run's marks).
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from datetime import date
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

    def numbered(self) -> tuple[str, list[str]]:
        """The statement with $1, $2 … for its parameters (as PREPARE takes it), and the
        parameters' names in that order."""
        names = list(dict.fromkeys(self._names))
        number = {name: f"${i}" for i, name in enumerate(names, 1)}
        sql = _PYFORMAT.sub(lambda m: number[m[1]] if m[1] else "%", self.sql)
        return sql, names


_PYFORMAT = re.compile(r"%\((\w+)\)s|%%")
_NO_SUCH_STATEMENT = "26000"  # invalid_sql_statement_name


class StatementsGone(Exception):
    """The session that ran the calls does not hold the statements prepared on this
    connection: a pooler in transaction mode (PgBouncer) hands each transaction a server
    session of its own. Nothing of the batch was done."""


class PreparedCalls:
    """Calls of compiled statements, many in one round trip (PostgreSQL with psycopg).

    Each statement is prepared once per connection (PREPARE: parsed once); a
    batch of calls then goes as one simple query, `EXECUTE name(literal, …);
    …`, which PostgreSQL runs as one implicit transaction: all of it or, when
    one call fails, none. The connection must be in autocommit
    (`KeptConnection(autocommit=True)`), or psycopg would spend a round trip
    each on BEGIN and COMMIT. The literals are written by libpq
    (`PQescapeLiteral`). In psycopg's pipeline mode the same calls cost about
    three times as much work in Python (its cursors and result handling per
    statement), and a second round trip for the commit. Behind a pooler in
    transaction mode the statements may be missing: `StatementsGone`, and the
    caller takes another way.
    """

    def __init__(self, statements: Mapping[str, Compiled]) -> None:
        self._statements = dict(statements)
        self._numbered = {name: c.numbered() for name, c in self._statements.items()}
        # Connections these statements are prepared on (one is replaced after an error).
        self._prepared: weakref.WeakSet[Any] = weakref.WeakSet()

    def run(self, cursor: Any, calls: Sequence[tuple[str, Mapping[str, Any]]]) -> list[int]:
        """Each call's row count. `cursor`: a psycopg cursor of a connection in autocommit."""
        if not calls:
            return []
        connection = cursor.connection
        if connection not in self._prepared:
            self._prepare(cursor)
            self._prepared.add(connection)
        from psycopg.pq import Escaping  # only PostgreSQL comes here

        escape, encoding = Escaping(connection.pgconn).escape_literal, connection.info.encoding

        def literal(value: Any) -> str:
            if value is None:
                return "NULL"
            if isinstance(value, bool):
                return "TRUE" if value else "FALSE"
            if isinstance(value, int):
                return str(value)
            if isinstance(value, date):  # and datetime: 2027-03-15 10:00:00
                value = str(value)
            if not isinstance(value, str):
                raise TypeError(f"no literal for {type(value).__name__}")
            return escape(value.encode(encoding)).decode(encoding)

        text = []
        for name, values in calls:
            given = self._statements[name].parameters(dict(values))
            args = ", ".join(literal(given[n]) for n in self._numbered[name][1])
            text.append(f"EXECUTE {_prepared_name(name)}({args})")
        try:
            cursor.execute(";\n".join(text))
            counts = [cursor.rowcount]
            while cursor.nextset():
                counts.append(cursor.rowcount)
        except Exception as exc:
            if getattr(exc, "sqlstate", None) == _NO_SUCH_STATEMENT:
                raise StatementsGone(str(exc)) from exc
            raise
        if len(counts) != len(calls):  # a bug, after the commit: say so
            raise RuntimeError(f"{len(counts)} results for {len(calls)} calls")
        return counts

    def _prepare(self, cursor: Any) -> None:
        """PREPARE each statement on this connection; one left by an earlier user of a pooled
        connection is replaced."""
        names = [_prepared_name(name) for name in self._statements]
        cursor.execute("SELECT name FROM pg_prepared_statements WHERE name = ANY(%s)", (names,))
        for (found,) in cursor.fetchall():
            cursor.execute(f"DEALLOCATE {found}")
        for name, (sql, _) in self._numbered.items():
            cursor.execute(f"PREPARE {_prepared_name(name)} AS {sql}")


def _prepared_name(name: str) -> str:
    if not name.isidentifier():
        raise ValueError(f"not a statement name: {name!r}")
    return f"trouw_{name}"


class KeptConnection:
    """One DB-API connection kept between write transactions, run one at a time.

    Each transaction first takes `lock` (the SQLite write lock across processes),
    then BEGIN IMMEDIATE on SQLite. A failed transaction is rolled back and its
    connection dropped (perhaps broken: never back into the pool); the next one
    opens a fresh connection. `autocommit` (PostgreSQL): the driver begins no
    transaction, each statement the caller sends is one (PreparedCalls).
    """

    def __init__(
        self, engine: Engine, lock: AbstractContextManager[Any], *, autocommit: bool = False
    ) -> None:
        self._engine = engine
        self._lock = lock
        self._sqlite = engine.dialect.name == "sqlite"
        self._autocommit = autocommit and not self._sqlite
        self._connection: Any = None

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """A DB-API cursor in a write transaction, committed when the block ends."""
        with self._lock:
            if self._connection is None:
                self._connection = self._engine.raw_connection()
                if self._autocommit:  # set back before it returns to the pool (close)
                    self._connection.driver_connection.autocommit = True
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
                if self._autocommit:
                    self._connection.driver_connection.autocommit = False
                self._connection.close()
            self._connection = None


__all__ = ["Compiled", "KeptConnection", "PreparedCalls", "StatementsGone"]
