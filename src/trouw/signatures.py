"""How each mail provider signs its webhooks, checked as the provider documents it.

Pure functions over bytes and keys (no HTTP server, no database), used by
`trouw.tracking.webhooks` and by `trouw check` (a configured SendGrid key must
load). Every check returns normally or raises `Forged`.

- Amazon SNS (SES feedback): RSA over the canonical string of the message's
  fields, SHA1 (SignatureVersion 1) or SHA256 (2), with the certificate at
  SigningCertURL, which must match an allow-list pattern (Amazon's hosts).
- SendGrid: ECDSA P-256/SHA-256 over timestamp + body, with the public key
  of the account's signed Event Webhook.
- Mailgun: HMAC-SHA256 of timestamp + token with the webhook signing key.
- Postmark signs nothing: Basic auth credentials in the webhook URL.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import threading
import time
import urllib.request
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

# Fields of an SNS message that its signature covers, in order, by message type.
SNS_SIGNED = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type",
    ),
    "UnsubscribeConfirmation": (
        "Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type",
    ),
}  # fmt: skip
CERT_CACHE_SIZE = 16
CERT_TIMEOUT_SECONDS = 10
CERT_MAX_BYTES = 64 * 1024
# Mailgun: a signature older (or newer) than this is a replay; Mailgun signs each attempt.
MAILGUN_MAX_AGE_SECONDS = 15 * 60
MAILGUN_TOKENS_KEPT = 10_000


class Forged(Exception):
    """The request is not what the provider signed: answer 403, record nothing."""


class KeyProblem(ValueError):
    """A configured key cannot be used."""


# ----------------------------------------------------------------------------- SNS


class CertificateCache:
    """SNS signing certificates by URL: fetched once, only from addresses `pattern` allows.

    `fetch(url) -> bytes` does the download (a test replaces it or points the
    pattern at a loopback server). A certificate past its validity is fetched
    again and then refused.
    """

    def __init__(self, pattern: str, fetch: Callable[[str], bytes] | None = None) -> None:
        self._pattern = re.compile(pattern)
        self._fetch = fetch or download
        self._keys: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def public_key(self, url: str) -> Any:
        if not self._pattern.fullmatch(url):
            raise Forged(f"SigningCertURL {url!r} is not an address SNS signs from")
        with self._lock:
            found = self._keys.get(url)
        if found is not None and found[1] > datetime.now(UTC):
            return found[0]
        from cryptography import x509

        try:
            certificate = x509.load_pem_x509_certificate(self._fetch(url))
        except (OSError, ValueError) as exc:
            raise Forged(f"no signing certificate at {url}: {exc}") from exc
        now = datetime.now(UTC)
        if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
            raise Forged(f"the signing certificate at {url} is not valid now")
        key = certificate.public_key()
        with self._lock:
            self._keys[url] = (key, certificate.not_valid_after_utc)
            while len(self._keys) > CERT_CACHE_SIZE:
                self._keys.popitem(last=False)
        return key


def download(url: str) -> bytes:
    """A small file over HTTP(S): a certificate, or an SNS subscription's confirmation."""
    with urllib.request.urlopen(url, timeout=CERT_TIMEOUT_SECONDS) as answer:
        data: bytes = answer.read(CERT_MAX_BYTES + 1)
    if len(data) > CERT_MAX_BYTES:
        raise ValueError("the certificate is too large")
    return data


def sns_canonical(message: dict[str, Any]) -> bytes:
    """The string SNS signs: each signed field present, as "Name\\nvalue\\n", in order."""
    fields = SNS_SIGNED.get(str(message.get("Type")))
    if fields is None:
        raise Forged(f"unknown SNS message type {message.get('Type')!r}")
    parts = []
    for name in fields:
        value = message.get(name)
        if value is None:
            if name == "Subject":
                continue  # optional, and then not signed
            raise Forged(f"the SNS message has no {name}")
        parts.append(f"{name}\n{value}\n")
    return "".join(parts).encode()


