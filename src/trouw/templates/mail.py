"""Finishing a rendered mail: CSS inlined, a plain-text part, a complete message.

Mail clients (Gmail, Outlook) drop or ignore much of a `<style>` block, so the
rules are written onto the elements with css-inline; a `<style
data-css-inline="keep">` block (media queries) stays as it is. The text part,
when a template has no `.txt` twin, is derived from the HTML with html2text,
links kept as readable URLs ("Ontdek de winkel: https://...").

Both cost more than rendering the template, so `finish` does them once per
shape of a mail (see `shapes`) and fills in each mail's text and links;
`inline_css` and `text_of` are the per-mail originals it is built on.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from datetime import datetime
from email.utils import format_datetime, make_msgid, parseaddr
from typing import Any

import css_inline
import html2text

from trouw.templates.mime import Mailbox, MimeMail, compose
from trouw.templates.shapes import ShapeCache

# [text](url) as html2text writes it; link text never spans lines with body_width=0.
_MARKDOWN_LINK = re.compile(r"\[([^\]\n]*)\]\((\S+?)\)")
_BLANK_LINES = re.compile(r"\n[ \t]*\n(?:[ \t]*\n)+")


class MailFinisher:
    """CSS inlining and text derivation, configured once per run."""

    def __init__(self) -> None:
        self._inliner = css_inline.CSSInliner(
            keep_style_tags=False, keep_link_tags=False, load_remote_stylesheets=False
        )
        self.shapes = ShapeCache(self.inline_css, self.text_of)

    def finish(self, html: str, *, text: bool = True) -> tuple[str, str | None]:
        """The HTML with CSS inlined, and (when `text`) its derived text part."""
        return self.shapes.finish(html, text=text)

    def inline_css(self, html: str) -> str:
        """The HTML with its `<style>` rules written into `style` attributes."""
        return str(self._inliner.inline(html))

    def text_of(self, html: str) -> str:
        """A readable plain-text version of the HTML: paragraphs, lists, links as URLs."""
        converter = html2text.HTML2Text()
        converter.body_width = 0  # mail clients wrap; hard wraps would break long links
        converter.ignore_images = True
        converter.ignore_emphasis = True
        converter.ignore_tables = True  # layout tables are not data
        converter.unicode_snob = True
        converter.single_line_break = False
        text = converter.handle(html)
        text = _MARKDOWN_LINK.sub(_readable_link, text)
        text = _BLANK_LINES.sub("\n\n", text)
        return "\n".join(line.rstrip() for line in text.strip().splitlines()) + "\n"


def _readable_link(match: re.Match[str]) -> str:
    label, url = match.group(1).strip(), match.group(2)
    if not label or label == url:
        return url
    return f"{label}: {url}"


# A run's sender and reply-to are the same for every mail, and parsing one costs more than
# writing all the headers of a mail.
@functools.lru_cache(maxsize=64)
def mailbox_of(address: str) -> str:
    """The bare address of `Name <address>` (email.utils.parseaddr)."""
    return parseaddr(address)[1]


def build_message(
    *,
    subject: str,
    html: str,
    text: str,
    sender: str,
    to_name: str,
    to_address: str,
    reply_to: str | None,
    unsubscribe_url: str,
    when: datetime,
    message_id: str | None = None,
    headers: Mapping[str, Any] | None = None,
) -> MimeMail:
    """A complete multipart/alternative message (text first, then HTML) with list headers.

    `message_id` defaults to a new one; a send passes its ledger row's, so a
    retry of the row reuses it. Raises ValueError when a value would put a
    line break into a header.
    """
    if message_id is None:
        domain = mailbox_of(sender).rpartition("@")[2] or "trouw.invalid"
        message_id = make_msgid(domain=domain)
    mailto = mailbox_of(reply_to or sender)
    fields: list[tuple[str, str | Mailbox]] = [
        ("From", sender),
        ("To", Mailbox(to_name, to_address)),
        *([("Reply-To", reply_to)] if reply_to else []),
        ("Subject", subject),
        ("Date", format_datetime(when)),
        ("Message-ID", message_id),
        ("List-Unsubscribe", f"<{unsubscribe_url}>, <mailto:{mailto}?subject=unsubscribe>"),
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
    ]
    fields.extend((name, str(value)) for name, value in (headers or {}).items())
    return compose(fields, text, html)
