"""The unsubscribe pages: a confirm page with one button, and the "done" page.

They speak the contact's language (Dutch for `nl`, English otherwise) and are
kept here as one small template in the shared chrome (`chrome.py`), so the
package needs no template folder.
The GET page only asks: mail scanners open every link in a mail, and an
unsubscribe must take a deliberate POST (RFC 8058).
"""

from __future__ import annotations

from trouw.tracking.chrome import DEFAULT_COLOR, render, template

TEXTS = {
    "nl": {
        "title": "Afmelden",
        "question": "Wil je geen nieuwsbrieven en aanbiedingen meer ontvangen van {shop}?",
        "button": "Ja, meld me af",
        "done_title": "Je bent afgemeld",
        "done": "Je ontvangt geen nieuwsbrieven en aanbiedingen meer van {shop}.",
    },
    "en": {
        "title": "Unsubscribe",
        "question": "Would you rather not receive newsletters and offers from {shop}?",
        "button": "Yes, unsubscribe me",
        "done_title": "You are unsubscribed",
        "done": "You will no longer receive newsletters and offers from {shop}.",
    },
}

PAGE = """\
{% extends "chrome.html" %}
{% block main %}
<section>
<p>{{ text }}</p>
{% if action %}
<form method="post" action="{{ action }}">
  <input type="hidden" name="List-Unsubscribe" value="One-Click">
  <button type="submit">{{ button }}</button>
</form>
{% endif %}
</section>
{% endblock %}
"""

_page = template(PAGE)


def language(locale: str | None, default: str) -> str:
    """`nl` for Dutch locales (nl, nl-BE, nl_NL), `en` for every other."""
    base = (locale or default).replace("_", "-").split("-")[0].lower()
    return "nl" if base == "nl" else "en"


def confirm_page(language: str, shop: str, action: str, *, color: str = DEFAULT_COLOR) -> str:
    """The page that asks, with a button that POSTs to `action`."""
    return _render(language, shop, color, "title", "question", action)


def done_page(language: str, shop: str, *, color: str = DEFAULT_COLOR) -> str:
    """The page after unsubscribing (also shown when the contact already was)."""
    return _render(language, shop, color, "done_title", "done", None)


def _render(language: str, shop: str, color: str, title: str, text: str, action: str | None) -> str:
    texts = TEXTS[language]
    text = texts[text].format(shop=shop)
    return render(
        _page, language, shop, texts[title], color, text=text, button=texts["button"], action=action
    )
