"""The bounce mailbox: IMAP, POP3, an mbox file or a maildir, read with the standard library.

Each reader yields (handle, raw message) and is told `done(handle)` after the
message's effects are committed; only then is the message put away:

- IMAP: flagged \\Seen and moved to `[bounces] folder` (created when missing);
- maildir: flagged seen (S) and moved to the Maildir++ sub-folder of that name;
- POP3: deleted (POP3 has no folders); the deletion takes effect at QUIT;
- mbox: left as it is (the file may be the system's spool).

Whatever happens to the message, the database remembers its key
(`processed_messages`), so a message is never acted on twice: not in an mbox,
and not when the process dies between the commit and the move.
"""

from __future__ import annotations

import imaplib
import mailbox
import poplib
import re
import socket
import ssl
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import unquote, urlsplit

from trouw.errors import UserError, WorkFailed

Kind = Literal["imap", "pop3", "mbox", "maildir"]
TIMEOUT = 60.0  # seconds a mail server may take to answer


class MailboxUnreachable(WorkFailed):
    """The mailbox cannot be opened, logged into or read (exit code 1)."""


class Reader(Protocol):
    def messages(self) -> Iterator[tuple[str, bytes]]: ...

    def done(self, handle: str) -> None: ...


@dataclass(frozen=True)
class Source:
    """Where the bounce mailbox is: a URL (imap, pop3) or a path (mbox, maildir)."""

    kind: Kind
    location: str

    def describe(self) -> str:
        """The location without its password, fit to print."""
        if self.kind in ("mbox", "maildir"):
            return self.location
        parts = urlsplit(self.location)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        user = f"{unquote(parts.username)}@" if parts.username else ""
        return f"{parts.scheme}://{user}{host}{port}{parts.path}"


@dataclass(frozen=True)
class _Server:
    secure: bool
    host: str
    port: int
    user: str
    password: str
    folder: str


_SCHEMES = {"imap": ("imap", "imaps", 143, 993), "pop3": ("pop3", "pop3s", 110, 995)}


def server_of(source: Source) -> _Server:
    """The parts of an imap(s):// or pop3(s):// URL; a bad URL is the user's to fix."""
    plain, secure, plain_port, secure_port = _SCHEMES[source.kind]
    example = f"{plain}s://user:password@mail.example.com" + ("/INBOX" if plain == "imap" else "")
    try:
        parts = urlsplit(source.location)
        port = parts.port
    except ValueError as exc:
        raise UserError(
            f"'{source.location}' is not a URL ({exc})", fix=f"write {example}"
        ) from exc
    if parts.scheme not in (plain, secure):
        raise UserError(
            f"'{source.describe()}' is not a {plain.upper()} URL",
            key=f"--{source.kind}",
            fix=f"write {example} ({secure} for TLS)",
        )
    if not parts.hostname or parts.username is None or parts.password is None:
        raise UserError(
            f"'{source.describe()}' names no host, user or password",
            key=f"--{source.kind}",
            fix=f"write {example} (%-escape special characters in the password)",
        )
    folder = unquote(parts.path.lstrip("/")) or "INBOX"
    if plain == "pop3" and parts.path.strip("/"):
        raise UserError(
            f"'{source.describe()}': POP3 has no folders",
            key="--pop3",
            fix="leave the path out: pop3s://user:password@mail.example.com",
        )
    if re.search(r'["\\\r\n]', folder):
        raise UserError(f"'{folder}' cannot name an IMAP folder", key="--imap")
    return _Server(
        secure=parts.scheme == secure,
        host=parts.hostname,
        port=port or (secure_port if parts.scheme == secure else plain_port),
        user=unquote(parts.username),
        password=unquote(parts.password),
        folder=folder,
    )


def open_mailbox(source: Source, folder: str) -> AbstractContextManager[Reader]:
    """The reader of `source`; processed messages are put in `folder` (IMAP, maildir)."""
    if source.kind == "imap":
        return _imap(server_of(source), folder, source)
    if source.kind == "pop3":
        return _pop3(server_of(source), source)
    if source.kind == "mbox":
        return _mbox(Path(source.location))
    return _maildir(Path(source.location), folder)


# ----------------------------------------------------------------------------- IMAP


class _Imap:
    def __init__(self, client: imaplib.IMAP4, folder: str) -> None:
        self.client = client
        self.folder = folder
        self.folder_made = False

    def messages(self) -> Iterator[tuple[str, bytes]]:
        found = _ok(self.client.uid("SEARCH", "UNDELETED"))
        for uid in b" ".join(item for item in found if isinstance(item, bytes)).split():
            data = _ok(self.client.uid("FETCH", uid.decode(), "(BODY.PEEK[])"))
            raw = next((part[1] for part in data if isinstance(part, tuple)), None)
            if isinstance(raw, bytes):
                yield uid.decode(), raw

    def done(self, handle: str) -> None:
        if not self.folder_made:
            self.client.create(_quoted(self.folder))  # NO when it exists already: fine
            self.folder_made = True
        _ok(self.client.uid("STORE", handle, "+FLAGS", "(\\Seen)"))
        if "MOVE" in self.client.capabilities:
            _ok(self.client.uid("MOVE", handle, _quoted(self.folder)))
        else:
            _ok(self.client.uid("COPY", handle, _quoted(self.folder)))
            _ok(self.client.uid("STORE", handle, "+FLAGS", "(\\Deleted)"))
            self.client.expunge()


