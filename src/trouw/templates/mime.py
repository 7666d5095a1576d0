"""A mail's bytes, written directly: headers, a text and an HTML part, CRLF line ends.

`email.message.EmailMessage` builds a tree of header objects and parses its
own output back when it serialises; for a mail of a send run that costs about
1 ms, more than rendering the template. A campaign mail always has the same
shape (a few headers, multipart/alternative with a text and an HTML part), so
it is written here in one pass, with the standard library's C encoders:

- header values are checked for CR/LF (nothing from data can add a header);
  ASCII values go as they are, other text as RFC 2047 encoded words of at
  most 75 characters, never splitting a character; display names in address
  headers are quoted or encoded by `email.utils.formataddr`;
- both parts are 7-bit, so any SMTP server takes them: as they are when they
  are ASCII with lines of at most 998 characters, else quoted-printable
  (`binascii.b2a_qp`, lines of at most 76 characters). Quoted-printable costs
  about 15 µs a kilobyte, so the HTML part first writes each non-ASCII
  character as a numeric character reference (`&#8364;` for €, which every
  HTML reader decodes), unless a `<style>` block holds non-ASCII text, where
  a reference would stay literal. The boundary starts with `=_` (which
  quoted-printable never writes) and holds random hex.

Tests parse what this writes with the `email` package, for arbitrary text.
"""

from __future__ import annotations

import binascii
import functools
import itertools
import re
import secrets
from collections.abc import Iterable
from email.utils import formataddr, parseaddr
from typing import NamedTuple

ADDRESS_HEADERS = frozenset({"from", "to", "reply-to", "cc", "sender"})
# An encoded word is at most 75 characters: "=?utf-8?b?" + base64 + "?=" leaves 63 for
# base64, i.e. 45 bytes of UTF-8 (base64 turns 3 bytes into 4 characters).
_WORD_BYTES = 45
# RFC 5322: a line is at most 998 characters; longer header values are folded at spaces.
_MAX_LINE = 998
_STYLE = re.compile(r"<style\b.*?</style\s*>", re.IGNORECASE | re.DOTALL)


class MimeMail:
    """A complete multipart/alternative mail: its headers as given, and its bytes."""

    __slots__ = ("_data", "headers")

    def __init__(self, headers: list[tuple[str, str]], data: bytes) -> None:
        self.headers = headers
        self._data = data

    def items(self) -> list[tuple[str, str]]:
        return list(self.headers)

    def get(self, name: str) -> str | None:
        wanted = name.lower()
        return next((value for key, value in self.headers if key.lower() == wanted), None)

    def as_bytes(self) -> bytes:
        """The whole message with CRLF line ends, as SMTP's DATA and a .eml file take it."""
        return self._data


# A boundary must not occur in the parts, and whoever wrote their data (a contact's name)
# must not be able to guess it: a random prefix drawn once per process, and a counter. A
# system call for fresh random bytes per mail cost a send run's main thread 4% of its time
# (waiting for the GIL again after each call while the SMTP threads ran).
_BOUNDARY = "=_" + secrets.token_hex(12) + "."
_MAILS = itertools.count()


def compose(headers: Iterable[tuple[str, str | Mailbox]], text: str, html: str) -> MimeMail:
    """The mail with these headers (in order), the text part first, then the HTML part.

    Raises ValueError when a header value holds a line break or an address
    cannot be written in plain ASCII.
    """
    fields = list(headers)
    boundary = f"{_BOUNDARY}{next(_MAILS):x}"
    lines = [header_line(name, value) for name, value in fields]
    lines.append(b"MIME-Version: 1.0\r\n")
    lines.append(
        b'Content-Type: multipart/alternative; boundary="' + boundary.encode("ascii") + b'"\r\n'
    )
    separator = b"\r\n--" + boundary.encode("ascii")
    data = b"".join(lines) + b"".join(
        (
            separator + b"\r\n" + _part("plain", text),
            separator + b"\r\n" + _part("html", html),
            separator + b"--\r\n",
        )
    )
    return MimeMail([(name, str(value)) for name, value in fields], data)


