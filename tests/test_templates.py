"""The mail templates: sandbox, escaping, strict variables, locales, CSS, text, links."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import write_files
from trouw.facts import Facts
from trouw.templates import LinkSigner, MailTemplates, TemplateError, contact_view, mail_context
from trouw.templates.campaign_mails import SYNTHETIC_FACTS
from trouw.templates.check import lint_mail

LAYOUT = """\
<!doctype html>
<html><head><title>{% block subject %}{% endblock %}</title>
<style>.button { color: #ffffff; background-color: #2f6b3a; } p { margin: 0 0 12px 0; }</style>
</head><body>{% block body %}{% endblock %}
{% include "trouw/footer.html" %}</body></html>
"""

HELLO = """\
{% extends "layout.html" %}
{% block subject %}Hallo {{ contact.first_name }} & co{% endblock %}
{% block body %}<p>Beste {{ contact.first_name }},</p>
<p><a class="button" href="{{ track('https://shop.example/lente', 'spring') }}">
Naar de winkel</a></p>
{% endblock %}
"""

SIGNER = LinkSigner("https://t.shop.example", "test-secret")


def context(locale: str = "nl", facts: Facts = SYNTHETIC_FACTS, **fields: Any) -> dict[str, Any]:
    row = {
        "id": "c1",
        "email": "anna@example.com",
        "first_name": "Anna",
        "last_name": "Jansen",
        "locale": locale,
        "birthday": date(1990, 4, 2),
        "customer_since": date(2020, 1, 15),
        "attributes": {"household": "family", "points": 1250},
        **fields,
    }
    return mail_context(
        contact=contact_view(row, "nl"),
        facts=facts,
        campaign={"name": "spring", "step": "main"},
        shop={"name": "Test Shop", "postal_address": "Street 1, Town", "from": "", "reply_to": ""},
        signer=SIGNER,
        as_of=date(2027, 4, 2),
    )


def make_templates(root: Path, files: dict[str, str]) -> MailTemplates:
    write_files(root / "templates", {"layout.html": LAYOUT, **files})
    return MailTemplates(root / "templates")


def test_subject_html_and_text(tmp_path: Path) -> None:
    mail = make_templates(tmp_path, {"hello.html": HELLO}).render("hello", context())
    assert mail.subject == "Hallo Anna & co"
    assert "Beste Anna," in mail.html
    assert "Beste Anna," in mail.text
    # Links stay readable in the text part: "label: URL".
    assert "Naar de winkel: https://t.shop.example/c/" in mail.text
    # The built-in footer: unsubscribe link and postal address, in HTML and text.
    assert "Street 1, Town" in mail.html and "Street 1, Town" in mail.text
    assert context()["unsubscribe_url"] in mail.html


def test_css_is_inlined(tmp_path: Path) -> None:
    mail = make_templates(tmp_path, {"hello.html": HELLO}).render("hello", context())
    assert "<style" not in mail.html
    assert 'style="color: #ffffff;background-color: #2f6b3a;"' in mail.html
    assert 'style="margin: 0 0 12px 0;"' in mail.html


def test_html_is_escaped_and_text_is_literal(tmp_path: Path) -> None:
    templates = make_templates(
        tmp_path,
        {
            "hello.html": HELLO,
            "twin.html": HELLO,
            "twin.txt": "Beste {{ contact.first_name }},\n{% include 'trouw/footer.txt' %}",
        },
    )
    evil = context(first_name="<script>alert(1)</script>")
    mail = templates.render("hello", evil)
    assert "<script>" not in mail.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in mail.html
    assert "Beste <script>alert(1)</script>," in mail.text  # derived from the HTML
    assert mail.subject == "Hallo <script>alert(1)</script> & co"  # a header is plain text
    twin = templates.render("twin", evil)
    assert twin.text.startswith("Beste <script>alert(1)</script>,\n")  # .txt is never escaped
    assert "Afmelden: https://t.shop.example/u/" in twin.text


def test_sandbox_blocks_python_internals(tmp_path: Path) -> None:
    templates = make_templates(
        tmp_path,
        {"evil.html": "{% block subject %}x{% endblock %}{{ ''.__class__.__mro__ }}"},
    )
    with pytest.raises(TemplateError, match="not allowed") as caught:
        templates.render("evil", context())
    assert caught.value.path == tmp_path / "templates" / "evil.html"


def test_a_missing_variable_is_an_error_with_file_and_line(tmp_path: Path) -> None:
    templates = make_templates(
        tmp_path,
        {
            "typo.html": '{% extends "layout.html" %}\n{% block subject %}Hi{% endblock %}\n'
            "{% block body %}\n<p>{{ contact.frist_name }}</p>\n{% endblock %}\n"
        },
    )
    with pytest.raises(TemplateError) as caught:
        templates.render("typo", context())
    assert caught.value.path == tmp_path / "templates" / "typo.html"
    assert caught.value.line == 4
    assert "frist_name" in str(caught.value)


def test_a_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    templates = make_templates(
        tmp_path, {"broken.html": "{% block subject %}x{% endblock %}\n\n{% if %}\n"}
    )
    with pytest.raises(TemplateError, match="syntax") as caught:
        templates.render("broken", context())
    assert caught.value.line == 3


def test_a_mail_needs_a_subject(tmp_path: Path) -> None:
    templates = make_templates(tmp_path, {"plain.html": "<p>hi</p>"})
    with pytest.raises(TemplateError, match="no subject"):
        templates.render("plain", context())


LOCALE_TEMPLATE = """\
{% block subject %}s{% endblock %}
<p id="d">{{ contact.birthday|date }}</p><p id="m">{{ 12.5|money }}</p>
<p id="n">{{ 1250|number }}</p>
<p id="p">{{ 1|plural("punt", "punten") }}/{{ 3|plural("punt", "punten") }}</p>
<p id="a">{{ today|add_days(14)|date("d MMMM") }}</p>
"""


def test_locale_filters_in_dutch_and_english(tmp_path: Path) -> None:
    templates = make_templates(tmp_path, {"fmt.html": LOCALE_TEMPLATE})
    dutch = templates.render("fmt", context("nl", birthday=date(2027, 4, 2))).html
    assert '<p id="d">2 april 2027</p>' in dutch
    assert '<p id="m">€&nbsp;12,50</p>' in dutch
    assert '<p id="n">1.250</p>' in dutch
    assert '<p id="p">punt/punten</p>' in dutch
    assert '<p id="a">16 april</p>' in dutch
    english = templates.render("fmt", context("en", birthday=date(2027, 4, 2))).html
    assert '<p id="d">2 April 2027</p>' in english
    assert '<p id="m">€12.50</p>' in english
    assert '<p id="n">1,250</p>' in english


def test_locale_sibling_wins_for_its_locale(tmp_path: Path) -> None:
    templates = make_templates(
        tmp_path,
        {
            "hi.html": "{% block subject %}Hallo {{ contact.first_name }}{% endblock %}NL",
            "hi.en.html": "{% block subject %}Hello {{ contact.first_name }}{% endblock %}EN",
        },
    )
    assert templates.render("hi", context("nl")).subject == "Hallo Anna"
    assert templates.render("hi", context("en")).subject == "Hello Anna"
    assert templates.render("hi", context("de")).subject == "Hallo Anna"  # no sibling: default
    assert templates.mail_names() == ["hi"]
    assert templates.locales_of("hi") == ["en"]


def test_mail_names_leave_out_layouts_and_partials(tmp_path: Path) -> None:
    templates = make_templates(
        tmp_path, {"hello.html": HELLO, "macros.html": "{% macro b() %}x{% endmacro %}"}
    )
    assert templates.mail_names() == ["hello"]


def test_contact_attributes_and_facts_are_in_the_context(tmp_path: Path) -> None:
    templates = make_templates(
        tmp_path,
        {
            "f.html": "{% block subject %}s{% endblock %}{{ contact.household }} "
            "{{ contact.attributes.points }} {{ facts.favourite_category }} "
            "{{ facts.total_spent|money }} {{ contact.full_name }}"
        },
    )
    html = templates.render("f", context()).html
    assert "family 1250 garden €&nbsp;312,45 Anna Jansen" in html


def test_track_signs_contact_campaign_tag_and_url(tmp_path: Path) -> None:
    mail = make_templates(tmp_path, {"hello.html": HELLO}).render("hello", context())
    start = mail.html.index("https://t.shop.example/c/")
    url = mail.html[start : mail.html.index('"', start)]
    token = url.rsplit("/", 1)[1]
    click = SIGNER.read_click(token)
    assert click is not None
    assert (click.contact_id, click.campaign, click.tag, click.url) == (
        "c1",
        "spring",
        "spring",
        "https://shop.example/lente",
    )
    assert LinkSigner("https://t.shop.example", "other-secret").read_click(token) is None
    assert SIGNER.read_click(token[:-2] + "xx") is None
    assert SIGNER.read_contact("u", token) is None  # a click token is no unsubscribe token


def test_an_empty_tracked_link_is_an_error(tmp_path: Path) -> None:
    templates = make_templates(
        tmp_path,
        {"e.html": "{% block subject %}s{% endblock %}\n<a href=\"{{ track('') }}\">x</a>"},
    )
    with pytest.raises(TemplateError, match="empty URL") as caught:
        templates.render("e", context())
    assert caught.value.line == 2


def test_lint_finds_empty_links_missing_alt_and_missing_unsubscribe(tmp_path: Path) -> None:
    templates = make_templates(
        tmp_path,
        {
            "l.html": '{% block subject %}s{% endblock %}<a href="">x</a><a href="#">y</a>'
            '<img src="logo.png"><img src="pixel.gif" alt="">'
        },
    )
    mail = templates.render("l", context())
    problems = lint_mail(mail, "https://t.shop.example/u/abc")
    assert any("href=''" in p for p in problems)
    assert any("href='#'" in p for p in problems)
    assert any("logo.png" in p and "alt" in p for p in problems)
    assert not any("pixel.gif" in p for p in problems)
    assert any("unsubscribe" in p for p in problems)


def test_templates_are_compiled_once_per_run(tmp_path: Path) -> None:
    templates = make_templates(tmp_path, {"hello.html": HELLO})
    first = templates.compiled("hello", "nl")
    (tmp_path / "templates" / "hello.html").write_text("{% block subject %}changed{% endblock %}")
    assert templates.compiled("hello", "nl") is first
    assert templates.render("hello", context()).subject == "Hallo Anna & co"
    assert MailTemplates(tmp_path / "templates").render("hello", context()).subject == "changed"


def test_the_example_project_templates_render_in_both_locales() -> None:
    root = Path(__file__).resolve().parents[1] / "templates"
    templates = MailTemplates(root)
    names = templates.mail_names()
    assert len(names) >= 13
    for name in names:
        for locale in ("nl", "en"):
            mail = templates.render(name, context(locale))
            assert mail.subject and mail.text.strip()
            assert lint_mail(mail, context(locale)["unsubscribe_url"]) == [], name
            assert "Anna" in mail.subject + mail.html


def test_tokens_are_itsdangerous_tokens() -> None:
    from itsdangerous import URLSafeSerializer

    from trouw.templates.links import SALTS

    token = SIGNER.sign("u", ["c1", "spring"])
    assert URLSafeSerializer("test-secret", salt=SALTS["u"]).loads(token) == ["c1", "spring"]
    assert SIGNER.read_contact("u", token) == ("c1", "spring")
    assert SIGNER.read_contact("o", token) is None
