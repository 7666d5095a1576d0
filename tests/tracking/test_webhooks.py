"""Provider webhooks on `trouw serve` as a real process: SES via SNS, Postmark, SendGrid, Mailgun.

Each request is signed as the provider documents it, with keys made here: an
RSA certificate for SNS served from a loopback HTTP server (the allow-list
pattern points at it), an ECDSA P-256 key for SendGrid, an HMAC key for
Mailgun, Basic credentials for Postmark. The shop really sent its mails, so
a Message-ID from the ledger ties a bounce to the mail that bounced.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from sqlalchemy import select

from tests.conftest import SETTINGS, write_files
from tests.tracking.conftest import (
    Answer,
    Server,
    Shop,
    server_env,
    start_server,
    stop,
    wait_for_line,
)
from trouw.errors import ProjectError
from trouw.importing import email_hash
from trouw.problems import Problems
from trouw.project import load_project
from trouw.signatures import sns_canonical
from trouw.store import events, ledger, suppressions

pytestmark = pytest.mark.slow

TOPIC = "arn:aws:sns:eu-west-1:123456789012:ses-feedback"
POSTMARK_PASSWORD = "pm-secret-password"
MAILGUN_KEY = "key-mailgun-signing-0123456789"
BOUNCED_AT = "2027-04-06T14:00:00.000Z"  # after DAY's send, so the plan of the 7th sees it


# ----------------------------------------------------------------------------- signers


class SnsSigner:
    """An SNS look-alike: an RSA key and its certificate, served over loopback HTTP."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
        now = datetime.now(UTC)
        self.pem = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=30))
            .sign(self.key, hashes.SHA256())
            .public_bytes(serialization.Encoding.PEM)
        )
        pem = self.pem

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", str(len(pem)))
                self.end_headers()
                self.wfile.write(pem)

            def log_message(self, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.http.server_address[1]
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    @property
    def cert_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/SimpleNotificationService-test.pem"

    @property
    def pattern(self) -> str:
        return rf"http://127\.0\.0\.1:{self.port}/[A-Za-z-]+\.pem"

    def message(self, body: dict[str, Any], *, version: str = "1", **fields: str) -> str:
        message: dict[str, Any] = {
            "Type": "Notification",
            "MessageId": str(uuid.uuid4()),
            "TopicArn": TOPIC,
            "Message": json.dumps(body),
            "Timestamp": "2027-04-06T14:00:01.000Z",
            "SignatureVersion": version,
            "SigningCertURL": self.cert_url,
            **fields,
        }
        return json.dumps(self.sign(message))

    def sign(self, message: dict[str, Any]) -> dict[str, Any]:
        digest = hashes.SHA1() if message["SignatureVersion"] == "1" else hashes.SHA256()
        signature = self.key.sign(sns_canonical(message), padding.PKCS1v15(), digest)
        return {**message, "Signature": base64.b64encode(signature).decode()}

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


def ses_bounce(address: str, kind: str = "Permanent", message_id: str | None = None) -> dict:
    return {
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": kind,
            "bounceSubType": "General",
            "bouncedRecipients": [{"emailAddress": address, "diagnosticCode": "smtp; 550 5.1.1"}],
            "timestamp": BOUNCED_AT,
        },
        "mail": {"commonHeaders": {"messageId": message_id}} if message_id else {},
    }


def ses_complaint(address: str) -> dict:
    return {
        "notificationType": "Complaint",
        "complaint": {
            "complainedRecipients": [{"emailAddress": address}],
            "complaintFeedbackType": "abuse",
            "timestamp": BOUNCED_AT,
        },
        "mail": {},
    }


SENDGRID_KEY = ec.generate_private_key(ec.SECP256R1())
SENDGRID_PUBLIC = base64.b64encode(
    SENDGRID_KEY.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
).decode()


def sendgrid_headers(body: str, key: ec.EllipticCurvePrivateKey = SENDGRID_KEY) -> dict[str, str]:
    timestamp = str(int(time.time()))
    signature = key.sign(timestamp.encode() + body.encode(), ec.ECDSA(hashes.SHA256()))
    return {
        "Content-Type": "application/json",
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
    }


def mailgun_body(event: dict[str, Any], *, key: str = MAILGUN_KEY, age: float = 0) -> str:
    timestamp = str(int(time.time() - age))
    token = uuid.uuid4().hex
    signature = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    return json.dumps(
        {
            "signature": {"timestamp": timestamp, "token": token, "signature": signature},
            "event-data": event,
        }
    )


def basic(user: str, password: str) -> dict[str, str]:
    credentials = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {credentials}", "Content-Type": "application/json"}


# ----------------------------------------------------------------------------- fixtures


