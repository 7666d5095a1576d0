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

import re
from collections.abc import Mapping
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid, parseaddr
from typing import Any

import css_inline
import html2text

from trouw.templates.shapes import ShapeCache

# [text](url) as html2text writes it; link text never spans lines with body_width=0.
_MARKDOWN_LINK = re.compile(r"\[([^\]\n]*)\]\((\S+?)\)")
# Long tracked URLs in List-Unsubscribe must stay readable, not RFC 2047-encoded.
_POLICY = policy.default.clone(max_line_length=998)
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
    headers: Mapping[str, Any] | None = None,
) -> EmailMessage:
    """A complete multipart/alternative message (text first, then HTML) with list headers."""
    message = EmailMessage(policy=_POLICY)
    message["From"] = sender
    message["To"] = formataddr((to_name, to_address)) if to_name else to_address
    if reply_to:
        message["Reply-To"] = reply_to
    message["Subject"] = subject
    message["Date"] = format_datetime(when)
    domain = parseaddr(sender)[1].rpartition("@")[2] or "trouw.invalid"
    message["Message-ID"] = make_msgid(domain=domain)
    mailto = parseaddr(reply_to or sender)[1]
    message["List-Unsubscribe"] = f"<{unsubscribe_url}>, <mailto:{mailto}?subject=unsubscribe>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    for name, value in (headers or {}).items():
        message[name] = str(value)
    message.set_content(text, subtype="plain", charset="utf-8")
    message.add_alternative(html, subtype="html", charset="utf-8")
    return message
