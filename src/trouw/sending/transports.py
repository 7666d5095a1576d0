"""Where mails go: an SMTP server, or an outbox folder (.eml files and printable letters).

A transport delivers one prepared mail and says how it ended. It never
touches the ledger: run.py reserves before and confirms after, and the
`Hooks` given to `deliver_batch` mark each mail `sending` just before it
leaves. The outcome tells the ledger what is known: `sent`, `failed` (a
final 5xx; a hard bounce when the server refused the recipient), `deferred`
(a 4xx: tried again later, never waited for here, so one greylisting domain
holds up nobody else), `unknown` (the connection was lost during DATA: the
server may have the mail), or `released` (certainly not handed over: the
run was stopping, or the row was no longer the run's).
"""

from __future__ import annotations

import contextlib
import queue
import smtplib
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.utils import parseaddr
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

from trouw.errors import UserError, WorkFailed
from trouw.sending.ledger import DEFERRED, FAILED, SENT, UNKNOWN, Send
from trouw.sending.letterdays import DayBundle, finish_days, pdf_merger, write_atomically
from trouw.sending.letters import pdf_writer
from trouw.templates.mime import MimeMail

RELEASED = "released"
# Seconds to wait before reconnecting when a connection drops before DATA.
BACKOFF = (0.2, 0.5, 1.0)
# Seconds to wait for a command's reply, and for the reply to the end of DATA: RFC 5321
# 4.5.3.2 asks clients to wait 5 minutes for MAIL and RCPT and 10 minutes after the data
# (the server may scan the mail first). A server that is gone is found by the socket
# closing, usually long before.
COMMAND_TIMEOUT = 300.0
DATA_TIMEOUT = 600.0
# SMTP connections a worker keeps busy at once (`send --connections`). Each mail waits for
# the server three times; while one connection waits, the others' mails go out, and the
# marks of the connections waiting at a moment share one commit. With 8 rather than 4, the
# busiest day of 1,000,000 contacts (175,684 mails, 2 workers, a copy of scripts/bench_pg.py's
# database) took 195 s instead of 222 s, with less CPU in trouw (200 against 215 s),
# PostgreSQL (76 against 88 s) and the SMTP server (91 against 101 s); 16 took 190 s. In
# bench_pg's own runs the gain was smaller: its busiest day took 191-201 s against 208 s.
# A killed run leaves at most one mail in doubt (`unknown`) per connection. listmonk's
# sample configuration has 10 per SMTP server, Postfix 20 per destination.
CONNECTIONS = 8


class TransportDown(WorkFailed):
    """The transport cannot deliver at all (SMTP server unreachable, login refused)."""


@dataclass
class Outgoing:
    """One prepared mail: the ledger row, the message, and for `post` the letter."""

    send: Send
    message: MimeMail  # its bytes have CRLF line ends, as SMTP wants them
    sender: str  # envelope sender address
    recipient: str | None  # envelope recipient (email channel)
    name: str  # file name stem, unique per ledger row
    letter: str | None = None  # print-ready HTML (post channel)
    attempts: int = 0  # tries before this one (a deferred mail's)


@dataclass(frozen=True)
class Outcome:
    status: str  # sent | failed | deferred | unknown | released
    error: str | None = None
    hard_bounce: bool = False


class Hooks(Protocol):
    """What the run does around each mail, in the thread that delivers it."""

    def leaving(self, item: Outgoing) -> bool:
        """Called just before the mail leaves; False: do not send it (no longer ours)."""
        ...

    def landed(self, item: Outgoing, outcome: Outcome) -> None:
        """Called with the mail's outcome, before the thread takes its next mail."""
        ...


class Transport(Protocol):
    def refuses(self, channel: str) -> str | None:
        """Why this transport cannot deliver to `channel`, or None if it can."""
        ...

    def deliver(self, item: Outgoing) -> Outcome: ...

    def close(self) -> None: ...


_write_atomically = write_atomically