@dataclass
class Hooks:
    shop: Shop
    server: Server
    sns: SnsSigner

    def post(self, path: str, body: str, headers: dict[str, str] | None = None) -> Answer:
        return self.server.request("POST", path, body=body, headers=headers or {})

    def events(self, kind: str) -> list[dict[str, Any]]:
        query = select(events).where(events.c.type == kind).order_by(events.c.id)
        with self.shop.engine.connect() as connection:
            return [dict(row._mapping) for row in connection.execute(query)]

    def suppressed(self, address: str) -> bool:
        query = select(suppressions).where(suppressions.c.email_hash == email_hash(address))
        with self.shop.engine.connect() as connection:
            return connection.execute(query).first() is not None

    def message_id(self, contact_id: str) -> str:
        query = select(ledger.c.message_id).where(ledger.c.contact_id == contact_id)
        with self.shop.engine.connect() as connection:
            return str(connection.execute(query).scalar_one())

    def nothing_recorded(self) -> bool:
        with self.shop.engine.connect() as connection:
            found = connection.execute(select(suppressions)).first()
        return found is None and not self.events("bounce") and not self.events("complaint")


@pytest.fixture
def sns() -> Iterator[SnsSigner]:
    signer = SnsSigner()
    yield signer
    signer.close()


@pytest.fixture
def hooks(shop: Shop, sns: SnsSigner, tmp_path: Path) -> Iterator[Hooks]:
    """`trouw serve` on the shop with all four providers configured."""
    settings = shop.root / "trouw.toml"
    settings.write_text(
        settings.read_text()
        + "\n[webhooks]\n"
        + f'ses_topic_arns = ["{TOPIC}"]\n'
        + f"sns_cert_url_pattern = '{sns.pattern}'\n"
        + 'postmark_user = "postmark"\n'
        + 'postmark_password_env = "TEST_POSTMARK_PASSWORD"\n'
        + f'sendgrid_public_key = "{SENDGRID_PUBLIC}"\n'
        + 'mailgun_signing_key_env = "TEST_MAILGUN_KEY"\n'
    )
    log = tmp_path / "hooks.log"
    command = [sys.executable, "-m", "trouw", "--project", str(shop.root)]
    command += ["--db", shop.cli.db_url, "serve", "--host", "127.0.0.1", "--port", "0"]
    env = server_env(TEST_POSTMARK_PASSWORD=POSTMARK_PASSWORD, TEST_MAILGUN_KEY=MAILGUN_KEY)
    process = start_server(command, env, log)
    try:
        line = wait_for_line(process, log, "http://127.0.0.1:")
        port = int(line.split("http://127.0.0.1:")[1].split("/")[0])
        yield Hooks(shop, Server("127.0.0.1", port, log, process), sns)
    finally:
        stop(process)


def _stop_reason(shop: Shop, contact_id: str) -> str:
    result = shop.cli("plan", "2027", "--as-of", "2027-04-07")
    assert result.exit_code == 0, result.output
    result = shop.cli("plan", "explain", "--contact", contact_id)
    assert result.exit_code == 0, result.output
    return result.output


# ----------------------------------------------------------------------------- SES via SNS


def test_ses_hard_bounce_signed_by_sns_suppresses_and_records_it_once(hooks: Hooks) -> None:
    mail_id = hooks.message_id("c1")
    # The provider's recipient in other case: still Ann's address.
    body = hooks.sns.message(ses_bounce("ANN@X.EXAMPLE", message_id=mail_id.strip("<>")))
    answer = hooks.post("/hooks/ses", body, {"Content-Type": "text/plain"})
    assert answer.status == 200, answer.text
    assert json.loads(answer.text) == {"feedback": 1, "recorded": 1, "unknown": 0}
    again = hooks.post("/hooks/ses", body)  # SNS delivers at least once
    assert json.loads(again.text)["recorded"] == 0

    assert hooks.suppressed("ann@x.example")
    [bounce] = hooks.events("bounce")
    assert (bounce["contact_id"], bounce["tag"]) == ("c1", "hard")
    assert bounce["occurred_at"] == datetime(2027, 4, 6, 14, 0)
    assert bounce["properties"]["campaign"] == "spring"
    assert bounce["properties"]["provider"] == "ses"
    assert bounce["properties"]["detail"] == "smtp; 550 5.1.1"
    assert "address suppressed" in _stop_reason(hooks.shop, "c1")


