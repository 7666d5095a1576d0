"""`column IN (ids)` as one parameter, whatever the number of ids.

An expanded `IN (:a, :b, …)` is a new statement text for each number of ids:
SQLAlchemy renders it again, the driver parses it again (psycopg splits its
placeholders in Python) and SQLite prepares it again, each time. For a chunk's
hundreds or thousands of ids that cost more than running it. Here the ids are
one parameter and the text stays the same: on PostgreSQL `= ANY(:ids)`, an
array; on SQLite `IN (SELECT value FROM json_each(:ids))`, a JSON array. The
plans are those of an IN list (the index is probed for each id).

The ids are given as a list of strings either way; `IdList` converts them.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    String,
    any_,
    bindparam,
    func,
    literal_column,
    select,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine


class IdList(TypeDecorator[Collection[str]]):
    """Text ids: an array of text on PostgreSQL, a JSON array's text on SQLite."""

    impl = String
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(ARRAY(String()))
        return dialect.type_descriptor(String())

    def process_bind_param(self, value: Collection[str] | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        ids = [str(item) for item in value]
        return ids if dialect.name == "postgresql" else json.dumps(ids)


def among(column: ColumnElement[Any], dialect: str) -> ColumnElement[bool]:
    """`column` is one of the parameter `ids` (give a list of strings)."""
    ids = bindparam("ids", type_=IdList())
    if dialect == "postgresql":
        return column == any_(ids)
    given: Select[Any] = select(literal_column("value")).select_from(func.json_each(ids))
    return column.in_(given)
