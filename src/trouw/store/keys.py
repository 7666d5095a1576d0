"""Keys the project keeps in its database, so every machine that shares it agrees.

`links` is the secret that signs tracked links: a random value made by the
migration that created the table, so a new database has one before any mail
is signed. `links-override` is the fingerprint of the TROUW_SECRET that mail
was signed with, once a send used one: a machine with another secret, or
none, is stopped before its links differ.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Connection, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from trouw.store.tables import keys

LINKS = "links"
LINKS_OVERRIDE = "links-override"


def read_key(connection: Connection, name: str) -> str | None:
    value = connection.execute(select(keys.c.value).where(keys.c.name == name)).scalar()
    return None if value is None else str(value)


def remember_key(connection: Connection, name: str, value: str) -> str:
    """Keep `value` under `name` unless a value is kept already; returns the one kept."""
    insert = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
    now = datetime.now(UTC).replace(tzinfo=None)
    connection.execute(
        insert(keys).values(name=name, value=value, created_at=now).on_conflict_do_nothing()
    )
    kept = read_key(connection, name)
    assert kept is not None
    return kept


__all__ = ["LINKS", "LINKS_OVERRIDE", "read_key", "remember_key"]