def test_ses_complaint_and_soft_bounce_with_signature_version_2(hooks: Hooks) -> None:
    complaint = hooks.sns.message(ses_complaint("bob@x.example"), version="2")
    assert hooks.post("/hooks/ses", complaint).status == 200
    soft = hooks.sns.message(ses_bounce("cor@x.example", kind="Transient"), version="2")
    assert hooks.post("/hooks/ses", soft).status == 200

    assert [(e["contact_id"], e["tag"]) for e in hooks.events("complaint")] == [("c2", None)]
    assert [(e["contact_id"], e["tag"]) for e in hooks.events("bounce")] == [("c3", "soft")]
    assert hooks.suppressed("bob@x.example")
    assert not hooks.suppressed("cor@x.example")  # a soft bounce stops nothing
    assert "address suppressed" in _stop_reason(hooks.shop, "c2")


def test_forged_sns_messages_get_403_and_record_nothing(hooks: Hooks) -> None:
    sns = hooks.sns
    good = json.loads(sns.message(ses_bounce("ann@x.example")))
    altered = {**good, "Message": json.dumps(ses_bounce("bob@x.example"))}
    other_key = SnsSigner()
    try:
        foreign = json.loads(other_key.message(ses_bounce("ann@x.example")))
    finally:
        other_key.close()
    foreign["SigningCertURL"] = sns.cert_url  # signed by another key than the certificate's
    amazon = {**good, "SigningCertURL": "https://evil.example/sns.pem"}
    other_topic = sns.sign({**good, "TopicArn": TOPIC.replace("ses-feedback", "other")})
    for forged in (altered, foreign, amazon, other_topic, {**good, "SignatureVersion": "3"}):
        answer = hooks.post("/hooks/ses", json.dumps(forged))
        assert answer.status == 403, forged
    assert hooks.post("/hooks/ses", "{not json").status == 400
    assert hooks.post("/hooks/ses", json.dumps([1, 2])).status == 400
    broken = sns.message({"notificationType": "Bounce", "bounce": {"bouncedRecipients": 5}})
    assert hooks.post("/hooks/ses", broken).status == 400  # signed, but no SES notification
    assert hooks.nothing_recorded()


def test_an_sns_subscription_confirmation_is_logged_not_fetched(hooks: Hooks) -> None:
    url = f"{hooks.sns.cert_url[:-4]}?Action=ConfirmSubscription&Token=abc"
    confirm = hooks.sns.sign(
        {
            "Type": "SubscriptionConfirmation",
            "MessageId": str(uuid.uuid4()),
            "Token": "abc",
            "TopicArn": TOPIC,
            "Message": "You have chosen to subscribe to the topic.",
            "SubscribeURL": url,
            "Timestamp": "2027-04-06T14:00:01.000Z",
            "SignatureVersion": "1",
            "SigningCertURL": hooks.sns.cert_url,
        }
    )
    assert hooks.post("/hooks/ses", json.dumps(confirm)).status == 200
    deadline = time.monotonic() + 10
    while url not in hooks.server.log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert url in hooks.server.log.read_text()


def test_an_unknown_address_is_suppressed_and_answered_200(hooks: Hooks) -> None:
    answer = hooks.post("/hooks/ses", hooks.sns.message(ses_bounce("nobody@x.example")))
    assert answer.status == 200
    assert json.loads(answer.text) == {"feedback": 1, "recorded": 0, "unknown": 1}
    assert hooks.suppressed("nobody@x.example")
    assert "nobody@x.example" in hooks.server.log.read_text()


# ----------------------------------------------------------------------------- the others


def test_postmark_with_basic_auth(hooks: Hooks) -> None:
    bounce = {
        "RecordType": "Bounce",
        "ID": 4323372036854775807,
        "Type": "HardBounce",
        "Email": "ann@x.example",
        "BouncedAt": BOUNCED_AT,
        "Description": "The server was unable to deliver your message",
    }
    body = json.dumps(bounce)
    assert hooks.post("/hooks/postmark", body, basic("postmark", "wrong")).status == 403
    assert hooks.post("/hooks/postmark", body).status == 401
    assert hooks.nothing_recorded()
    assert hooks.post("/hooks/postmark", body, basic("postmark", POSTMARK_PASSWORD)).status == 200
    spam = json.dumps({"RecordType": "SpamComplaint", "ID": 7, "Email": "bob@x.example"})
    assert hooks.post("/hooks/postmark", spam, basic("postmark", POSTMARK_PASSWORD)).status == 200
    delivery = json.dumps({"RecordType": "Delivery", "Recipient": "cor@x.example"})
    answer = hooks.post("/hooks/postmark", delivery, basic("postmark", POSTMARK_PASSWORD))
    assert json.loads(answer.text)["feedback"] == 0
    assert [(e["contact_id"], e["tag"]) for e in hooks.events("bounce")] == [("c1", "hard")]
    assert [e["contact_id"] for e in hooks.events("complaint")] == ["c2"]
    assert hooks.suppressed("ann@x.example") and hooks.suppressed("bob@x.example")


