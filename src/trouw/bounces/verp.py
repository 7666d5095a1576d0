"""Signed VERP return paths: every mail's envelope sender names the mail, so its bounce does.

With `[sender] return_path = "bounce@shop.example"` each mail leaves with the
envelope sender (MAIL FROM, which the receiving server writes as Return-Path
and sends its bounce to) `bounce+TOKEN@shop.example`. TOKEN is 42 characters
of lower-case base32: the 16 bytes of the mail's Message-ID digest
(`sending.ledger.message_id`, derived from the ledger key) and 10 bytes of an
HMAC-SHA256 over them, keyed with the project's signing key under a salt of
its own. A bounce delivered to that address names its ledger row even when
it carries none of the original mail's headers; a forged or altered token
names nothing. The salt and the shape differ from every link token's, so a
bounce token cannot be used as a link, nor a link token here.
"""

from __future__ import annotations

import hmac
import re
from base64 import b32decode, b32encode
from collections.abc import Sequence
from hashlib import sha256

SALT = b"trouw.bounce\x1f"
DIGEST_BYTES = 16  # the Message-ID's digest: 32 hex digits
MAC_BYTES = 10
TOKEN_LENGTH = 42  # base32 of 26 bytes, without its padding
# An address's local part holds at most 64 characters (RFC 5321): `bounce` + `+` + TOKEN.
MAX_LOCAL_PART = 64 - 1 - TOKEN_LENGTH
_ADDRESS = re.compile(rf"[^\s<>@+]+\+([a-z2-7]{{{TOKEN_LENGTH}}})@[^\s<>@]+", re.IGNORECASE)
_DIGEST = re.compile(r"<([0-9a-f]{32})@")


def return_path(base: str, message_id: str, secret: str) -> str:
    """The envelope sender of the mail with `message_id`: `local+TOKEN@domain` of `base`."""
    found = _DIGEST.match(message_id)
    if found is None:
        raise ValueError(f"{message_id} is no Message-ID trouw made")
    digest = bytes.fromhex(found.group(1))
    token = _encode(digest + _mac(digest, secret))
    local, _, domain = base.rpartition("@")
    return f"{local}+{token}@{domain}"


def token_in(address: str) -> str | None:
    """The token of an address shaped `local+TOKEN@domain` (not yet checked), else None."""
    found = _ADDRESS.fullmatch(address.strip().strip("<>"))
    return found.group(1).lower() if found else None


def read_token(token: str, secrets: Sequence[str]) -> str | None:
    """The Message-ID digest (32 hex digits) a token signed with one of `secrets` names;
    None for a forged, altered or malformed one."""
    try:
        raw = b32decode(token.upper() + "=" * 6)
    except ValueError:
        return None
    # Only the one spelling: the last character's two spare bits must be zero.
    if len(raw) != DIGEST_BYTES + MAC_BYTES or _encode(raw) != token.lower():
        return None
    digest, mac = raw[:DIGEST_BYTES], raw[DIGEST_BYTES:]
    if not any(hmac.compare_digest(mac, _mac(digest, secret)) for secret in secrets):
        return None
    return digest.hex()


def _encode(raw: bytes) -> str:
    return b32encode(raw).decode("ascii").rstrip("=").lower()


def _mac(digest: bytes, secret: str) -> bytes:
    return hmac.new(secret.encode("utf-8"), SALT + digest, sha256).digest()[:MAC_BYTES]
