"""The hand-written MIME reads back with the `email` package exactly as it was given."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import formataddr

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from trouw.templates.mime import compose

# Any text a template or a contact's data can hold: all of Unicode but surrogates,
# line breaks normalised the way a mail has them.
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=400)
LINE = st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Zl", "Zp")), min_size=1, max_size=200
).filter(lambda s: s.strip() == s and s)


def parse(data: bytes) -> EmailMessage:
    message = message_from_bytes(data, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def lines_of(body: str) -> str:
    # A part always ends in a line break.
    return body.replace("\r\n", "\n").replace("\r", "\n").rstrip("\n")


@settings(max_examples=300, deadline=None)
@given(subject=LINE, name=LINE, text=TEXT, html=TEXT)
# Found by hypothesis: a line that fits as characters but not as character references.
@example(subject="0", name="0", text="", html="0" * 38 + "\x80" * 53 + "Ī" * 120)
def test_headers_and_parts_read_back(subject: str, name: str, text: str, html: str) -> None:
    mail = compose(
        [
            ("From", "Huis & Tuin <hallo@huisentuin.example>"),
            ("To", formataddr((name, "anna@example.nl"))),
            ("Subject", subject),
        ],
        text,
        html,
    )
    data = mail.as_bytes()
    assert b"\n" not in data.replace(b"\r\n", b""), "every line ends in CRLF"
    assert max(len(line) for line in data.split(b"\r\n")) <= 998
    assert data.isascii()
    message = parse(data)
    assert str(message["Subject"]) == subject
    [to] = message["To"].addresses
    assert (to.display_name, to.addr_spec) == (name, "anna@example.nl")
    assert message.get_content_type() == "multipart/alternative"
    plain = message.get_body(("plain",))
    rich = message.get_body(("html",))
    assert plain is not None and rich is not None
    assert lines_of(plain.get_content()) == lines_of(text)
    if rich["Content-Transfer-Encoding"] == "7bit":  # non-ASCII went as character references
        html = html.encode("ascii", "xmlcharrefreplace").decode("ascii")
    assert lines_of(rich.get_content()) == lines_of(html)


def test_html_goes_as_it_is_with_character_references() -> None:
    data = compose([("Subject", "Prijs")], "Nu € 5", "<p>Nu € 5, café</p>").as_bytes()
    assert b"<p>Nu &#8364; 5, caf&#233;</p>" in data
    message = parse(data)
    assert lines_of(message.get_body(("plain",)).get_content()) == "Nu € 5"  # type: ignore[union-attr]


def test_html_with_non_ascii_styles_or_long_lines_is_quoted_printable() -> None:
    for html in ('<style>p::before { content: "é" }</style><p>é</p>', "<p>" + "x" * 2000):
        message = parse(compose([("Subject", "s")], "t", html).as_bytes())
        rich = message.get_body(("html",))
        assert rich is not None and rich["Content-Transfer-Encoding"] == "quoted-printable"
        assert lines_of(rich.get_content()) == html


@pytest.mark.parametrize(("length", "encoding"), [(998, "7bit"), (999, "quoted-printable")])
def test_a_line_of_998_characters_goes_as_it_is_and_a_longer_one_is_encoded(
    length: int, encoding: str
) -> None:
    html = "<p>kort</p>\n" * 3 + "x" * length + "\n<p>kort</p>"
    message = parse(compose([("Subject", "s")], "t", html).as_bytes())
    rich = message.get_body(("html",))
    assert rich is not None and rich["Content-Transfer-Encoding"] == encoding
    assert lines_of(rich.get_content()) == html


def test_a_display_name_with_specials_and_accents_stays_one_address() -> None:
    to = formataddr(("Zoë de Vries, jr.", "zoe@example.nl"))
    mail = compose([("To", to), ("Reply-To", '"Vries, jr." <a@b.nl>')], "hoi", "<p>hoi</p>")
    address = parse(mail.as_bytes())["To"].addresses
    assert [(a.display_name, a.addr_spec) for a in address] == [
        ("Zoë de Vries, jr.", "zoe@example.nl")
    ]
    assert parse(mail.as_bytes())["Reply-To"].addresses[0].display_name == "Vries, jr."


@pytest.mark.parametrize("value", ["Hoi\r\nBcc: all@example.nl", "Hoi\nX: y", "Hoi\rX"])
def test_no_header_can_carry_a_line_break(value: str) -> None:
    with pytest.raises(ValueError, match="line break"):
        compose([("Subject", value)], "t", "h")


def test_an_international_domain_is_written_in_idna() -> None:
    mail = compose([("To", "Jan <jan@bücher.example>")], "t", "h")
    assert parse(mail.as_bytes())["To"].addresses[0].domain == "xn--bcher-kva.example"


def test_a_long_ascii_header_is_folded_at_spaces() -> None:
    value = " ".join(f"<https://example.nl/{n}>," for n in range(80))
    data = compose([("List-Unsubscribe", value)], "t", "h").as_bytes()
    assert max(len(line) for line in data.split(b"\r\n")) <= 998
    assert str(parse(data)["List-Unsubscribe"]) == value
