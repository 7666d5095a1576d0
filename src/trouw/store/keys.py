"""Keys the project keeps in its database, so every machine that shares it agrees.

`links` is the secret that signs tracked links: a random value made by the
migration that created the table, so a new database has one before any mail
is signed. `links-override` is the fingerprint of the TROUW_SECRET that mail
was signed with, once a send used one: a machine with another secret, or
none, is stopped before its links differ. `links-retired:FINGERPRINT` keeps
a project key that `trouw keys rotate` replaced, with the time until which
the links it signed are still accepted: `{"secret": ..., "until": ISO time}`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, delete, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from trouw.store.tables import keys

LINKS = "links"
LINKS_OVERRIDE = "links-override"
LINKS_RETIRED = "links-retired:"  # + the retired key's fingerprint


@dataclass(frozen=True)
class RetiredKey:
    """A former project key, still accepted for links until `until` (naive UTC)."""

    secret: str
    retired_at: datetime
    until: datetime


def read_key(connection: Connection, name: str) -> str | None:
    value = connection.execute(select(keys.c.value).where(keys.c.name == name)).scalar()
    return None if value is None else str(value)


def remember_key(connection: Connection, name: str, value: str) -> str:
    """Keep `value` under `name` unless a value is kept already; returns the one kept."""
    insert = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
    connection.execute(
        insert(keys).values(name=name, value=value, created_at=_now()).on_conflict_do_nothing()
    )
    kept = read_key(connection, name)
    assert kept is not None
    return kept


def replace_key(connection: Connection, name: str, value: str) -> None:
    """Keep `value` under `name`, whatever was kept before (in a write transaction)."""
    insert = pg_insert if connection.dialect.name == "postgresql" else sqlite_insert
    statement = insert(keys).values(name=name, value=value, created_at=_now())
    connection.execute(
        statement.on_conflict_do_update(
            index_elements=["name"],
            set_={"value": value, "created_at": statement.excluded.created_at},
        )
    )


def retire_key(
    connection: Connection, fingerprint: str, secret: str, until: datetime, now: datetime
) -> None:
    """Keep a replaced key as retired, accepted until `until`; forget retired keys past theirs."""
    expired = [name for name, key in _retired(connection).items() if key.until <= now]
    if expired:
        connection.execute(delete(keys).where(keys.c.name.in_(expired)))
    value = json.dumps({"secret": secret, "until": until.isoformat()})
    replace_key(connection, LINKS_RETIRED + fingerprint, value)


def retired_keys(connection: Connection, now: datetime) -> list[RetiredKey]:
    """The retired project keys still accepted at `now`, the most recently retired first."""
    found = [key for key in _retired(connection).values() if key.until > now]
    return sorted(found, key=lambda key: key.retired_at, reverse=True)


def _retired(connection: Connection) -> dict[str, RetiredKey]:
    query = select(keys.c.name, keys.c.value, keys.c.created_at).where(
        keys.c.name.startswith(LINKS_RETIRED, autoescape=True)
    )
    found = {}
    for name, value, created_at in connection.execute(query):
        data = json.loads(value)
        found[str(name)] = RetiredKey(
            str(data["secret"]), created_at, datetime.fromisoformat(data["until"])
        )
    return found


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


__all__ = [
    "LINKS",
    "LINKS_OVERRIDE",
    "LINKS_RETIRED",
    "RetiredKey",
    "read_key",
    "remember_key",
    "replace_key",
    "retire_key",
    "retired_keys",
]
