"""A message from the bounce mailbox -> what it reports: findings, each about one recipient.

Three kinds of message are understood, all read with the standard library's
`email` parser:

- RFC 3464 delivery status notifications (multipart/report;
  report-type=delivery-status): per recipient, `Action: failed` with a
  `Status: 5.x.x` is a hard bounce; a failed 4.x.x or `Action: delayed` is a
  soft one; delivered, relayed and expanded are no bounce at all.
- RFC 5965 abuse reports (multipart/report; report-type=feedback-report):
  a complaint, unless the feedback type says the mail was not spam.
- The mails `List-Unsubscribe: <mailto:...?subject=unsubscribe>` makes
  recipients send (templates/mail.py): an unsubscribe by the sender.

The original mail's Message-ID (from the attached message or headers, or an
Original-Message-ID field) lets `apply` find the ledger row it was; so does
the signed token of a VERP return path (verp.py) the message was delivered
to, read from its To, Delivered-To, X-Original-To and Envelope-To headers.
Anything else (an out-of-office, a bounce in no standard form) is skipped.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import Message
from email.parser import HeaderParser
from email.utils import getaddresses, parseaddr, parsedate_to_datetime
from typing import Literal

from trouw.bounces.verp import token_in

Kind = Literal["hard", "soft", "complaint", "unsubscribe"]
# ARF feedback types that are no complaint about our mail (RFC 5965, 6591, 6650).
NOT_COMPLAINTS = frozenset({"not-spam", "auth-failure"})
_STATUS = re.compile(r"\b([245])\.\d{1,3}\.\d{1,3}\b")
_UNSUBSCRIBE = re.compile(r"^\s*(?:(?:re|aw|fw|fwd)\s*:\s*)*unsubscribe\b", re.IGNORECASE)
_MESSAGE_ID = re.compile(r"<[^<>\s]+>")
# Where a mailbox shows the address a message was delivered to (a VERP return path).
DELIVERY_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "To")


@dataclass(frozen=True)
class Finding:
    """One recipient's outcome as a report tells it."""

    kind: Kind
    address: str | None  # the recipient the report names (None: only the Message-ID tells)
    message_id: str | None  # the original mail's Message-ID, <...>
    status: str | None = None  # the DSN's status code (5.1.1), or the ARF feedback type
    reason: str | None = None  # the Diagnostic-Code, or the report's own words


@dataclass(frozen=True)
class Report:
    """What one message says: its key (to process it once) and its findings."""

    key: str  # sha256 of its Message-ID, or of its bytes when it has none
    message_id: str | None
    received_at: datetime  # naive UTC: its Date header, else now
    source: Literal["dsn", "arf", "mailto", "other"]
    findings: tuple[Finding, ...]
    # Tokens of the `local+TOKEN@` addresses it was delivered to (VERP), not yet verified.
    tokens: tuple[str, ...] = ()


def read_report(raw: bytes) -> Report:
    """Parse one message as it came from the mailbox."""
    message = message_from_bytes(raw, policy=policy.compat32)
    report = _read(raw, message)
    tokens = _delivery_tokens(message)
    return replace(report, tokens=tokens) if tokens and report.findings else report


def _read(raw: bytes, message: Message) -> Report:
    own_id = _message_id(message.get("Message-ID"))
    key = hashlib.sha256(own_id.encode() if own_id else raw).hexdigest()
    received = _date(message.get("Date"))
    if message.get_content_type() == "multipart/report":
        kind = (message.get_param("report-type") or "").lower()  # type: ignore[union-attr]
        if kind == "delivery-status":
            return Report(key, own_id, received, "dsn", tuple(_dsn(message)))
        if kind == "feedback-report":
            return Report(key, own_id, received, "arf", tuple(_arf(message)))
    if _UNSUBSCRIBE.match(_text(message.get("Subject"))) and not _automatic(message):
        sender = parseaddr(_text(message.get("From")))[1]
        if "@" in sender:
            # A mail program may answer the mail itself (In-Reply-To): then it is known.
            about = _message_id(message.get("In-Reply-To"))
            finding = Finding("unsubscribe", sender, about, reason="mailto unsubscribe")
            return Report(key, own_id, received, "mailto", (finding,))
    return Report(key, own_id, received, "other", ())


def _delivery_tokens(message: Message) -> tuple[str, ...]:
    """The VERP tokens of the addresses the message was delivered to."""
    headers = [_text(value) for name in DELIVERY_HEADERS for value in message.get_all(name) or []]
    found = (token_in(address) for _, address in getaddresses(headers))
    return tuple(dict.fromkeys(token for token in found if token))


