"""Sending: the ledger, the transports (SMTP, outbox and letters) and the daily send.

Data flows one way: the plan says what is due, `run.send_day` checks it
again against the ledger, renders, reserves, delivers and confirms.
"""

from trouw.sending.run import SendSummary, send_day
from trouw.sending.transports import OutboxTransport, SmtpTransport, TransportDown

__all__ = ["OutboxTransport", "SendSummary", "SmtpTransport", "TransportDown", "send_day"]
