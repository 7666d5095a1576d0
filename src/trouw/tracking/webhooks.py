"""Bounce and complaint webhooks of mail providers, on `trouw serve`.

    POST /hooks/ses        Amazon SES feedback through an SNS topic (HTTPS subscription)
    POST /hooks/postmark   Postmark bounce and spam-complaint webhooks (Basic auth)
    POST /hooks/sendgrid   SendGrid's signed Event Webhook
    POST /hooks/mailgun    Mailgun webhooks (JSON, signed)

Only a provider configured in `[webhooks]` of trouw.toml has its endpoint (the
others answer 404); its secret comes from the environment variable named
there, read when the server starts. A request whose signature or credentials
do not check out answers 403 and records nothing; a body that is not what the
provider sends answers 400. What a valid one reports is recorded by
`feedback.record_feedback` in one transaction: the address suppressed on a
hard bounce or complaint, a `bounce`/`complaint` event for its contacts. An
address no contact has is suppressed and logged, and answered 200 as any
other: the provider must not retry it. Events the endpoint does not act on
(deliveries, opens, soft states it ignores) are accepted and skipped.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, abort, request
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from trouw.errors import UserError
from trouw.project import Project, Webhooks
from trouw.signatures import (
    CertificateCache,
    Forged,
    MailgunVerifier,
    download,
    sendgrid_key,
    verify_basic,
    verify_sendgrid,
    verify_sns,
)
from trouw.store import atomic
from trouw.store.writelock import WriteLock
from trouw.tracking.feedback import BOUNCE, COMPLAINT, Feedback, record_feedback

log = logging.getLogger(__name__)

MAX_BODY = 5 * 1024 * 1024  # SendGrid posts batches; SNS messages are at most 256 KB
# Postmark bounce types after which the address is dead (the rest are soft).
POSTMARK_HARD = {"HardBounce", "BadEmailAddress", "ManuallyDeactivated", "DMARCPolicy"}


class Malformed(Exception):
    """The body is not what the provider sends: 400."""


def webhooks_blueprint(
    project: Project,
    engine: Engine,
    lock: AbstractContextManager[Any] | None = None,
    *,
    fetch: Callable[[str], bytes] | None = None,
) -> Blueprint:
    """The /hooks/ routes of the providers configured in `project`'s `[webhooks]`.

    `lock` is the app's SQLite write lock; `fetch` downloads SNS signing
    certificates and subscription URLs (the address pattern is checked first).
    """
    settings = project.settings.webhooks
    hooks = Blueprint("webhooks", __name__, url_prefix="/hooks")
    writing = lock if lock is not None else WriteLock(engine)

    def record(items: list[Feedback]) -> Response:
        try:
            with writing, atomic(engine) as connection:
                outcomes = [record_feedback(connection, item) for item in items]
        except SQLAlchemyError:
            log.exception("webhook: the database refused the feedback")
            abort(503)  # nothing recorded; the provider retries
        for item, outcome in zip(items, outcomes, strict=True):
            if not outcome.contacts:
                log.warning(
                    "webhook %s: no contact has %s; %s",
                    item.provider,
                    item.address,
                    "the address is suppressed" if item.suppresses else "nothing recorded",
                )
        body = {
            "feedback": len(items),
            "recorded": sum(o.recorded for o in outcomes),
            "unknown": sum(1 for o in outcomes if not o.contacts),
        }
        return Response(json.dumps(body) + "\n", mimetype="application/json")

    def checked(parse: Callable[[bytes], list[Feedback]]) -> Response:
        if (request.content_length or 0) > MAX_BODY:
            abort(413)
        body = request.get_data(cache=False)
        try:
            items = parse(body)
        except Forged as exc:
            log.warning("webhook %s refused: %s", request.path, exc)
            abort(403)
        except Malformed as exc:
            log.warning("webhook %s: bad body: %s", request.path, exc)
            abort(400)
        return record(items)

    if settings.ses_topic_arns:
        certificates = CertificateCache(settings.sns_cert_url_pattern, fetch)

        @hooks.post("/ses")
        def ses() -> Response:
            return checked(lambda body: _ses(body, settings, certificates, fetch or download))

    if settings.postmark_user and settings.postmark_password_env:
        user = settings.postmark_user
        password = _secret(project, "postmark_password_env", settings.postmark_password_env)

        @hooks.post("/postmark")
        def postmark() -> Response:
            if "Authorization" not in request.headers:
                answer = Response("credentials needed\n", status=401, mimetype="text/plain")
                answer.headers["WWW-Authenticate"] = 'Basic realm="trouw webhooks"'
                return answer

            def parse(body: bytes) -> list[Feedback]:
                verify_basic(request.headers.get("Authorization"), user, password)
                return list(_postmark(_json(body)))

            return checked(parse)

    if settings.sendgrid_public_key:
        key = sendgrid_key(settings.sendgrid_public_key)

        @hooks.post("/sendgrid")
        def sendgrid() -> Response:
            def parse(body: bytes) -> list[Feedback]:
                verify_sendgrid(
                    key,
                    request.headers.get("X-Twilio-Email-Event-Webhook-Signature"),
                    request.headers.get("X-Twilio-Email-Event-Webhook-Timestamp"),
                    body,
                )
                return list(_sendgrid(_json(body)))

            return checked(parse)

    if settings.mailgun_signing_key_env:
        mailgun_key = _secret(project, "mailgun_signing_key_env", settings.mailgun_signing_key_env)
        verifier = MailgunVerifier(mailgun_key)

        @hooks.post("/mailgun")
        def mailgun() -> Response:
            def parse(body: bytes) -> list[Feedback]:
                payload = _json(body)
                if not isinstance(payload, dict):
                    raise Malformed("expected a JSON object")
                verifier.verify(payload.get("signature"))
                return list(_mailgun(payload.get("event-data")))

            return checked(parse)

    return hooks


def _secret(project: Project, key: str, variable: str) -> str:
    value = os.environ.get(variable)
    if not value:
        raise UserError(
            f"the environment variable {variable} is not set",
            path=project.settings_path,
            key=f"webhooks.{key}",
            fix=f"set {variable} to the provider's webhook secret before starting the server",
        )
    return value


# ----------------------------------------------------------------------------- payloads


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Malformed(f"not JSON: {exc}") from exc


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Malformed(f"no {what}")
    return value.strip()


def _moment(value: Any) -> datetime | None:
    """An ISO 8601 time or a Unix timestamp as naive UTC; None if it cannot be read."""
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            moment = datetime.fromtimestamp(value, UTC)
        elif isinstance(value, str):
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        else:
            return None
    except (ValueError, OverflowError, OSError):
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.replace(tzinfo=None)


def _ses(
    body: bytes,
    settings: Webhooks,
    certificates: CertificateCache,
    fetch: Callable[[str], bytes],
) -> list[Feedback]:
    message = _json(body)
    if not isinstance(message, dict) or not isinstance(message.get("Type"), str):
        raise Malformed("expected an SNS message")
    if message.get("TopicArn") not in settings.ses_topic_arns:
        raise Forged(f"topic {message.get('TopicArn')!r} is not in ses_topic_arns")
    verify_sns(message, certificates)
    kind = message["Type"]
    if kind == "SubscriptionConfirmation":
        url = _text(message.get("SubscribeURL"), "SubscribeURL")
        cert = urlsplit(str(message.get("SigningCertURL")))
        same_host = urlsplit(url)[:2] == cert[:2]  # the host the certificate came from
        if settings.sns_confirm_subscriptions and same_host:
            fetch(url)
            log.warning("webhook ses: subscribed to %s", message["TopicArn"])
        else:
            log.warning(
                "webhook ses: to receive %s, open the SubscribeURL: %s", message["TopicArn"], url
            )
        return []
    if kind != "Notification":
        log.warning("webhook ses: %s for %s", kind, message["TopicArn"])
        return []
    notification = _json(_text(message.get("Message"), "Message").encode())
    if not isinstance(notification, dict):
        raise Malformed("the SNS Message is not an SES notification")
    return list(_ses_feedback(notification, str(message.get("MessageId"))))


def _ses_feedback(notification: dict[str, Any], event_id: str) -> Iterator[Feedback]:
    kind = notification.get("notificationType") or notification.get("eventType")
    mail = notification.get("mail") or {}
    headers = mail.get("commonHeaders") or {} if isinstance(mail, dict) else {}
    message_id = headers.get("messageId") if isinstance(headers, dict) else None
    if kind == "Bounce":
        bounce = notification.get("bounce")
        if not isinstance(bounce, dict):
            raise Malformed("a Bounce without its bounce object")
        hard = bounce.get("bounceType") == "Permanent"  # Transient, Undetermined: soft
        for recipient in _list(bounce.get("bouncedRecipients"), "bouncedRecipients"):
            yield Feedback(
                "ses",
                BOUNCE,
                _text(recipient.get("emailAddress"), "emailAddress"),
                hard=hard,
                event_id=event_id,
                message_id=message_id,
                at=_moment(bounce.get("timestamp")),
                detail=str(recipient.get("diagnosticCode") or bounce.get("bounceSubType") or ""),
            )
    elif kind == "Complaint":
        complaint = notification.get("complaint")
        if not isinstance(complaint, dict):
            raise Malformed("a Complaint without its complaint object")
        for recipient in _list(complaint.get("complainedRecipients"), "complainedRecipients"):
            yield Feedback(
                "ses",
                COMPLAINT,
                _text(recipient.get("emailAddress"), "emailAddress"),
                event_id=event_id,
                message_id=message_id,
                at=_moment(complaint.get("timestamp")),
                detail=str(complaint.get("complaintFeedbackType") or ""),
            )


def _list(value: Any, what: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise Malformed(f"{what} is not a list of objects")
    return value


def _postmark(payload: Any) -> Iterator[Feedback]:
    if not isinstance(payload, dict):
        raise Malformed("expected a JSON object")
    record_type = payload.get("RecordType")
    kind = payload.get("Type")
    if record_type == "SpamComplaint" or (record_type == "Bounce" and kind == "SpamComplaint"):
        feedback_kind, hard = COMPLAINT, True
    elif record_type == "Bounce":
        feedback_kind = BOUNCE
        hard = kind in POSTMARK_HARD or payload.get("Inactive") is True
    else:
        return  # deliveries, opens, clicks, subscription changes: not ours to act on
    yield Feedback(
        "postmark",
        feedback_kind,
        _text(payload.get("Email"), "Email"),
        hard=hard,
        event_id=str(payload["ID"]) if payload.get("ID") is not None else None,
        at=_moment(payload.get("BouncedAt")),
        detail=str(payload.get("Description") or payload.get("Details") or kind or ""),
    )


def _sendgrid(payload: Any) -> Iterator[Feedback]:
    for event in _list(payload, "the SendGrid body"):
        name = event.get("event")
        if name == "bounce":
            kind, hard = BOUNCE, event.get("type") != "blocked"  # blocked: a soft bounce
        elif name == "spamreport":
            kind, hard = COMPLAINT, True
        else:
            continue
        yield Feedback(
            "sendgrid",
            kind,
            _text(event.get("email"), "email"),
            hard=hard,
            event_id=str(event.get("sg_event_id") or "") or None,
            message_id=event.get("smtp-id") if isinstance(event.get("smtp-id"), str) else None,
            at=_moment(event.get("timestamp")),
            detail=str(event.get("reason") or event.get("status") or ""),
        )


def _mailgun(data: Any) -> Iterator[Feedback]:
    if not isinstance(data, dict):
        raise Malformed("no event-data object")
    name = data.get("event")
    if name == "failed":
        kind, hard = BOUNCE, data.get("severity") == "permanent"
    elif name == "complained":
        kind, hard = COMPLAINT, True
    else:
        return
    message = data.get("message") or {}
    headers = message.get("headers") or {} if isinstance(message, dict) else {}
    message_id = headers.get("message-id") if isinstance(headers, dict) else None
    status = data.get("delivery-status") or {}
    detail = (
        (status.get("description") or status.get("message")) if isinstance(status, dict) else ""
    )
    yield Feedback(
        "mailgun",
        kind,
        _text(data.get("recipient"), "recipient"),
        hard=hard,
        event_id=str(data.get("id") or "") or None,
        message_id=message_id if isinstance(message_id, str) else None,
        at=_moment(data.get("timestamp")),
        detail=str(detail or data.get("reason") or ""),
    )
