"""The unsubscribe pages: a confirm page with one button, and the "done" page.

They speak the contact's language (Dutch for `nl`, English otherwise) and are
kept here as one small template, so the package needs no template folder.
The GET page only asks: mail scanners open every link in a mail, and an
unsubscribe must take a deliberate POST (RFC 8058).
"""

from __future__ import annotations

from jinja2 import Environment, select_autoescape

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
<!doctype html>
<html lang="{{ language }}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{{ title }} · {{ shop }}</title>
<style>
  body { font-family: Arial, sans-serif; color: #222; max-width: 32rem; margin: 4rem auto;
         padding: 0 1rem; line-height: 1.5; }
  button { font-size: 1rem; padding: .6rem 1.2rem; cursor: pointer; }
</style>
</head>
<body>
<h1>{{ title }}</h1>
<p>{{ text }}</p>
{% if action %}
<form method="post" action="{{ action }}">
  <input type="hidden" name="List-Unsubscribe" value="One-Click">
  <button type="submit">{{ button }}</button>
</form>
{% endif %}
</body>
</html>
"""

# Autoescaped: the shop's name comes from trouw.toml and must not become markup.
_page = Environment(autoescape=select_autoescape(default=True)).from_string(PAGE)


def language(locale: str | None, default: str) -> str:
    """`nl` for Dutch locales (nl, nl-BE, nl_NL), `en` for every other."""
    base = (locale or default).replace("_", "-").split("-")[0].lower()
    return "nl" if base == "nl" else "en"


def confirm_page(language: str, shop: str, action: str) -> str:
    """The page that asks, with a button that POSTs to `action`."""
    texts = TEXTS[language]
    return _page.render(
        language=language,
        shop=shop,
        title=texts["title"],
        text=texts["question"].format(shop=shop),
        button=texts["button"],
        action=action,
    )


def done_page(language: str, shop: str) -> str:
    """The page after unsubscribing (also shown when the contact already was)."""
    texts = TEXTS[language]
    return _page.render(
        language=language,
        shop=shop,
        title=texts["done_title"],
        text=texts["done"].format(shop=shop),
        action=None,
    )
