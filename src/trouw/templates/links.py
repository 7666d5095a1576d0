"""Signed links in mails: click tracking, the open pixel, unsubscribe and survey answers.

A tracked link is `{tracking.base_url}/c/TOKEN`; the token is signed with
itsdangerous (HMAC) and carries the contact id, the campaign, the tag and the
target URL, so `trouw serve` can record the click and redirect without a
lookup, and a forged or altered token is refused. It also carries the
contact's link key (`contacts.link_key`, random, made when the contact row
is): a contact forgotten and later imported again under the same id is a
new row with a new key, so the forgotten person's old links record nothing
for the newcomer. (Contacts made before the key existed have none, and
their tokens carry none.) An answer link (`survey_link` in a template) is
`/s/TOKEN`, its token the contact, campaign, question, score and the day
the mail was made (and the link key).

The secret is the project's key, kept in its database (store/keys.py), so
every machine that shares the database signs and reads alike; TROUW_SECRET
overrides it, and once mail was signed with it, a machine with another
secret (or none) is refused instead of signing links the tracking server
would not know.

Keys can be rotated, and the links already in inboxes keep working for a
while: `trouw keys rotate` replaces the project key and keeps the old one
accepted for a grace period (90 days unless told otherwise); with
TROUW_SECRET, set the new secret there and the old one(s) in
TROUW_SECRET_OLD (comma-separated) until the grace is over. The newest key
signs; every accepted key verifies.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import zlib
from base64 import urlsafe_b64decode, urlsafe_b64encode
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from itsdangerous import URLSafeSerializer
from sqlalchemy import Connection

from trouw.errors import UserError, WorkFailed
from trouw.store.keys import (
    LINKS,
    LINKS_OVERRIDE,
    read_key,
    replace_key,
    retire_key,
    retired_keys,
)

_json_string = json.encoder.encode_basestring

SECRET_ENV = "TROUW_SECRET"
OLD_SECRETS_ENV = "TROUW_SECRET_OLD"  # comma-separated: former secrets, still accepted
DEFAULT_GRACE = timedelta(days=90)  # how long a rotated project key is still accepted
# One salt per kind of link: a click token cannot be replayed as an unsubscribe.
SALTS = {"c": "trouw.click", "o": "trouw.open", "u": "trouw.unsubscribe", "s": "trouw.survey"}
PROJECT_KEY = "the project key"


@dataclass(frozen=True)
class SigningKey:
    """The secret that signs links, and where it comes from (TROUW_SECRET or the project)."""

    secret: str = field(repr=False)
    source: str

    @property
    def fingerprint(self) -> str:
        """A short name of the secret that gives nothing of it away."""
        return fingerprint(self.secret)

    def __str__(self) -> str:
        return f"{self.fingerprint} ({self.source})"


def fingerprint(secret: str) -> str:
    """A short name of a secret that gives nothing of it away."""
    return hashlib.sha256(f"trouw-links:{secret}".encode()).hexdigest()[:12]


def signing_key(connection: Connection) -> SigningKey:
    """TROUW_SECRET if set, else the project key kept in the database.

    Raises UserError when TROUW_SECRET differs from the secret earlier mail of
    this database was signed with (unless that one is in TROUW_SECRET_OLD: a
    rotation), or is missing where it signed mail before.
    """
    override = read_key(connection, LINKS_OVERRIDE)
    given = os.environ.get(SECRET_ENV, "")
    if given:
        key = SigningKey(given, SECRET_ENV)
        rotated = override in {fingerprint(old) for old in old_secrets()}
        if override is not None and override != key.fingerprint and not rotated:
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
    """Remember that mail is signed with TROUW_SECRET (its fingerprint), in a write transaction.

    After a rotation (the old secret in TROUW_SECRET_OLD) the new one is remembered: from
    then on a machine still on the old secret is refused.
    """
    if key.source == SECRET_ENV and read_key(connection, LINKS_OVERRIDE) != key.fingerprint:
        replace_key(connection, LINKS_OVERRIDE, key.fingerprint)


def old_secrets() -> list[str]:
    """The former secrets in TROUW_SECRET_OLD (comma-separated), whose links still count."""
    return [part.strip() for part in os.environ.get(OLD_SECRETS_ENV, "").split(",") if part.strip()]


def accepted_secrets(connection: Connection, now: datetime | None = None) -> list[str]:
    """The secrets besides the signing key whose links are still accepted: TROUW_SECRET_OLD,
    and the project keys `trouw keys rotate` retired whose grace period runs."""
    moment = now or datetime.now(UTC).replace(tzinfo=None)
    return [*old_secrets(), *(key.secret for key in retired_keys(connection, moment))]


@dataclass(frozen=True)
class Rotation:
    """What `rotate_project_key` did: the new key, and the old one's fingerprint and end."""

    new: SigningKey
    retired: str
    until: datetime