class LetterBox:
    """Letters for `post` contacts in a folder: print-ready HTML as they go; when the run
    ends, the PDFs (with the `pdf` extra) and each day's letters.pdf and addresses.csv
    (letterdays.py). Making PDFs is slow, so it never holds up the mail of the run."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.finished: list[DayBundle] = []
        self._closed = False

    def refuses(self, channel: str) -> str | None:
        return None if channel == "post" else f"channel {channel}: a letter box takes letters"

    def deliver(self, item: Outgoing) -> Outcome:
        assert item.letter is not None
        _write_atomically(self.folder / f"{item.name}.html", item.letter.encode("utf-8"))
        return Outcome(SENT)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.finished = finish_days(self.folder, pdf=pdf_writer(), merge=pdf_merger())


class OutboxTransport:
    """A complete .eml per mail in the folder; letters for `post` contacts in letters/
    (HTML, and PDF with the `pdf` extra)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.letters = LetterBox(folder / "letters")

    def refuses(self, channel: str) -> str | None:
        return None

    def deliver(self, item: Outgoing) -> Outcome:
        if item.send.channel == "post":
            return self.letters.deliver(item)
        data = item.message.as_bytes()
        if item.sender and item.sender != parseaddr(item.message.get("From") or "")[1]:
            # A return path of its own (VERP): whatever relays the file must use it as MAIL FROM.
            data = f"Return-Path: <{item.sender}>\r\n".encode("ascii") + data
        _write_atomically(self.folder / f"{item.name}.eml", data)
        return Outcome(SENT)

    def close(self) -> None:
        self.letters.close()


class Routed:
    """Mail through one transport (SMTP), letters into a letter box: one run for both."""

    def __init__(self, mail: Transport, letters: LetterBox) -> None:
        self.mail = mail
        self.letters = letters

    def _for(self, channel: str) -> Transport:
        return self.letters if channel == "post" else self.mail

    def refuses(self, channel: str) -> str | None:
        return self._for(channel).refuses(channel)

    def deliver(self, item: Outgoing) -> Outcome:
        return self._for(item.send.channel).deliver(item)

    def close(self) -> None:
        self.mail.close()
        self.letters.close()


@dataclass(frozen=True)
class SmtpAddress:
    """An smtp:// or smtps:// URL, parsed: host, port, TLS from the start, login."""

    host: str
    port: int
    tls: bool
    user: str | None
    password: str | None

    @classmethod
    def parse(cls, url: str) -> SmtpAddress:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
            raise UserError(
                "the SMTP URL must look like smtp://user:password@host:587 or smtps://host:465",
                key="--smtp",
                fix="give the scheme (smtp or smtps), the host and, if needed, user and password",
            )
        try:
            port = parts.port
        except ValueError:
            raise UserError(f"'{parts.netloc}' has a bad port", key="--smtp") from None
        tls = parts.scheme == "smtps"
        return cls(
            host=parts.hostname,
            port=port or (465 if tls else 25),
            tls=tls,
            user=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )


class Pace:
    """At most `rate` mails a second: each mail waits for its slot, no bursts after a pause.

    Slots are spaced 1/rate apart from the previous one (or from now, after an idle
    spell), so a provider's per-second limit holds over any window, not just on average.
    """

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate
        self._next = 0.0
        self._lock = threading.Lock()  # the connections of a pool share one pace

    def wait(self) -> None:
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next)
            self._next = slot + self.interval
        if slot > now:
            time.sleep(slot - now)


class _Refused(Exception):
    def __init__(self, code: int, reply: bytes | str, command: str) -> None:
        text = reply.decode(errors="replace") if isinstance(reply, bytes) else reply
        self.code = code
        self.command = command
        super().__init__(f"{command}: {code} {text}".strip())


def dot_stuffed(data: bytes) -> bytes:
    """A message with CRLF line ends as DATA sends it (RFC 5321 4.5.2): a line that
    starts with a dot gets a second one, and a line with a lone dot ends it."""
    stuffed = data.replace(b"\r\n.", b"\r\n..")
    if stuffed.startswith(b"."):
        stuffed = b"." + stuffed
    if not stuffed.endswith(b"\r\n"):
        stuffed += b"\r\n"
    return stuffed + b".\r\n"