def _part(subtype: str, text: str) -> bytes:
    """One part's headers and body: as it is when 7-bit ASCII fits, else quoted-printable."""
    body = _crlf(text)
    plain = body
    if subtype == "html" and not body.isascii() and _references_work(body):
        plain = body.encode("ascii", "xmlcharrefreplace").decode("ascii")
    if plain.isascii() and _lines_fit(plain):
        encoding, data = b"7bit", plain.encode("ascii")
    else:
        # The references made a line too long: quoted-printable of the characters
        # themselves is shorter than of their references.
        encoding, data = b"quoted-printable", binascii.b2a_qp(body.encode("utf-8"), istext=True)
    return (
        b"Content-Type: text/" + subtype.encode("ascii") + b'; charset="utf-8"\r\n'
        b"Content-Transfer-Encoding: " + encoding + b"\r\n\r\n" + data
    )


def _lines_fit(body: str) -> bool:
    """Whether every line of a CRLF body is at most 998 characters. (Splitting is 4-5 times
    faster than a `^[^\r\n]{999}` search, which the regex engine tries at every position.)"""
    return len(body) <= _MAX_LINE or max(map(len, body.split("\r\n"))) <= _MAX_LINE


def _references_work(html: str) -> bool:
    """Whether character references would mean the characters everywhere in this HTML."""
    return all(block.isascii() for block in _STYLE.findall(html))


def _crlf(body: str) -> str:
    # Ending in a line break also makes b2a_qp write its soft breaks as "=\r\n": it takes
    # the line-end style from the first line end it finds, "\n" when there is none.
    if "\r" in body:
        body = body.replace("\r\n", "\n").replace("\r", "\n")
    if not body.endswith("\n"):
        body += "\n"
    return body.replace("\n", "\r\n")


class Mailbox(NamedTuple):
    """An address header's value given as its parts: written without parsing it back."""

    name: str
    address: str

    def __str__(self) -> str:
        return formataddr((self.name, self.address)) if self.name else self.address


def header_line(name: str, value: str | Mailbox) -> bytes:
    """`Name: value` + CRLF, the value encoded for the wire."""
    if isinstance(value, Mailbox):
        if any("\r" in part or "\n" in part for part in value):
            raise ValueError(f"the {name} header would contain a line break: {value!r}")
        return f"{name}: {_mailbox(value.name, value.address)}\r\n".encode("ascii")
    if "\r" in value or "\n" in value:
        raise ValueError(f"the {name} header would contain a line break: {value!r}")
    if name.lower() in ADDRESS_HEADERS:
        value = address(value)
    elif not value.isascii():
        value = encoded_words(value)
    elif len(name) + 2 + len(value) > _MAX_LINE:
        value = _fold(value, _MAX_LINE - len(name) - 2)
    return f"{name}: {value}\r\n".encode("ascii")


# The sender and reply-to of a run are the same for every mail, and parsing one
# costs more than writing the rest of the headers.
@functools.lru_cache(maxsize=64)
def address(value: str) -> str:
    """`Name <address>` with the name quoted or RFC 2047-encoded; the domain in IDNA."""
    name, mailbox = parseaddr(value)
    if not mailbox:
        raise ValueError(f"not an address: {value!r}")
    return _mailbox(name, mailbox)


def _mailbox(name: str, mailbox: str) -> str:
    local, _, domain = mailbox.rpartition("@")
    if not local.isascii():
        raise ValueError(f"the address {mailbox!r} needs SMTPUTF8, which trouw does not send")
    if not domain.isascii():
        mailbox = f"{local}@{domain.encode('idna').decode('ascii')}"
    return formataddr((name, mailbox), charset="utf-8")


@functools.lru_cache(maxsize=256)  # a run's subjects repeat (most are the same for all)
def encoded_words(text: str) -> str:
    """Text as RFC 2047 base64 encoded words (UTF-8), folded one word per line: each word
    as many bytes as fit, never splitting a character."""
    data = text.encode("utf-8")
    words = []
    start, size = 0, len(data)
    while start < size:
        end = start + _WORD_BYTES
        if end >= size:
            end = size
        else:
            while data[end] & 0xC0 == 0x80:  # a continuation byte: the character starts before
                end -= 1
        words.append(_word(data[start:end]))
        start = end
    return "\r\n ".join(words)


def _word(data: bytes) -> str:
    return "=?utf-8?b?" + binascii.b2a_base64(data, newline=False).decode("ascii") + "?="


def _fold(value: str, width: int) -> str:
    """A long ASCII value folded at spaces into lines of at most `width` characters."""
    lines: list[str] = []
    line = ""
    for word in value.split(" "):
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    lines.append(line)
    if any(len(one) > width for one in lines):
        raise ValueError(f"a header value has a word longer than {width} characters")
    return "\r\n ".join(lines)


__all__ = ["Mailbox", "MimeMail", "address", "compose", "encoded_words", "header_line"]