def rotate_project_key(
    connection: Connection, grace: timedelta = DEFAULT_GRACE, now: datetime | None = None
) -> Rotation:
    """Replace the project key by a new random one, in a write transaction; links signed with
    the old one are accepted for `grace` more (0: from now on refused)."""
    if os.environ.get(SECRET_ENV):
        raise UserError(
            f"{SECRET_ENV} is set: it signs the links, not the project key",
            key=SECRET_ENV,
            fix=f"to rotate {SECRET_ENV}, set the new secret in {SECRET_ENV} and the old one "
            f"in {OLD_SECRETS_ENV} on every machine; to rotate the project key, unset "
            f"{SECRET_ENV} here",
        )
    current = read_key(connection, LINKS)
    if current is None:
        raise WorkFailed("the database has no project key: run a newer trouw to migrate it")
    moment = now or datetime.now(UTC).replace(tzinfo=None)
    retire_key(connection, fingerprint(current), current, moment + grace, moment)
    new = SigningKey(secrets.token_urlsafe(32), PROJECT_KEY)
    replace_key(connection, LINKS, new.secret)
    return Rotation(new, fingerprint(current), moment + grace)


@dataclass(frozen=True)
class ClickToken:
    """What a click token says: who clicked what, in which campaign."""

    contact_id: str
    campaign: str
    tag: str
    url: str
    link_key: str | None = None  # the contact's, when the token carries one


@dataclass(frozen=True)
class SurveyToken:
    """What a survey answer token says: who answered which question of which mail, how.

    `day` is the day the mail was made (YYYY-MM-DD): with the contact, campaign and
    question it names the one answer a mail can hold.
    """

    contact_id: str
    campaign: str
    question: str
    score: int
    day: str
    link_key: str | None = None


