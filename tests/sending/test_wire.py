"""What goes over the wire is valid SMTP: CRLF line ends, lines under the limit."""

from __future__ import annotations

from datetime import date
from email import message_from_bytes

from tests.sending.conftest import SmtpServer
from trouw.sending import SmtpTransport
from trouw.sending.ledger import SENT, Send
from trouw.sending.transports import Outgoing
from trouw.templates.mime import MimeMail, compose


def _deliver(smtp_server: SmtpServer, message: MimeMail) -> None:
    send = Send("c1", "campaign", "main", "campaign:2027", date(2027, 3, 1), "t", "email")
    transport = SmtpTransport(smtp_server.url, backoff=())
    try:
        outcome = transport.deliver(
            Outgoing(send, message, "shop@x.example", "anna@x.example", "c1-campaign")
        )
    finally:
        transport.close()
    assert outcome.status == SENT, outcome.error


def test_a_real_size_mail_is_accepted_by_a_strict_server(smtp_server: SmtpServer) -> None:
    """aiosmtpd refuses lines over 1,000 bytes: a mail with bare LF line ends is one line."""
    message = compose(
        [("From", "Shop <shop@x.example>"), ("To", "anna@x.example"), ("Subject", "A long mail")],
        "\n".join(f"line {n}: " + "tekst " * 10 for n in range(200)),
        "<p>" + "<br>\n".join("html " * 300 for _ in range(20)) + "</p>",
    )
    assert len(message.as_bytes()) > 10_000
    _deliver(smtp_server, message)
    [received] = smtp_server.handler.received
    assert message_from_bytes(received.content)["Subject"] == "A long mail"


def test_lines_that_start_with_a_dot_arrive_as_they_were(smtp_server: SmtpServer) -> None:
    """DATA ends at a line with a lone dot: each leading dot goes doubled and comes back single."""
    text = ".\n..\n.hidden\nmiddle . dot\n. \n...end"
    message = compose(
        [("From", "Shop <shop@x.example>"), ("To", "anna@x.example"), ("Subject", "Dots")],
        text,
        "<p>\n.<br>\n..</p>",
    )
    _deliver(smtp_server, message)
    [received] = smtp_server.handler.received
    assert received.content == message.as_bytes()
    assert (received.mail_from, received.rcpt_tos) == ("shop@x.example", ["anna@x.example"])
