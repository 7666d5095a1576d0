"""Sending: the ledger, the transports (SMTP, outbox and letters) and the daily send.

Data flows one way: the plan says what is due, `run.send_day` works what is
owed (owed.py), checks it again (checks.py) against the ledger (ledger.py),
reserves, renders, delivers (courier.py, transports.py) and settles it.
"""

from trouw.sending.run import send_day
from trouw.sending.summary import SendSummary
from trouw.sending.transports import OutboxTransport, SmtpTransport, TransportDown

__all__ = ["OutboxTransport", "SendSummary", "SmtpTransport", "TransportDown", "send_day"]
