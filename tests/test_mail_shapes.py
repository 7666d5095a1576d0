"""CSS inlining and text derivation once per mail shape give what the per-mail libraries give."""

from __future__ import annotations

import re
from pathlib import Path

from tests.test_templates import context, make_templates
from trouw.templates import MailFinisher, MailTemplates
from trouw.templates.shapes import stylesheet_is_structural

EXAMPLE = Path(__file__).resolve().parents[1] / "templates"

CONDITIONAL = """\
{% extends "layout.html" %}
{% block subject %}Hoi {{ contact.first_name }}{% endblock %}
{% block body %}
{% if contact.household == "family" %}<div class="kids">
<p>Voor de kinderen, {{ contact.first_name }}</p>
<a class="button" href="{{ track('https://shop.example/kids') }}">Kijk</a></div>
{% else %}<p class="solo">Alleen voor jou</p>{% endif %}
{% for n in range(contact.children) %}<p>Kind {{ n + 1 }}</p>{% endfor %}
{% endblock %}
"""

STYLED_LAYOUT = """\
<!doctype html>
<html><head><title>{% block subject %}{% endblock %}</title>
<style>p { margin: 0 0 12px 0; } .kids p { color: #aa0000; } .solo { font-weight: bold; }
td > p:first-child { padding: 2px; } .button { color: #ffffff; }</style>
</head><body><table><tr><td>{% block body %}{% endblock %}</td></tr></table>
{% include "trouw/footer.html" %}</body></html>
"""


def _styles(html: str) -> list[tuple[str, str | None]]:
    """Each element with the style it got, leaving out the tbody the HTML parser adds."""
    found = []
    for match in re.finditer(r"<([a-zA-Z][\w-]*)([^>]*)>", html):
        if match.group(1).lower() != "tbody":
            style = re.search(r'\sstyle="([^"]*)"', match.group(2))
            found.append((match.group(1).lower(), style.group(1) if style else None))
    return found


def _comparable(text: str) -> str:
    return re.sub(r"[\s\\]+", "", text)


def _finish_both(templates: MailTemplates, name: str, ctx: dict) -> tuple[str, str, str, str]:  # type: ignore[type-arg]
    compiled = templates.compiled(name, ctx["locale"])
    _subject, body = templates.render_parts(compiled, ctx)
    finisher = templates.finisher
    html, text = finisher.finish(body)
    assert text is not None
    return html, text, finisher.inline_css(body), finisher.text_of(body)


def test_example_mails_match_css_inline_and_html2text() -> None:
    templates = MailTemplates(EXAMPLE)
    people = [
        context(locale, first_name=name, attributes={"household": household, "points": points})
        for locale in ("nl", "en")
        for name, household, points in (
            ("Anna", "family", 1250),
            ("Jan-Willem", "single", 0),
            ("<script>alert(1)</script>", "family", 5),
        )
    ]
    for name in templates.mail_names():
        for ctx in people:
            html, text, reference_html, reference_text = _finish_both(templates, name, ctx)
            assert _styles(html) == _styles(reference_html), name
            assert _comparable(text) == _comparable(reference_text), name
            assert "<style>" not in html
    # Mails share shapes: far fewer plans than mails.
    assert templates.finisher.shapes.misses < len(templates.mail_names()) * len(people)


def test_derived_text_has_values_unescaped_links_as_urls_and_no_tags(tmp_path: Path) -> None:
    templates = make_templates(tmp_path, {"c.html": CONDITIONAL, "layout.html": STYLED_LAYOUT})
    for first in ("Anna", "<script>alert(1)</script>", "Zoë & Co"):
        ctx = context(first_name=first, attributes={"household": "family", "children": 2})
        mail = templates.render("c", ctx)
        assert f"Voor de kinderen, {first}" in mail.text
        assert "Kijk: https://t.shop.example/c/" in mail.text
        assert "Afmelden" not in mail.text  # the HTML footer, not the .txt one
        assert ctx["unsubscribe_url"] in mail.text
        assert "Kind 1" in mail.text and "Kind 2" in mail.text
        assert re.search(r"<[a-zA-Z/][^>]*>", mail.text.replace(first, "")) is None
        assert "&lt;" not in mail.text and "&amp;" not in mail.text
        assert "&lt;script&gt;" in mail.html or first != "<script>alert(1)</script>"


def test_css_is_inlined_per_branch_of_a_template_with_conditionals(tmp_path: Path) -> None:
    templates = make_templates(tmp_path, {"c.html": CONDITIONAL, "layout.html": STYLED_LAYOUT})
    cases = [
        {"household": "family", "children": 0},
        {"household": "single", "children": 3},
        {"household": "family", "children": 2},
        {"household": "single", "children": 0},
    ]
    for attributes in cases * 2:
        ctx = context(attributes=attributes)
        html, text, reference_html, reference_text = _finish_both(templates, "c", ctx)
        assert _styles(html) == _styles(reference_html), attributes
        assert _comparable(text) == _comparable(reference_text), attributes
    mail = templates.render("c", context(attributes={"household": "single", "children": 1}))
    # The first <p> in the cell is `td > p:first-child`; the others are not.
    solo = '<p class="solo" style="margin: 0 0 12px 0;font-weight: bold;padding: 2px;">'
    assert solo in mail.html
    assert '<p style="margin: 0 0 12px 0;">Kind 1</p>' in mail.html
    family = templates.render("c", context(attributes={"household": "family", "children": 0}))
    assert '<p style="margin: 0 0 12px 0;color: #aa0000;">Voor de kinderen' in family.html
    assert templates.finisher.shapes.misses <= 6  # four branches, plus a shape per render path


def test_a_stylesheet_the_shape_cannot_capture_is_inlined_per_mail() -> None:
    assert stylesheet_is_structural("p { x: 1 } td > p:first-child, .a .b { y: 2 }")
    assert stylesheet_is_structural("@media (max-width: 600px) { .a { width: 100% } } p {}")
    assert not stylesheet_is_structural('a[href^="https"] { color: red }')
    assert not stylesheet_is_structural("a:hover { color: red }")
    assert not stylesheet_is_structural("p:lang(nl) { color: red }")
    finisher = MailFinisher()
    for url in ("https://a.example/x", "http://b.example/y"):
        page = (
            '<html><head><style>a[href^="https"] { color: red; }</style></head>'
            f'<body><p><a href="{url}">go</a></p></body></html>'
        )
        html, text = finisher.finish(page)
        assert _styles(html) == _styles(finisher.inline_css(page))
        assert text == f"go: {url}\n"


def test_twin_text_still_wins(tmp_path: Path) -> None:
    templates = make_templates(
        tmp_path,
        {
            "c.html": CONDITIONAL,
            "layout.html": STYLED_LAYOUT,
            "c.txt": "Hoi {{ contact.first_name }}\n",
        },
    )
    mail = templates.render(
        "c", context(first_name="<b>Bo</b>", attributes={"household": "x", "children": 1})
    )
    assert mail.text == "Hoi <b>Bo</b>\n"
    assert "&lt;b&gt;Bo&lt;/b&gt;" in mail.html