@contextmanager
def _imap(server: _Server, folder: str, source: Source) -> Iterator[Reader]:
    try:
        if server.secure:
            context = ssl.create_default_context()
            client: imaplib.IMAP4 = imaplib.IMAP4_SSL(
                server.host, server.port, ssl_context=context, timeout=TIMEOUT
            )
        else:
            client = imaplib.IMAP4(server.host, server.port, timeout=TIMEOUT)
    except (OSError, imaplib.IMAP4.error) as exc:
        raise MailboxUnreachable(f"cannot read {source.describe()}: {_why(exc)}") from exc
    try:
        if not server.secure and "STARTTLS" in client.capabilities:
            client.starttls(ssl.create_default_context())
        client.login(server.user, server.password)
        # Servers tell more after login (MOVE, UIDPLUS): ask again.
        answer = _ok(client.capability())
        client.capabilities = tuple(bytes(answer[-1]).decode().upper().split())
        _ok(client.select(_quoted(server.folder)))
    except (OSError, imaplib.IMAP4.error) as exc:
        client.shutdown()
        raise MailboxUnreachable(f"cannot read {source.describe()}: {_why(exc)}") from exc
    try:
        yield _Imap(client, folder)
    except (OSError, imaplib.IMAP4.error) as exc:
        raise MailboxUnreachable(f"reading {source.describe()} failed: {_why(exc)}") from exc
    finally:
        with suppress(OSError, imaplib.IMAP4.error):
            client.logout()


def _ok(answer: tuple[str, Any]) -> list[Any]:
    status, data = answer
    if status != "OK":
        text = b" ".join(d for d in data if isinstance(d, bytes)).decode("utf-8", "replace")
        raise imaplib.IMAP4.error(f"the server answered {status} {text}".strip())
    return list(data)


def _quoted(folder: str) -> str:
    return f'"{folder}"'


# ----------------------------------------------------------------------------- POP3


class _Pop3:
    def __init__(self, client: poplib.POP3) -> None:
        self.client = client

    def messages(self) -> Iterator[tuple[str, bytes]]:
        count, _ = self.client.stat()
        for number in range(1, count + 1):
            _, lines, _ = self.client.retr(number)
            yield str(number), b"\r\n".join(lines) + b"\r\n"

    def done(self, handle: str) -> None:
        self.client.dele(int(handle))


@contextmanager
def _pop3(server: _Server, source: Source) -> Iterator[Reader]:
    try:
        if server.secure:
            context = ssl.create_default_context()
            client: poplib.POP3 = poplib.POP3_SSL(
                server.host, server.port, context=context, timeout=TIMEOUT
            )
        else:
            client = poplib.POP3(server.host, server.port, timeout=TIMEOUT)
    except (OSError, poplib.error_proto) as exc:
        raise MailboxUnreachable(f"cannot read {source.describe()}: {_why(exc)}") from exc
    try:
        if not server.secure and "STLS" in client.capa():
            client.stls(ssl.create_default_context())
        client.user(server.user)
        client.pass_(server.password)
    except (OSError, poplib.error_proto) as exc:
        client.close()
        raise MailboxUnreachable(f"cannot read {source.describe()}: {_why(exc)}") from exc
    try:
        yield _Pop3(client)
        client.quit()  # the deletions of processed messages take effect now
    except (OSError, poplib.error_proto) as exc:
        raise MailboxUnreachable(f"reading {source.describe()} failed: {_why(exc)}") from exc
    finally:
        client.close()


# ----------------------------------------------------------------------------- files


class _Mbox:
    def __init__(self, box: mailbox.mbox) -> None:
        self.box = box

    def messages(self) -> Iterator[tuple[str, bytes]]:
        for key in self.box.iterkeys():
            yield key, self.box.get_bytes(key)

    def done(self, handle: str) -> None:
        """Nothing: the database remembers the message."""


@contextmanager
def _mbox(path: Path) -> Iterator[Reader]:
    if not path.is_file():
        raise UserError(f"no mbox file at {path}", key="--mbox", fix="name an existing file")
    try:
        box = mailbox.mbox(path, create=False)
    except OSError as exc:
        raise MailboxUnreachable(f"cannot read {path}: {_why(exc)}") from exc
    try:
        yield _Mbox(box)
    finally:
        box.close()


class _Maildir:
    def __init__(self, box: mailbox.Maildir, folder: str) -> None:
        self.box = box
        self.folder_name = folder
        self.folder: mailbox.Maildir | None = None

    def messages(self) -> Iterator[tuple[str, bytes]]:
        for key in list(self.box.iterkeys()):  # a snapshot: done() moves messages away
            try:
                yield key, self.box.get_bytes(key)
            except KeyError:  # taken away meanwhile, e.g. by a mail client
                continue

    def done(self, handle: str) -> None:
        if self.folder is None:
            self.folder = self.box.add_folder(self.folder_name)  # opens it when it exists
        message = self.box.get_message(handle)
        message.set_subdir("cur")
        message.add_flag("S")
        self.folder.add(message)
        self.box.discard(handle)


@contextmanager
def _maildir(path: Path, folder: str) -> Iterator[Reader]:
    if not (path / "cur").is_dir() or not (path / "new").is_dir():
        raise UserError(
            f"{path} is not a maildir (it has no cur/ and new/)",
            key="--maildir",
            fix="name the maildir itself, e.g. ~/Maildir",
        )
    try:
        box = mailbox.Maildir(path, factory=None, create=False)
    except OSError as exc:
        raise MailboxUnreachable(f"cannot read {path}: {_why(exc)}") from exc
    try:
        yield _Maildir(box, folder)
    except OSError as exc:
        raise MailboxUnreachable(f"reading {path} failed: {_why(exc)}") from exc
    finally:
        box.close()


def _why(exc: BaseException) -> str:
    if isinstance(exc, socket.timeout | TimeoutError):
        return f"no answer within {TIMEOUT:.0f} seconds"
    text = exc.args[0] if exc.args else exc
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return str(getattr(exc, "strerror", None) or text or type(exc).__name__)
