"""Print-ready letters for contacts with `channel: post`: the mail's HTML in an A4 page.

The address block sits where a window envelope shows it (DIN 5008 / NEN 1026:
about 45 mm from the top, 20 mm from the left); the sender's postal address
goes above it in small print. With the optional extra `trouw[pdf]`
(WeasyPrint) each letter is also written as a PDF, ready for a print service.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date
from html import escape
from typing import Any, Protocol

_BODY = re.compile(r"<body[^>]*>(.*)</body>", re.IGNORECASE | re.DOTALL)

PRINT_CSS = """\
@page { size: A4; margin: 20mm 20mm 20mm 25mm; }
body { font-family: Georgia, serif; font-size: 11pt; line-height: 1.4; margin: 0; }
.sender { font-size: 8pt; color: #444; margin-top: 25mm; }
.address { margin-top: 2mm; height: 40mm; white-space: pre-line; }
.date { text-align: right; margin-bottom: 10mm; }
.letter { page-break-inside: auto; }
@media screen { body { max-width: 170mm; margin: 10mm auto; } }
"""


def address_lines(contact: Mapping[str, Any]) -> list[str]:
    """Name, street, postcode and city, country: the lines of the address block."""
    place = " ".join(str(contact.get(k) or "") for k in ("postcode", "city")).strip()
    lines = [
        str(contact.get("full_name") or ""),
        str(contact.get("street") or ""),
        place,
        str(contact.get("country") or ""),
    ]
    return [line for line in lines if line]


def letter_html(
    *, subject: str, html: str, contact: Mapping[str, Any], sender: str, day: date
) -> str:
    """A complete HTML page for printing: sender line, address block, date, the mail's body."""
    found = _BODY.search(html)
    body = found.group(1) if found else html
    address = "\n".join(escape(line) for line in address_lines(contact))
    return (
        '<!DOCTYPE html>\n<html>\n<head>\n<meta charset="utf-8">\n'
        f"<title>{escape(subject)}</title>\n<style>\n{PRINT_CSS}</style>\n</head>\n<body>\n"
        f'<div class="sender">{escape(sender)}</div>\n'
        f'<div class="address">{address}</div>\n'
        f'<div class="date">{day.isoformat()}</div>\n'
        f'<div class="letter">\n{body}\n</div>\n</body>\n</html>\n'
    )


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

    # A letter is made from what is in it: fetching the open pixel or an image from the
    # network would record false opens (and tell a server who gets a letter).
    fetcher = _offline_fetcher(weasyprint)

    def write(html: str) -> bytes:
        return bytes(weasyprint.HTML(string=html, url_fetcher=fetcher).write_pdf())

    return write