def test_sendgrid_signed_event_webhook(hooks: Hooks) -> None:
    batch = json.dumps(
        [
            {"event": "delivered", "email": "cor@x.example", "sg_event_id": "d1"},
            {"event": "bounce", "type": "bounce", "email": "ann@x.example",
             "sg_event_id": "b1", "timestamp": 1807192800, "reason": "550 no such user"},
            {"event": "spamreport", "email": "bob@x.example", "sg_event_id": "s1"},
            {"event": "bounce", "type": "blocked", "email": "cor@x.example", "sg_event_id": "b2"},
        ]
    )  # fmt: skip
    forged = sendgrid_headers(batch, ec.generate_private_key(ec.SECP256R1()))
    assert hooks.post("/hooks/sendgrid", batch, forged).status == 403
    unsigned = {"Content-Type": "application/json"}
    assert hooks.post("/hooks/sendgrid", batch, unsigned).status == 403
    altered = sendgrid_headers(batch)
    assert hooks.post("/hooks/sendgrid", batch.replace("ann@", "cor@"), altered).status == 403
    assert hooks.nothing_recorded()

    answer = hooks.post("/hooks/sendgrid", batch, sendgrid_headers(batch))
    assert json.loads(answer.text) == {"feedback": 3, "recorded": 3, "unknown": 0}
    bounces = [(e["contact_id"], e["tag"]) for e in hooks.events("bounce")]
    assert bounces == [("c1", "hard"), ("c3", "soft")]
    assert [e["contact_id"] for e in hooks.events("complaint")] == ["c2"]
    assert hooks.suppressed("ann@x.example") and not hooks.suppressed("cor@x.example")
    garbage = "[{]"
    assert hooks.post("/hooks/sendgrid", garbage, sendgrid_headers(garbage)).status == 400


def test_mailgun_signed_webhook_refuses_replays(hooks: Hooks) -> None:
    failed = {
        "event": "failed",
        "severity": "permanent",
        "recipient": "ann@x.example",
        "id": "mg-event-1",
        "timestamp": 1807192800.5,
        "message": {"headers": {"message-id": hooks.message_id("c1").strip("<>")}},
        "delivery-status": {"description": "No such mailbox"},
    }
    assert hooks.post("/hooks/mailgun", mailgun_body(failed, key="not-the-key")).status == 403
    assert hooks.post("/hooks/mailgun", mailgun_body(failed, age=3600)).status == 403
    assert hooks.nothing_recorded()

    body = mailgun_body(failed)
    assert hooks.post("/hooks/mailgun", body).status == 200
    assert hooks.post("/hooks/mailgun", body).status == 403  # the same token again
    [bounce] = hooks.events("bounce")
    assert (bounce["contact_id"], bounce["tag"]) == ("c1", "hard")
    assert bounce["properties"]["ledger_id"] is not None
    complained = {"event": "complained", "recipient": "bob@x.example", "id": "mg-2"}
    assert hooks.post("/hooks/mailgun", mailgun_body(complained)).status == 200
    assert [e["contact_id"] for e in hooks.events("complaint")] == ["c2"]
    assert hooks.post("/hooks/mailgun", mailgun_body({"event": "failed"})).status == 400


def test_providers_not_configured_have_no_endpoint(server: Server) -> None:
    for provider in ("ses", "postmark", "sendgrid", "mailgun"):
        assert server.request("POST", f"/hooks/{provider}", body="{}").status == 404


# ----------------------------------------------------------------------------- settings


def test_webhook_settings_are_checked(tmp_path: Path) -> None:
    write_files(
        tmp_path,
        {
            "trouw.toml": SETTINGS
            + "\n[webhooks]\n"
            + 'ses_topic_arns = ["not-an-arn"]\n'
            + "sns_cert_url_pattern = '(unclosed'\n"
            + 'postmark_user = "postmark"\n'
            + 'mailgun_signing_key_env = "has spaces"\n'
            + 'sendgrid_public_key = "bm90IGEga2V5"\n'
            + "sns_confirm_subscriptions = 1\n"
            + 'secret = "in the file"\n'
        },
    )
    problems = Problems()
    load_project(tmp_path, problems)
    found = {error.key: str(error) for error in problems if isinstance(error, ProjectError)}
    assert set(found) == {
        "webhooks.ses_topic_arns",
        "webhooks.sns_cert_url_pattern",
        "webhooks.postmark_password_env",
        "webhooks.mailgun_signing_key_env",
        "webhooks.sendgrid_public_key",
        "webhooks.sns_confirm_subscriptions",
        "webhooks.secret",
    }
    assert re.search(r"trouw\.toml.*line \d+", found["webhooks.ses_topic_arns"])