def _dsn(message: Message) -> list[Finding]:
    status_part = _part(message, "message/delivery-status")
    if status_part is None:
        return []
    # The parser gives a delivery-status part as a list of header blocks: the first is about
    # the message, each other one about one recipient (RFC 3464 section 2.1).
    payload = status_part.get_payload()
    if not isinstance(payload, list) or not payload:
        return []
    blocks: list[Message] = [block for block in payload if isinstance(block, Message)]
    original = _original_headers(message)
    message_id = _message_id(blocks[0].get("Original-Message-ID")) or _message_id(
        original.get("Message-ID") if original is not None else None
    )
    findings = []
    for block in blocks[1:]:
        action = _text(block.get("Action")).strip().lower()
        found = _STATUS.search(_text(block.get("Status")))
        status = found.group(0) if found else None
        if action == "failed":
            kind: Kind = "soft" if status and status.startswith("4") else "hard"
        elif action == "delayed":
            kind = "soft"
        else:  # delivered, relayed, expanded: no bounce
            continue
        address = _typed_address(block.get("Final-Recipient")) or _typed_address(
            block.get("Original-Recipient")
        )
        reason = " ".join(_text(block.get("Diagnostic-Code")).split()) or None
        findings.append(Finding(kind, address, message_id, status, reason))
    return findings


def _arf(message: Message) -> list[Finding]:
    report = _part(message, "message/feedback-report")
    if report is None:
        return []
    fields = report.get_payload(0) if report.is_multipart() else None
    if not isinstance(fields, Message):
        fields = HeaderParser().parsestr(_text(report.get_payload()))
    feedback = _text(fields.get("Feedback-Type")).strip().lower() or "abuse"
    if feedback in NOT_COMPLAINTS:
        return []
    original = _original_headers(message)
    message_id = _message_id(fields.get("Original-Message-ID")) or _message_id(
        original.get("Message-ID") if original is not None else None
    )
    addresses = [a for _, a in getaddresses(fields.get_all("Original-Rcpt-To") or []) if a]
    if not addresses and original is not None:
        addresses = [a for _, a in getaddresses(original.get_all("To") or []) if a]
    reason = f"complaint ({feedback})"
    if not addresses:
        return [Finding("complaint", None, message_id, feedback, reason)]
    return [Finding("complaint", a, message_id, feedback, reason) for a in addresses]


def _part(message: Message, content_type: str) -> Message | None:
    for part in message.walk():
        if part.get_content_type() == content_type:
            return part
    return None


def _original_headers(message: Message) -> Message | None:
    """The headers of the mail a report is about: its attached message/rfc822 (also when only
    its headers are there, as RFC 5965 allows) or text/rfc822-headers part."""
    for part in message.walk():
        kind = part.get_content_type()
        if kind in ("message/rfc822", "message/rfc822-headers"):
            inner = part.get_payload(0)
            return inner if isinstance(inner, Message) else None
        if kind == "text/rfc822-headers":
            payload = part.get_payload(decode=True)
            text = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
            return HeaderParser().parsestr(text)
    return None


def _automatic(message: Message) -> bool:
    """An auto-reply (RFC 3834): no person asked for anything."""
    return _text(message.get("Auto-Submitted")).strip().lower() not in ("", "no")


def _typed_address(value: object) -> str | None:
    """The address of `rfc822; frank@hand.test` (a DSN's recipient fields)."""
    kind, _, address = _text(value).partition(";")
    address = address.strip().strip("<>").strip()
    if kind.strip().lower() != "rfc822" or "@" not in address:
        return None
    return address


def _message_id(value: object) -> str | None:
    """A Message-ID as <left@right>; also one written without its brackets (RFC 5965's own
    example does that)."""
    text = _text(value).strip()
    found = _MESSAGE_ID.search(text)
    if found:
        return found.group(0)
    bare = text.split()[0] if text else ""
    return f"<{bare}>" if "@" in bare and len(bare) < 298 else None


def _date(value: object) -> datetime:
    try:
        moment = parsedate_to_datetime(_text(value))
    except (TypeError, ValueError, IndexError):
        moment = datetime.now(UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).replace(tzinfo=None)


def _text(value: object) -> str:
    """A header as text; a header the parser could not decode is not trusted further."""
    return str(value) if value is not None else ""
