"""Signed links in mails: click tracking, the open pixel and unsubscribe.

A tracked link is `{tracking.base_url}/c/TOKEN`; the token is signed with
itsdangerous (HMAC) and carries the contact id, the campaign, the tag and the
target URL, so `trouw serve` can record the click and redirect without a
lookup, and a forged or altered token is refused. The secret is the
project's key, kept in its database (store/keys.py), so every machine that
shares the database signs and reads alike; TROUW_SECRET overrides it, and
once mail was signed with it, a machine with another secret (or none) is
refused instead of signing links the tracking server would not know.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import zlib
from base64 import urlsafe_b64decode, urlsafe_b64encode
from dataclasses import dataclass, field
from typing import Any

from itsdangerous import URLSafeSerializer
from sqlalchemy import Connection

from trouw.errors import UserError, WorkFailed
from trouw.store.keys import LINKS, LINKS_OVERRIDE, read_key, remember_key

_json_string = json.encoder.encode_basestring

SECRET_ENV = "TROUW_SECRET"
# One salt per kind of link: a click token cannot be replayed as an unsubscribe.
SALTS = {"c": "trouw.click", "o": "trouw.open", "u": "trouw.unsubscribe"}
PROJECT_KEY = "the project key"


@dataclass(frozen=True)
class SigningKey:
    """The secret that signs links, and where it comes from (TROUW_SECRET or the project)."""

    secret: str = field(repr=False)
    source: str

    @property
    def fingerprint(self) -> str:
        """A short name of the secret that gives nothing of it away."""
        return hashlib.sha256(f"trouw-links:{self.secret}".encode()).hexdigest()[:12]

    def __str__(self) -> str:
        return f"{self.fingerprint} ({self.source})"


def signing_key(connection: Connection) -> SigningKey:
    """TROUW_SECRET if set, else the project key kept in the database.

    Raises UserError when TROUW_SECRET differs from the secret earlier mail of
    this database was signed with, or is missing where it signed mail before.
    """
    override = read_key(connection, LINKS_OVERRIDE)
    given = os.environ.get(SECRET_ENV, "")
    if given:
        key = SigningKey(given, SECRET_ENV)
        if override is not None and override != key.fingerprint:
            raise UserError(
                f"{SECRET_ENV} (key {key.fingerprint}) is not the secret this database's mail "
                f"was signed with (key {override}): its links would not be recognised",
                key=SECRET_ENV,
                fix=f"set the same {SECRET_ENV} on every machine that shares the database",
            )
        return key
    if override is not None:
        raise UserError(
            f"this database's mail was signed with {SECRET_ENV} (key {override}), "
            "which is not set here",
            key=SECRET_ENV,
            fix=f"set {SECRET_ENV} as on the machines that sent the mail",
        )
    secret = read_key(connection, LINKS)
    if secret is None:
        raise WorkFailed("the database has no project key: run a newer trouw to migrate it")
    return SigningKey(secret, PROJECT_KEY)


def keep_signing_key(connection: Connection, key: SigningKey) -> None:
    """Remember that mail is signed with TROUW_SECRET (its fingerprint), in a write transaction."""
    if key.source == SECRET_ENV:
        remember_key(connection, LINKS_OVERRIDE, key.fingerprint)


@dataclass(frozen=True)
class ClickToken:
    """What a click token says: who clicked what, in which campaign."""

    contact_id: str
    campaign: str
    tag: str
    url: str


class LinkSigner:
    """Makes and reads the signed tokens of tracked links.

    Tokens are itsdangerous `URLSafeSerializer` tokens (JSON payload, HMAC-SHA1
    with the django-concat key derivation). They are made and read here without
    the serializer, as a run signs three links or more per mail and the
    tracking server reads one per request: the HMAC's inner and outer hashes
    are keyed once per kind of link and copied per token (RFC 2104), there is
    no optional zlib step when signing, and `for_mail` encodes the contact and
    campaign once for all links of a mail. `loads` accepts every token this
    makes, and reading accepts what `loads` accepts (compressed tokens too);
    tests check both.
    """

    def __init__(self, base_url: str, secret: str) -> None:
        self.base_url = base_url.rstrip("/")
        # itsdangerous derives each kind's key; the HMAC's hashes are keyed with it once.
        self._hashes = {
            kind: _keyed_sha1(URLSafeSerializer(secret, salt=salt).make_signer().derive_key())
            for kind, salt in SALTS.items()
        }
        self._prefixes = {kind: f"{self.base_url}/{kind}/" for kind in SALTS}

    def sign(self, kind: str, data: list[str]) -> str:
        """The token for `data` (what `URLSafeSerializer(secret, salt).dumps(data)` verifies)."""
        return self._token(kind, _json_list(data))

    def _token(self, kind: str, text: str) -> str:
        # `text` is the JSON `dumps(data, separators=(",", ":"), ensure_ascii=False)` writes.
        payload = urlsafe_b64encode(text.encode("utf-8")).rstrip(b"=")
        return (payload + b"." + self._signature(kind, payload)).decode("ascii")

    def _signature(self, kind: str, payload: bytes) -> bytes:
        return urlsafe_b64encode(self._digest(kind, payload)).rstrip(b"=")

    def _digest(self, kind: str, payload: bytes) -> bytes:
        inner_start, outer_start = self._hashes[kind]
        inner = inner_start.copy()
        inner.update(payload)
        outer = outer_start.copy()
        outer.update(inner.digest())
        digest: bytes = outer.digest()
        return digest

    def for_mail(self, contact_id: str, campaign: str) -> MailLinks:
        """The links of one mail to one contact in one campaign."""
        return MailLinks(self, contact_id, campaign)

    def click_url(self, contact_id: str, campaign: str, url: str, tag: str) -> str:
        return self.for_mail(contact_id, campaign).click_url(url, tag)

    def open_url(self, contact_id: str, campaign: str) -> str:
        return self.for_mail(contact_id, campaign).open_url()

    def unsubscribe_url(self, contact_id: str, campaign: str) -> str:
        return self.for_mail(contact_id, campaign).unsubscribe_url()

    def read_click(self, token: str) -> ClickToken | None:
        """The click a token records, or None when it is forged, altered or not a click."""
        data = self._load("c", token)
        if not _strings(data, 4):
            return None
        return ClickToken(*data)

    def read_contact(self, kind: str, token: str) -> tuple[str, str] | None:
        """(contact id, campaign) of an open (`o`) or unsubscribe (`u`) token, or None."""
        data = self._load(kind, token)
        if not _strings(data, 2):
            return None
        return data[0], data[1]

    def _load(self, kind: str, token: str) -> Any:
        """The token's data, or None: what `URLSafeSerializer.loads` accepts, checked with
        the keyed hashes (the tracking server reads a token per request)."""
        try:
            payload, dot, signature = token.encode("ascii").rpartition(b".")
        except UnicodeEncodeError:
            return None
        if not dot:
            return None
        # Compared as bytes, as itsdangerous does: base64's last character carries bits
        # that decoding drops, so a few spellings of one signature are the same signature.
        try:
            given = urlsafe_b64decode(signature + b"=" * (-len(signature) % 4))
        except ValueError:
            return None
        if not hmac.compare_digest(given, self._digest(kind, payload)):
            return None
        compressed = payload.startswith(b".")  # itsdangerous zlib-compresses when it helps
        body = payload[1:] if compressed else payload
        try:
            data = urlsafe_b64decode(body + b"=" * (-len(body) % 4))
            return json.loads(zlib.decompress(data) if compressed else data)
        except (ValueError, zlib.error):
            return None


def _strings(data: Any, count: int) -> bool:
    return isinstance(data, list) and len(data) == count and all(isinstance(v, str) for v in data)


class MailLinks:
    """The signed links of one mail: contact and campaign are JSON-encoded once for all."""

    __slots__ = ("_head", "_signer")

    def __init__(self, signer: LinkSigner, contact_id: str, campaign: str) -> None:
        self._signer = signer
        self._head = f"[{_json_string(contact_id)},{_json_string(campaign)}"

    def click_url(self, url: str, tag: str) -> str:
        """The tracked link to `url`: the token of [contact, campaign, tag, url]."""
        text = f"{self._head},{_json_string(tag)},{_json_string(url)}]"
        return self._signer._prefixes["c"] + self._signer._token("c", text)

    def open_url(self) -> str:
        """The open pixel's address: the token of [contact, campaign]."""
        return self._signer._prefixes["o"] + self._signer._token("o", self._head + "]")

    def unsubscribe_url(self) -> str:
        """The one-click unsubscribe link: the token of [contact, campaign]."""
        return self._signer._prefixes["u"] + self._signer._token("u", self._head + "]")


def _json_list(data: list[str]) -> str:
    # json's C string encoder, as `dumps` uses it: a new JSONEncoder per call costs as much
    # as the HMAC.
    return "[" + ",".join([_json_string(value) for value in data]) + "]"


def _keyed_sha1(key: bytes) -> tuple[Any, Any]:
    """HMAC-SHA1's inner and outer hashes with `key` absorbed, to copy for each message."""
    size = hashlib.sha1().block_size
    if len(key) > size:  # not so for itsdangerous' derived keys (20 bytes), but HMAC says so
        key = hashlib.sha1(key).digest()
    block = key.ljust(size, b"\0")
    inner = hashlib.sha1(bytes(byte ^ 0x36 for byte in block))
    outer = hashlib.sha1(bytes(byte ^ 0x5C for byte in block))
    return inner, outer
