"""The bearer keys of the tracking server's API (POST /api/events, /api/contacts).

A key is `trouw_` and 43 characters of a random 32-byte token: shown once by
`trouw keys create`, stored only as its SHA-256 hash, so a copy of the
database lets nobody in. A 256-bit random key needs no slow hash: there is
nothing to guess. `hint` keeps the key's first characters so `trouw keys list`
can tell keys apart. A revoked key stays in the table (its name stays taken),
with the time it was revoked.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, insert, select, update

from trouw.errors import UserError
from trouw.store.tables import api_keys

PREFIX = "trouw_"
_NAME_LENGTH = 50


@dataclass(frozen=True)
class ApiKey:
    name: str
    hint: str
    created_at: datetime
    revoked_at: datetime | None


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def create_api_key(connection: Connection, name: str) -> str:
    """A new key called `name`; the key itself, which is stored nowhere."""
    name = name.strip()
    if not name or len(name) > _NAME_LENGTH or not name.isprintable():
        raise UserError(
            f"'{name}' cannot name a key", key="NAME", fix="give 1 to 50 plain characters: shop-web"
        )
    taken = connection.execute(select(api_keys.c.name).where(api_keys.c.name == name)).first()
    if taken is not None:
        raise UserError(
            f"a key called '{name}' exists already (revoked keys keep their name)",
            key="NAME",
            fix="choose another name, such as shop-web-2; `trouw keys list` shows the names",
        )
    key = PREFIX + secrets.token_urlsafe(32)
    connection.execute(
        insert(api_keys).values(
            name=name,
            key_hash=key_hash(key),
            hint=key[: len(PREFIX) + 4],
            created_at=datetime.now(UTC).replace(tzinfo=None),
        )
    )
    return key


def list_api_keys(connection: Connection) -> list[ApiKey]:
    rows = connection.execute(
        select(
            api_keys.c.name, api_keys.c.hint, api_keys.c.created_at, api_keys.c.revoked_at
        ).order_by(api_keys.c.created_at, api_keys.c.name)
    )
    return [ApiKey(*row) for row in rows]


def revoke_api_key(connection: Connection, name: str) -> bool:
    """Revoke the key called `name`; False when it was revoked before."""
    found = connection.execute(select(api_keys.c.revoked_at).where(api_keys.c.name == name)).first()
    if found is None:
        raise UserError(
            f"no key called '{name}'", key="NAME", fix="`trouw keys list` shows the keys"
        )
    if found[0] is not None:
        return False
    connection.execute(
        update(api_keys)
        .where(api_keys.c.name == name)
        .values(revoked_at=datetime.now(UTC).replace(tzinfo=None))
    )
    return True


def active_keys(connection: Connection) -> dict[str, str]:
    """The hash of each key not revoked -> its name."""
    rows = connection.execute(
        select(api_keys.c.key_hash, api_keys.c.name).where(api_keys.c.revoked_at.is_(None))
    )
    return {str(digest): str(name) for digest, name in rows}
