"""Print-ready letters for contacts with `channel: post`: the letter's content on an A4 page.

The page carries the sender's name and postal address on the return line,
the address where a window envelope shows it (DIN 5008 / NEN 1026: about
45 mm from the top, 20 mm from the left), without a country line when the
letter stays in the sender's country, and the date in the letter's language.

A letter links nowhere and loads nothing. Paper has no clicks, and a letter
that fetched its open pixel or an image from the network would record a
false open and tell a server who gets post. So `letter_html` keeps only what
prints: a link becomes its text and the address it names, an image stays
only as a `data:` URL, and scripts, frames, forms, stylesheets, `url()` in
styles and event attributes go; a Content-Security-Policy tells a browser
the same. With the optional extra `trouw[pdf]` (WeasyPrint) each letter is
also a PDF, made with a URL fetcher that takes `data:` URLs only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import date
from html import escape, unescape
from html.parser import HTMLParser
from typing import Any, Protocol

from babel.dates import format_date

from trouw.project import Settings
from trouw.templates.filters import babel_locale

PRINT_CSS = """\
@page { size: A4; margin: 20mm 20mm 20mm 25mm; }
body { font-family: Georgia, serif; font-size: 11pt; line-height: 1.4; margin: 0; }
.sender { font-size: 8pt; color: #444; margin-top: 25mm; }
.address { margin-top: 2mm; height: 40mm; white-space: pre-line; }
.date { text-align: right; margin-bottom: 10mm; }
.letter { page-break-inside: auto; }
.letter img { max-width: 100%; }
@media screen { body { max-width: 170mm; margin: 10mm auto; } }
"""
# A browser that opens the letter loads nothing: no image, font, style sheet or frame
# from anywhere but the page itself, and runs no script.
CSP = "default-src 'none'; img-src data:; font-src data:; style-src 'unsafe-inline'"
# Where a letter says who it is for, in its <head>: what the day's address list is made of.
META_NAME = "trouw-letter"
ADDRESS_FIELDS = ("contact_id", "name", "street", "postcode", "city", "country")

# Left out with everything inside: they run, fetch, embed or take input.
_DROPPED = frozenset({
    "script", "noscript", "template", "style", "link", "meta", "base", "title", "iframe",
    "frame", "frameset", "object", "embed", "applet", "video", "audio", "source", "track",
    "picture", "svg", "math", "canvas", "form", "input", "select", "textarea", "button",
    "map", "area", "portal",
})  # fmt: skip
_VOID = frozenset({
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param",
    "source", "track", "wbr",
})  # fmt: skip
# The structure of the page is the letter's own: the mail's is left out, its content kept.
_UNWRAPPED = frozenset({"html", "head", "body"})
# Attributes that only describe what prints; any other (src, href, srcset, background,
# poster, on..., ...) might fetch or run something.
_ATTRIBUTES = frozenset({
    "class", "id", "style", "title", "lang", "dir", "alt", "width", "height", "align",
    "valign", "colspan", "rowspan", "cellpadding", "cellspacing", "border", "role", "bgcolor",
    "color", "face", "size", "span", "start", "type", "reversed",
})  # fmt: skip
# A style declaration that could load something: url(), image-set() and friends, or a
# CSS escape that could spell one.
_FETCHING_STYLE = re.compile(r"\\|(?:url|image|image-set|cross-fade|element|src)\s*\(", re.I)
_DATA_IMAGE = re.compile(r"data:image/(?:png|jpeg|gif|webp|svg\+xml);", re.I)


class _PrintOnly(HTMLParser):
    """Rewrites HTML to what a printed letter shows (see the module's docstring)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self._skipping: list[str] = []  # the dropped element we are inside, nested
        self._in_head = False
        self._links: list[tuple[str, int]] = []  # (href, where its text starts in out)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._skipping:
            if tag == self._skipping[0] and tag not in _VOID:
                self._skipping.append(tag)
            return
        if tag in ("head", "body"):
            self._in_head = tag == "head"  # a <body> ends an unclosed <head>
        if self._in_head or tag in _UNWRAPPED:
            return
        if tag in _DROPPED:
            if tag not in _VOID:
                self._skipping.append(tag)
            return
        values = dict(attrs)
        if tag == "a":
            self._links.append(((values.get("href") or "").strip(), len(self.out)))
            return
        if tag == "img" and not _DATA_IMAGE.match(values.get("src") or ""):
            return  # an image from elsewhere: nothing to print without fetching it
        kept = [(k, v) for k, v in attrs if k in _ATTRIBUTES or (tag == "img" and k == "src")]
        self.out.append(f"<{tag}{_attributes(kept)}>")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in _VOID and not self._skipping:
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if self._skipping:
            if tag == self._skipping[0]:
                self._skipping.pop()
            return
        if tag == "head":
            self._in_head = False
            return
        if self._in_head or tag in _UNWRAPPED or tag in _DROPPED or tag in _VOID:
            return
        if tag == "a":
            if self._links:
                href, start = self._links.pop()
                self.out.append(_printed_target(href, "".join(self.out[start:])))
            return
        self.out.append(f"</{tag}>")

    def handle_data(self, data: str) -> None:
        if not self._skipping and not self._in_head:
            self.out.append(escape(data, quote=False))


def _attributes(attrs: list[tuple[str, str | None]]) -> str:
    parts = []
    for name, value in attrs:
        if name == "style" and value:
            value = ";".join(d for d in value.split(";") if not _FETCHING_STYLE.search(d))
        parts.append(f' {name}="{escape(value or "", quote=True)}"')
    return "".join(parts)


def _printed_target(href: str, shown: str) -> str:
    """What a letter prints after a link's text: the web address it named, if any."""
    if not re.match(r"https?://", href, re.I):
        return ""  # mailto:, tel:, #, an empty unsubscribe link: the text says enough
    target = re.sub(r"^https?://(www\.)?", "", href, flags=re.I).rstrip("/")
    text = re.sub(r"<[^>]*>", "", shown)
    if not target or target in text:
        return ""
    return f" ({escape(target, quote=False)})"


def printable(html: str) -> str:
    """The body of `html` as a letter may print it: no link, nothing that loads or runs."""
    parser = _PrintOnly()
    parser.feed(html)
    parser.close()
    return "".join(parser.out).strip()


def country_name(code: str, locale: str) -> str:
    """`BE` -> "België" (nl), "Belgium" (en); an unknown code stays as it is."""
    return str(babel_locale(locale).territories.get(code, code))


def postal_address(contact: Mapping[str, Any], settings: Settings) -> dict[str, str]:
    """A contact's address as the day's address list has it (see ADDRESS_FIELDS), and
    `abroad` ("1" or "") when it is not in the sender's country."""
    country = str(contact.get("country") or "").upper()
    return {
        "contact_id": str(contact.get("id") or ""),
        "name": str(contact.get("full_name") or ""),
        "street": str(contact.get("street") or ""),
        "postcode": str(contact.get("postcode") or ""),
        "city": str(contact.get("city") or ""),
        "country": country,
        "abroad": "1" if country and country != settings.home_country else "",
    }


def address_lines(address: Mapping[str, str], settings: Settings) -> list[str]:
    """Name, street, postcode and city, and the country (in capitals, in the sender's
    language, as the post office reads it) only when the letter leaves the country."""
    place = f"{address['postcode']} {address['city']}".strip()
    lines = [address["name"], address["street"], place]
    if address["abroad"]:
        lines.append(country_name(address["country"], settings.locale).upper())
    return [line for line in lines if line]


def return_line(settings: Settings, abroad: bool) -> str:
    """The sender on the envelope's return line: name and postal address (and country,
    for a letter abroad)."""
    parts = [settings.name, settings.sender.postal_address]
    if abroad and settings.home_country:
        parts.append(country_name(settings.home_country, settings.locale))
    return " · ".join(part for part in parts if part)


def letter_html(
    *, subject: str, html: str, contact: Mapping[str, Any], settings: Settings, day: date
) -> str:
    """A complete HTML page for printing: return line, address block, date, the content."""
    address = postal_address(contact, settings)
    locale = str(contact.get("locale") or settings.locale)
    lines = "\n".join(escape(line) for line in address_lines(address, settings))
    record = escape(json.dumps(address, ensure_ascii=False), quote=True)
    return (
        '<!DOCTYPE html>\n<html lang="' + escape(locale, quote=True) + '">\n<head>\n'
        '<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        f'<meta name="{META_NAME}" content="{record}">\n'
        f"<title>{escape(subject)}</title>\n<style>\n{PRINT_CSS}</style>\n</head>\n<body>\n"
        f'<div class="sender">{escape(return_line(settings, bool(address["abroad"])))}</div>\n'
        f'<div class="address">{lines}</div>\n'
        f'<div class="date">{escape(format_date(day, "long", locale=babel_locale(locale)))}</div>\n'
        f'<div class="letter">\n{printable(html)}\n</div>\n</body>\n</html>\n'
    )


_META = re.compile(rf'<meta name="{META_NAME}" content="([^"]*)">')


def address_of(letter: str) -> dict[str, str]:
    """The address a letter page was made for (empty values for a page made without one)."""
    found = _META.search(letter[: letter.find("</head>")])
    record: dict[str, Any] = {}
    if found:
        try:
            record = json.loads(unescape(found.group(1)))
        except ValueError:
            record = {}
    return {name: str(record.get(name) or "") for name in (*ADDRESS_FIELDS, "abroad")}


class PdfWriter(Protocol):
    def __call__(self, html: str) -> bytes: ...


def _offline_fetcher(weasyprint: Any) -> Any:
    """A WeasyPrint URL fetcher that loads `data:` URLs only."""
    urls = weasyprint.urls
    if hasattr(urls, "URLFetcher"):  # WeasyPrint 66 and later
        return urls.URLFetcher(allowed_protocols=("data",))

    def offline(url: str, *args: Any, **kwargs: Any) -> Any:
        if url.startswith("data:"):
            return urls.default_url_fetcher(url, *args, **kwargs)
        raise ValueError(f"a letter loads nothing from the network ({url})")

    return offline


def pdf_writer() -> PdfWriter | None:
    """A function from letter HTML to PDF bytes, or None without the `pdf` extra."""
    try:
        import weasyprint  # type: ignore[import-untyped, unused-ignore]
    except ImportError:
        return None

    # The page is already stripped of what loads; the fetcher makes sure (WeasyPrint would
    # otherwise fetch an image or style sheet a letter still named).
    fetcher = _offline_fetcher(weasyprint)

    def write(html: str) -> bytes:
        return bytes(weasyprint.HTML(string=html, url_fetcher=fetcher).write_pdf())

    return write