class SmtpTransport:
    """One reused SMTP connection: STARTTLS when offered, login when the URL has a user.

    A 4xx answer defers the mail (the ledger retries it later); a 5xx is
    final (a 5xx to the recipient is a hard bounce). A connection lost before
    DATA is reopened and the mail tried again; lost during DATA, the mail's
    fate is unknown.
    """

    def __init__(
        self,
        url: str,
        *,
        backoff: Sequence[float] = BACKOFF,
        timeout: float = COMMAND_TIMEOUT,
        data_timeout: float = DATA_TIMEOUT,
        rate: float | None = None,
        pace: Pace | None = None,
    ) -> None:
        self.address = SmtpAddress.parse(url)
        self.backoff = tuple(backoff)
        self.timeout = timeout
        self.data_timeout = data_timeout
        self._smtp: smtplib.SMTP | None = None
        self._pace = pace or (Pace(rate) if rate else None)

    def refuses(self, channel: str) -> str | None:
        if channel == "post":
            return "channel post: give --letters DIR (or [letters] dir) for the letters"
        return None

    def _connect(self) -> smtplib.SMTP:
        a = self.address
        context = ssl.create_default_context()
        try:
            if a.tls:
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    a.host, a.port, timeout=self.timeout, context=context
                )
            else:
                smtp = smtplib.SMTP(a.host, a.port, timeout=self.timeout)
                smtp.ehlo()
                if smtp.has_extn("starttls"):
                    smtp.starttls(context=context)
                    smtp.ehlo()
            if a.user:
                smtp.login(a.user, a.password or "")
        except (OSError, smtplib.SMTPException) as exc:
            raise TransportDown(f"cannot use the SMTP server {a.host}:{a.port}: {exc}") from exc
        return smtp

    def _drop(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.close()
            finally:
                self._smtp = None

    def deliver(self, item: Outgoing) -> Outcome:
        assert item.recipient is not None
        data = item.message.as_bytes()
        retries = 0
        if self._pace is not None:
            self._pace.wait()
        while True:
            if self._smtp is None:
                self._smtp = self._connect()
            smtp = self._smtp
            in_data = False
            try:
                # The commands are written here, not by smtp.mail/rcpt/data: those parse
                # both addresses and scan the message with a regex for dot-stuffing (about
                # 0.35 ms a mail), but our addresses are checked on import and our lines
                # already end in CRLF.
                code, reply = smtp.docmd("MAIL", f"FROM:<{item.sender}>")
                if code != 250:
                    raise _Refused(code, reply, "MAIL FROM")
                code, reply = smtp.docmd("RCPT", f"TO:<{item.recipient}>")
                if code not in (250, 251):
                    raise _Refused(code, reply, "RCPT TO")
                code, reply = smtp.docmd("DATA")
                if code != 354:  # DATA itself refused: nothing was sent
                    raise _Refused(code, reply, "DATA")
                in_data = True
                smtp.send(dot_stuffed(data))
                if smtp.sock is not None:
                    smtp.sock.settimeout(self.data_timeout)
                try:
                    code, reply = smtp.getreply()
                finally:
                    if smtp.sock is not None:
                        smtp.sock.settimeout(self.timeout)
                if code != 250:
                    raise _Refused(code, reply, "DATA")
                return Outcome(SENT)
            except _Refused as refused:
                self._reset()
                if 400 <= refused.code < 500:
                    return Outcome(DEFERRED, str(refused))
                hard = refused.command == "RCPT TO" and 550 <= refused.code <= 553
                return Outcome(FAILED, str(refused), hard_bounce=hard)
            except (smtplib.SMTPServerDisconnected, OSError) as exc:
                self._drop()
                if in_data:
                    return Outcome(UNKNOWN, f"connection lost during DATA: {exc}")
                if retries < len(self.backoff):
                    time.sleep(self.backoff[retries])
                    retries += 1
                    continue
                raise TransportDown(f"the SMTP connection keeps dropping: {exc}") from exc

    def _reset(self) -> None:
        if self._smtp is None:
            return
        try:
            self._smtp.rset()
        except (smtplib.SMTPException, OSError):
            self._drop()

    def close(self) -> None:
        if self._smtp is not None:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                self._smtp.quit()
            self._drop()


class SmtpPool:
    """Several SMTP connections used at once: a batch of mails goes out over all of them.

    Each mail waits for the server's answers three times (MAIL, RCPT, DATA);
    one connection spends most of its time waiting, so a worker keeps
    `connections` of them busy from as many threads (the waits release the
    GIL). Every connection follows the rules of SmtpTransport; `rate` is
    shared by all of them.
    """

    def __init__(
        self,
        url: str,
        *,
        connections: int = CONNECTIONS,
        rate: float | None = None,
        backoff: Sequence[float] = BACKOFF,
        timeout: float = COMMAND_TIMEOUT,
        data_timeout: float = DATA_TIMEOUT,
    ) -> None:
        pace = Pace(rate) if rate else None
        self._all = [
            SmtpTransport(
                url, backoff=backoff, timeout=timeout, data_timeout=data_timeout, pace=pace
            )
            for _ in range(connections)
        ]
        self._free: queue.SimpleQueue[SmtpTransport] = queue.SimpleQueue()
        for transport in self._all:
            self._free.put(transport)
        self._threads = ThreadPoolExecutor(connections, thread_name_prefix="trouw-smtp")

    def refuses(self, channel: str) -> str | None:
        return self._all[0].refuses(channel)

    def deliver(self, item: Outgoing) -> Outcome:
        transport = self._free.get()
        try:
            return transport.deliver(item)
        finally:
            self._free.put(transport)

    def deliver_batch(
        self, items: Sequence[Outgoing], hooks: Hooks, stopping: Callable[[], bool]
    ) -> list[Outcome | TransportDown]:
        """The items over all the connections at once. Once one of them finds the server
        gone (TransportDown), the mails not yet started are not tried: each gets that
        error (certainly not handed over), as the one-connection path stops at the first."""
        down: list[TransportDown] = []

        def one(item: Outgoing) -> Outcome | TransportDown:
            if down:
                return down[0]
            result = _deliver_one(self, item, hooks, stopping)
            if isinstance(result, TransportDown):
                down.append(result)
            return result

        futures = [self._threads.submit(one, item) for item in items]
        return [future.result() for future in futures]

    def close(self) -> None:
        self._threads.shutdown()
        for transport in self._all:
            transport.close()


NOT_OURS = Outcome(RELEASED, "no longer this run's")
STOPPED = Outcome(RELEASED, "not sent: the run was stopped")


def _deliver_one(
    transport: Transport, item: Outgoing, hooks: Hooks, stopping: Callable[[], bool]
) -> Outcome | TransportDown:
    if stopping():
        return STOPPED
    if not hooks.leaving(item):
        return NOT_OURS
    try:
        outcome = transport.deliver(item)
    except TransportDown as down:  # not handed over: certainly not sent
        outcome = Outcome(RELEASED, f"not sent: {down}")
        hooks.landed(item, outcome)
        return down
    hooks.landed(item, outcome)
    return outcome


def deliver_batch(
    transport: Transport,
    items: Sequence[Outgoing],
    hooks: Hooks,
    stopping: Callable[[], bool] = lambda: False,
) -> list[Outcome | TransportDown]:
    """Each item's outcome, or the TransportDown that kept it from being handed over.

    A pool sends the batch over all its connections at once; any other
    transport one by one, stopping at the first TransportDown (the rest are
    not tried). Once `stopping()` says so, the mails not yet started are not
    sent (`released`); those on the wire finish.
    """
    if isinstance(transport, Routed):  # letters here, mails as their transport sends them
        mails = [i for i in items if i.send.channel != "post"]
        sent = iter(deliver_batch(transport.mail, mails, hooks, stopping))
        letters = [i for i in items if i.send.channel == "post"]
        written = iter(deliver_batch(transport.letters, letters, hooks, stopping))
        return [next(written if i.send.channel == "post" else sent) for i in items]
    if isinstance(transport, SmtpPool):
        return transport.deliver_batch(items, hooks, stopping)
    results: list[Outcome | TransportDown] = []
    for item in items:
        result = _deliver_one(transport, item, hooks, stopping)
        results.append(result)
        if isinstance(result, TransportDown):
            results.extend([result] * (len(items) - len(results)))
            break
    return results


__all__ = [
    "CONNECTIONS",
    "NOT_OURS",
    "RELEASED",
    "STOPPED",
    "Hooks",
    "LetterBox",
    "OutboxTransport",
    "Outcome",
    "Outgoing",
    "Pace",
    "Routed",
    "SmtpAddress",
    "SmtpPool",
    "SmtpTransport",
    "Transport",
    "TransportDown",
    "deliver_batch",
]