@dataclass(frozen=True)
class LinkToken:
    """What an open or unsubscribe token says: whose mail, of which campaign."""

    contact_id: str
    campaign: str
    link_key: str | None = None


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

    `secret` signs; a token signed with one of `old_secrets` (a rotated key in its
    grace period) reads as well. The signing key is tried first: a current link
    costs one HMAC.
    """

    def __init__(self, base_url: str, secret: str, *, old_secrets: Sequence[str] = ()) -> None:
        self.base_url = base_url.rstrip("/")
        self._hashes = _kind_hashes(secret)
        self._old_hashes = [
            _kind_hashes(old) for old in dict.fromkeys(old_secrets) if old != secret
        ]
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
        # `_digest` for the signing key, written out: every link of every mail comes here.
        inner_start, outer_start = self._hashes[kind]
        inner = inner_start.copy()
        inner.update(payload)
        outer = outer_start.copy()
        outer.update(inner.digest())
        digest: bytes = outer.digest()
        return digest

    def for_mail(self, contact_id: str, campaign: str, link_key: str | None = None) -> MailLinks:
        """The links of one mail to one contact in one campaign (`link_key`: the contact's)."""
        return MailLinks(self, contact_id, campaign, link_key)

    def click_url(
        self, contact_id: str, campaign: str, url: str, tag: str, link_key: str | None = None
    ) -> str:
        return self.for_mail(contact_id, campaign, link_key).click_url(url, tag)

    def open_url(self, contact_id: str, campaign: str, link_key: str | None = None) -> str:
        return self.for_mail(contact_id, campaign, link_key).open_url()

    def unsubscribe_url(self, contact_id: str, campaign: str, link_key: str | None = None) -> str:
        return self.for_mail(contact_id, campaign, link_key).unsubscribe_url()

    def read_click(self, token: str) -> ClickToken | None:
        """The click a token records, or None when it is forged, altered or not a click."""
        data = self._load("c", token)
        if not _strings(data, 4, 5):
            return None
        return ClickToken(*data)

    def read_survey(self, token: str) -> SurveyToken | None:
        """The answer a survey token records, or None when it is forged, altered or not one."""
        data = self._load("s", token)
        if not _strings(data, 5, 6) or not (data[3].isascii() and data[3].isdigit()):
            return None
        contact_id, campaign, question, score, day, *key = data
        return SurveyToken(contact_id, campaign, question, int(score), day, *key)

    def read_link(self, kind: str, token: str) -> LinkToken | None:
        """Whose open (`o`) or unsubscribe (`u`) token this is, or None."""
        data = self._load(kind, token)
        if not _strings(data, 2, 3):
            return None
        return LinkToken(*data)

    def read_contact(self, kind: str, token: str) -> tuple[str, str] | None:
        """(contact id, campaign) of an open (`o`) or unsubscribe (`u`) token, or None."""
        link = self.read_link(kind, token)
        return None if link is None else (link.contact_id, link.campaign)

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
        if not hmac.compare_digest(given, self._digest(kind, payload)) and not any(
            hmac.compare_digest(given, _digest(hashes[kind], payload))
            for hashes in self._old_hashes
        ):
            return None
        compressed = payload.startswith(b".")  # itsdangerous zlib-compresses when it helps
        body = payload[1:] if compressed else payload
        try:
            data = urlsafe_b64decode(body + b"=" * (-len(body) % 4))
            return json.loads(zlib.decompress(data) if compressed else data)
        except (ValueError, zlib.error):
            return None


def _strings(data: Any, *counts: int) -> bool:
    return isinstance(data, list) and len(data) in counts and all(isinstance(v, str) for v in data)


class MailLinks:
    """The signed links of one mail: contact, campaign and link key JSON-encoded once for all."""

    __slots__ = ("_head", "_signer", "_tail")

    def __init__(
        self, signer: LinkSigner, contact_id: str, campaign: str, link_key: str | None = None
    ) -> None:
        self._signer = signer
        self._head = f"[{_json_string(contact_id)},{_json_string(campaign)}"
        self._tail = "]" if link_key is None else f",{_json_string(link_key)}]"

    def click_url(self, url: str, tag: str) -> str:
        """The tracked link to `url`: the token of [contact, campaign, tag, url(, link key)]."""
        text = f"{self._head},{_json_string(tag)},{_json_string(url)}{self._tail}"
        return self._signer._prefixes["c"] + self._signer._token("c", text)

    def survey_url(self, question: str, score: int, day: str) -> str:
        """The answer link: the token of [contact, campaign, question, score, day(, link key)]."""
        text = (
            f"{self._head},{_json_string(question)},{_json_string(str(score))},"
            f"{_json_string(day)}{self._tail}"
        )
        return self._signer._prefixes["s"] + self._signer._token("s", text)

    def open_url(self) -> str:
        """The open pixel's address: the token of [contact, campaign(, link key)]."""
        return self._signer._prefixes["o"] + self._signer._token("o", self._head + self._tail)

    def unsubscribe_url(self) -> str:
        """The one-click unsubscribe link: the token of [contact, campaign(, link key)]."""
        return self._signer._prefixes["u"] + self._signer._token("u", self._head + self._tail)


def _json_list(data: list[str]) -> str:
    # json's C string encoder, as `dumps` uses it: a new JSONEncoder per call costs as much
    # as the HMAC.
    return "[" + ",".join([_json_string(value) for value in data]) + "]"


def _kind_hashes(secret: str) -> dict[str, tuple[Any, Any]]:
    """Per kind of link, the HMAC's hashes keyed with itsdangerous' key derived for it."""
    return {
        kind: _keyed_sha1(URLSafeSerializer(secret, salt=salt).make_signer().derive_key())
        for kind, salt in SALTS.items()
    }


def _digest(hashes: tuple[Any, Any], payload: bytes) -> bytes:
    inner_start, outer_start = hashes
    inner = inner_start.copy()
    inner.update(payload)
    outer = outer_start.copy()
    outer.update(inner.digest())
    digest: bytes = outer.digest()
    return digest


def _keyed_sha1(key: bytes) -> tuple[Any, Any]:
    """HMAC-SHA1's inner and outer hashes with `key` absorbed, to copy for each message."""
    size = hashlib.sha1().block_size
    if len(key) > size:  # not so for itsdangerous' derived keys (20 bytes), but HMAC says so
        key = hashlib.sha1(key).digest()
    block = key.ljust(size, b"\0")
    inner = hashlib.sha1(bytes(byte ^ 0x36 for byte in block))
    outer = hashlib.sha1(bytes(byte ^ 0x5C for byte in block))
    return inner, outer