def verify_sns(message: dict[str, Any], certificates: CertificateCache) -> None:
    """Check an SNS message's signature with the certificate at its SigningCertURL."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    version = message.get("SignatureVersion")
    digest = {"1": hashes.SHA1(), "2": hashes.SHA256()}.get(str(version))
    if digest is None:
        raise Forged(f"unknown SignatureVersion {version!r}")
    signature = _base64(message.get("Signature"), "Signature")
    key = certificates.public_key(str(message.get("SigningCertURL", "")))
    if not isinstance(key, rsa.RSAPublicKey):
        raise Forged("the signing certificate has no RSA key")
    try:
        key.verify(signature, sns_canonical(message), padding.PKCS1v15(), digest)
    except InvalidSignature as exc:
        raise Forged("the SNS signature does not match") from exc


# ----------------------------------------------------------------------------- SendGrid


def sendgrid_key(text: str) -> Any:
    """The EC P-256 public key of a signed Event Webhook: base64 DER (as shown) or PEM."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import (
        load_der_public_key,
        load_pem_public_key,
    )

    try:
        if "-----BEGIN" in text:
            key = load_pem_public_key(text.encode())
        else:
            key = load_der_public_key(base64.b64decode("".join(text.split()), validate=True))
    except (ValueError, binascii.Error) as exc:
        raise KeyProblem("it is not a base64 or PEM public key") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise KeyProblem("it is not an ECDSA P-256 key")
    return key


def verify_sendgrid(key: Any, signature: str | None, timestamp: str | None, body: bytes) -> None:
    """Check the X-Twilio-Email-Event-Webhook-Signature over timestamp + the raw body."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    if not timestamp:
        raise Forged("no X-Twilio-Email-Event-Webhook-Timestamp")
    der = _base64(signature, "X-Twilio-Email-Event-Webhook-Signature")
    try:
        key.verify(der, timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise Forged("the SendGrid signature does not match") from exc


# ----------------------------------------------------------------------------- Mailgun


class MailgunVerifier:
    """Mailgun's `signature` object: fresh, unused, and the HMAC of its signing key."""

    def __init__(self, signing_key: str, clock: Callable[[], float] = time.time) -> None:
        self._key = signing_key.encode()
        self._clock = clock
        self._tokens: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def verify(self, signed: Any) -> None:
        if not isinstance(signed, dict):
            raise Forged("no signature object")
        timestamp, token, signature = (
            str(signed.get(k, "")) for k in ("timestamp", "token", "signature")
        )
        expected = hmac.new(self._key, (timestamp + token).encode(), hashlib.sha256).hexdigest()
        if not token or not hmac.compare_digest(expected, signature.lower()):
            raise Forged("the Mailgun signature does not match")
        try:
            age = abs(self._clock() - float(timestamp))
        except ValueError as exc:
            raise Forged("the Mailgun timestamp is not a number") from exc
        if age > MAILGUN_MAX_AGE_SECONDS:
            raise Forged("the Mailgun signature is too old (a replay?)")
        # Tokens seen by this process, for as long as their signatures are fresh: a
        # replay inside the window is refused here (events are idempotent anyway).
        with self._lock:
            if token in self._tokens:
                raise Forged("the Mailgun token was used before (a replay?)")
            self._tokens[token] = None
            while len(self._tokens) > MAILGUN_TOKENS_KEPT:
                self._tokens.popitem(last=False)


# ----------------------------------------------------------------------------- Basic auth


def verify_basic(header: str | None, user: str, password: str) -> None:
    """Check an `Authorization: Basic` header against the configured credentials."""
    scheme, _, value = (header or "").partition(" ")
    if scheme.lower() != "basic":
        raise Forged("no Basic credentials")
    try:
        given = base64.b64decode(value.strip(), validate=True)
    except binascii.Error as exc:
        raise Forged("unreadable Basic credentials") from exc
    expected = f"{user}:{password}".encode()
    if not hmac.compare_digest(hashlib.sha256(given).digest(), hashlib.sha256(expected).digest()):
        raise Forged("wrong credentials")


def _base64(value: Any, name: str) -> bytes:
    if not isinstance(value, str) or not value:
        raise Forged(f"no {name}")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error as exc:
        raise Forged(f"{name} is not base64") from exc
