"""The chrome every page of `trouw serve` wears: one skeleton, one look, one set of headers.

A page is a Jinja template that extends `chrome.html` and fills `main` (below the
title) and, when it needs a few rules of its own, `style`. The chrome gives the
doctype and head (charset, viewport, noindex, "Title · Shop"), the shop's name on
`[brand] color` with a readable text colour, and the typography, cards, notes and
form controls all pages share. Pages load nothing (no images, fonts or scripts),
post only to themselves and are never framed or cached: `page_response` says so.
"""

from __future__ import annotations

from typing import Any

from flask import Response
from jinja2 import DictLoader, Environment, Template

from trouw.project import Brand

# Every answer is about one person at one moment: no browser or proxy may keep it,
# or a second click or open would never reach us.
NO_CACHE = {
    "Cache-Control": "no-cache, no-store, must-revalidate, max-age=0",
    "Pragma": "no-cache",
    "Expires": "0",
}
# The pages load nothing, post only to themselves and are never framed.
PAGE_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"
)
DEFAULT_COLOR = Brand.color

CHROME = """\
<!doctype html>
<html lang="{{ language }}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{{ title }} · {{ shop }}</title>
<style>
  * { box-sizing: border-box; }
  body { margin: 0; background: #f3f4f1; color: #222; line-height: 1.5;
         font-family: -apple-system, "Segoe UI", Roboto, Arial, sans-serif; }
  header { background: {{ color }}; color: {{ on_color }}; padding: 1rem 0; }
  header .shop { max-width: 36rem; margin: 0 auto; padding: 0 1rem; font-weight: bold;
                 font-size: 1.15rem; }
  main { max-width: 36rem; margin: 0 auto; padding: 1rem; }
  h1 { font-size: 1.5rem; margin: .5rem 0 .75rem; color: {{ ink }}; }
  h2 { font-size: 1.1rem; margin: 0 0 .25rem; }
  p { margin: .25rem 0 .75rem; }
  section { background: #fff; border-radius: .6rem; padding: 1rem 1.1rem; margin: 0 0 1rem;
            box-shadow: 0 1px 3px rgba(0,0,0,.08); }
  .muted { color: #555; font-size: .95rem; }
  .message { background: #fdecea; border-left: 4px solid #b3261e; color: #5c1410;
             padding: .75rem 1rem; border-radius: .4rem; margin: 0 0 1rem; }
  .note { background: #eef4ee; border-left: 4px solid {{ color }};
          padding: .6rem .9rem; border-radius: .4rem; margin: 0 0 .75rem; }
  button { font: inherit; font-weight: bold; border: 2px solid {{ color }};
           background: {{ color }}; color: {{ on_color }}; border-radius: .4rem;
           padding: .55rem 1rem; cursor: pointer; min-height: 2.75rem; }
  button.quiet { background: #fff; color: {{ ink }}; }
  label { display: block; font-size: .9rem; font-weight: bold; margin: .5rem 0 .2rem; }
  input, textarea { font: inherit; width: 100%; padding: .5rem .6rem; border: 1px solid #aaa;
                    border-radius: .4rem; min-height: 2.75rem; }
  a { color: {{ ink }}; }
  @media (max-width: 30rem) {
    section button { width: 100%; }
  }
{% block style %}{% endblock %}
</style>
</head>
<body>
<header><div class="shop">{{ shop }}</div></header>
<main>
<h1>{{ title }}</h1>
{% block main %}{% endblock %}
</main>
</body>
</html>
"""

# Autoescaped: names from trouw.toml, the campaigns and the contact row never become markup.
_environment = Environment(loader=DictLoader({"chrome.html": CHROME}), autoescape=True)


def template(source: str) -> Template:
    """A page template; `source` starts with `{% extends "chrome.html" %}`."""
    return _environment.from_string(source)


def render(page: Template, language: str, shop: str, title: str, color: str, **values: Any) -> str:
    """The page in the chrome: its `language` (nl/en), the shop's name and colour, its title;
    `values` are the page's own."""
    text_on_brand = on_color(color)
    # The brand colour as text on the light page only when it reads there (a dark colour).
    ink = color if text_on_brand == "#ffffff" else "#222222"
    return page.render(
        language=language, shop=shop, title=title, color=color, on_color=text_on_brand,
        ink=ink, **values,
    )  # fmt: skip


def on_color(color: str) -> str:
    """Black or white, whichever reads better on `color` (#rgb or #rrggbb)."""
    digits = color.lstrip("#")
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    red, green, blue = (int(digits[i : i + 2], 16) / 255 for i in (0, 2, 4))

    def linear(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    luminance = 0.2126 * linear(red) + 0.7152 * linear(green) + 0.0722 * linear(blue)
    return "#111111" if luminance > 0.4 else "#ffffff"


def page_response(html: str, status: int = 200) -> Response:
    """A page as `trouw serve` answers it: never cached, loading nothing, never framed,
    and no referrer (the address carries the token)."""
    response = Response(html, status=status, mimetype="text/html", headers=NO_CACHE)
    response.headers["Content-Security-Policy"] = PAGE_POLICY
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
