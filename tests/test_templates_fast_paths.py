"""The short paths that make rendering cheap give what the slow, checked paths give.

The sandbox's fast paths (dict keys, `Facts` fields, names a macro module exports,
calling macros and `track`), the subject rendered once, the keyed HMAC and the
cached Babel formatting: each is checked against the behaviour it stands in for,
and the sandbox still refuses everything it refused before.
"""

from __future__ import annotations

import base64
import hmac
import json
import re
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from babel.dates import format_date
from babel.numbers import format_currency, format_decimal
from hypothesis import example, given, settings
from hypothesis import strategies as st
from itsdangerous import BadData, URLSafeSerializer
from jinja2.sandbox import ImmutableSandboxedEnvironment

from tests.test_templates import SIGNER, context, make_templates
from trouw.templates import LinkSigner, TemplateError
from trouw.templates.filters import FILTERS, babel_locale
from trouw.templates.links import SALTS

MACROS = """\
{% macro button(url, label) %}<a class="button" href="{{ url }}">{{ label }}</a>{% endmacro %}
{% set SECRET_LOOKING = {"a": 1} %}
"""


def _mail(subject: str = "s", body: str = "") -> str:
    return '{% extends "layout.html" %}{% import "macros.html" as m %}' + (
        f"{{% block subject %}}{subject}{{% endblock %}}{{% block body %}}{body}{{% endblock %}}"
    )


ESCAPES = [
    "{{ ''.__class__.__mro__ }}",
    "{{ track.__call__.__globals__ }}",
    "{{ track._links }}",
    "{{ track.__class__.__init__.__globals__ }}",
    "{{ m.button.__globals__ }}",
    "{{ m.button._func.__globals__ }}",
    "{{ m.__dict__ }}",
    "{{ m._body_stream }}",
    "{{ m.__class__.__init__.__globals__ }}",
    "{{ contact.__class__.__mro__ }}",
    "{{ facts.__class__.__init__.__globals__ }}",
    "{{ facts.__dataclass_fields__ }}",
    "{{ contact.update({'first_name': 'x'}) }}",
    "{{ contact.attributes.clear() }}",
    "{{ m.SECRET_LOOKING.update({'b': 2}) }}",
    "{{ range.__self__ }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ (1).__class__.__subclasses__() }}",
]


@pytest.mark.parametrize("expression", ESCAPES)
def test_the_sandbox_still_blocks_internals_and_changes(tmp_path: Path, expression: str) -> None:
    templates = make_templates(
        tmp_path, {"macros.html": MACROS, "evil.html": _mail(body=expression)}
    )
    with pytest.raises(TemplateError) as caught:
        templates.render("evil", context())
    assert re.search("not allowed|undefined|has no attribute", str(caught.value))


def test_track_shows_nothing_but_its_call(tmp_path: Path) -> None:
    """A partial showed `track.args` (the signer, which signs anything); `Track` shows nothing."""
    for expression in ("{{ track.args }}", "{{ track.func }}", "{{ track.keywords }}"):
        templates = make_templates(tmp_path, {"t.html": _mail(body=expression), "macros.html": ""})
        with pytest.raises(TemplateError, match=r"undefined|has no attribute"):
            templates.render("t", context())


def test_fast_paths_give_what_the_plain_sandbox_gives(tmp_path: Path) -> None:
    body = (
        "{{ contact.first_name }}|{{ contact.attributes.household }}|{{ contact.items()|list"
        "|length > 3 }}|{{ facts.favourite_category }}|{{ m.button(track('https://x.example/a',"
        " 'tag'), 'Go') }}|{{ m.SECRET_LOOKING.a }}|{{ m.button(url='u', label='<b>') }}"
        "|{% for i in range(2) %}{{ loop.index }}{% endfor %}"
        "|{% set ns = namespace(n=1) %}{{ ns.n }}"
    )
    templates = make_templates(tmp_path, {"macros.html": MACROS, "f.html": _mail(body=body)})
    values = context()
    mail_html = "".join(templates.render_parts(templates.compiled("f", "nl"), values)[1])
    # The same template in Jinja's own immutable sandbox, same loader and filters.
    plain = ImmutableSandboxedEnvironment(
        loader=templates.environment.loader,
        autoescape=True,
        keep_trailing_newline=True,
    )
    plain.filters.update(FILTERS)
    expected = plain.get_template("f.html").render(values)
    assert mail_html == expected
    assert 'href="https://t.shop.example/c/' in mail_html
    assert "&lt;b&gt;" in mail_html
    assert "|12|1" in mail_html, mail_html


def test_a_missing_macro_or_key_is_still_an_error(tmp_path: Path) -> None:
    for body in ("{{ m.nothing('x') }}", "{{ contact.nothing }}", "{{ facts.nothing }}"):
        templates = make_templates(tmp_path, {"macros.html": MACROS, "f.html": _mail(body=body)})
        with pytest.raises(TemplateError, match=r"undefined|has no attribute"):
            templates.render("f", context())


class Counter:
    """A context value that counts how often a template calls it."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        return "<&>"


def test_the_subject_block_runs_once_and_the_layout_shows_it(tmp_path: Path) -> None:
    templates = make_templates(
        tmp_path,
        {"macros.html": "", "s.html": _mail(subject="Hi {{ tick() }} {{ contact.first_name }}")},
    )
    values: dict[str, Any] = {**context(), "tick": Counter()}
    subject, body = templates.render_parts(templates.compiled("s", "nl"), values)
    assert values["tick"].calls == 1
    assert subject == "Hi <&> Anna"  # plain text
    assert "<title>Hi &lt;&amp;&gt; Anna</title>" in body  # escaped HTML, as the block gave it
    # self.subject() reaches the same text.
    templates = make_templates(
        tmp_path / "two",
        {
            "layout.html": "<title>{% block subject %}{% endblock %}</title>"
            "<h1>{{ self.subject() }}</h1>",
            "s.html": '{% extends "layout.html" %}{% block subject %}A & B{% endblock %}',
        },
    )
    subject, body = templates.render_parts(templates.compiled("s", "nl"), context())
    assert subject == "A & B"
    assert body == "<title>A & B</title><h1>A & B</h1>"


def test_a_template_does_not_change_the_context_it_is_given(tmp_path: Path) -> None:
    templates = make_templates(
        tmp_path, {"macros.html": MACROS, "s.html": _mail(body="{% set locale = 'en' %}x")}
    )
    values = context()
    before = dict(values)
    templates.render("s", values)
    assert values == before


@pytest.mark.parametrize(
    "data",
    [
        ["c1", "spring", "spring", "https://shop.example/lente"],
        ["démo-ü", 'camp"aign\\', "tag/é", "https://x.example/?a=1&b=2#€"],
        ["c", "", "", "\u2028\x00"],
        ["c1", "spring"],
    ],
)
def test_tokens_are_what_itsdangerous_reads(data: list[str]) -> None:
    for kind, salt in SALTS.items():
        serializer = URLSafeSerializer("test-secret", salt=salt)
        token = SIGNER.sign(kind, data)
        assert serializer.loads(token) == data
        # Byte for byte what the one-shot HMAC made before the keyed hashes (and what
        # `dumps` makes when it does not compress).
        key = serializer.make_signer().derive_key()
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
        payload = base64.urlsafe_b64encode(text).rstrip(b"=")
        mac = base64.urlsafe_b64encode(hmac.digest(key, payload, "sha1")).rstrip(b"=")
        assert token == (payload + b"." + mac).decode()
    links = SIGNER.for_mail(data[0], data[1])
    click = links.click_url("https://shop.example/a", "t").rsplit("/", 1)[1]
    assert click == SIGNER.sign("c", [data[0], data[1], "t", "https://shop.example/a"])
    read = SIGNER.read_click(click)
    assert read is not None and (read.contact_id, read.campaign) == (data[0], data[1])
    unsubscribe = links.unsubscribe_url().rsplit("/", 1)[1]
    assert SIGNER.read_contact("u", unsubscribe) == (data[0], data[1])
    assert SIGNER.read_contact("o", unsubscribe) is None  # the salt differs per kind
    assert SIGNER.read_contact("o", links.open_url().rsplit("/", 1)[1]) == (data[0], data[1])


def test_a_long_secret_still_signs_like_itsdangerous() -> None:
    signer = LinkSigner("https://t.example/", "s" * 200)
    token = signer.sign("c", ["a", "b", "c", "d"])
    assert URLSafeSerializer("s" * 200, salt=SALTS["c"]).loads(token) == ["a", "b", "c", "d"]
    assert signer.click_url("a", "b", "d", "c") == f"https://t.example/c/{token}"


def _itsdangerous_reads(serializer: URLSafeSerializer, token: str) -> Any:
    try:
        return serializer.loads(token)
    except BadData:
        return None


TOKEN_DATA = st.lists(st.text(max_size=60), min_size=4, max_size=4)


@settings(max_examples=300, deadline=None)
@given(
    data=TOKEN_DATA,
    compress=st.booleans(),
    position=st.integers(min_value=0),
    character=st.sampled_from("AaZz09-_.=+/ é"),
)
@example(data=["a" * 60] * 4, compress=True, position=7, character="b")  # compressed for sure
def test_tokens_are_read_as_itsdangerous_reads_them(
    data: list[str], compress: bool, position: int, character: str
) -> None:
    """The tracking server's token check accepts what itsdangerous accepts, and nothing
    more: tokens `dumps` compressed, and each with one character changed."""
    serializer = URLSafeSerializer("test-secret", salt=SALTS["c"])
    # `dumps` compresses when that makes the token shorter (a leading dot), else not.
    token = serializer.dumps(data) if compress else SIGNER.sign("c", data)
    assert SIGNER._load("c", token) == data == _itsdangerous_reads(serializer, token)
    at = position % len(token)
    altered = token[:at] + character + token[at + 1 :]
    if altered != token:
        assert SIGNER._load("c", altered) == _itsdangerous_reads(serializer, altered)


def test_a_signature_spelled_with_other_dropped_bits_is_the_same_signature() -> None:
    """Base64's last character of a 20-byte digest carries two bits decoding drops:
    itsdangerous accepts each spelling, and so does the tracking server."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    serializer = URLSafeSerializer("test-secret", salt=SALTS["c"])
    token = SIGNER.sign("c", ["a", "b", "c", "d"])
    last = alphabet.index(token[-1])
    other = token[:-1] + alphabet[last ^ 1]
    assert _itsdangerous_reads(serializer, other) == ["a", "b", "c", "d"]
    assert SIGNER._load("c", other) == ["a", "b", "c", "d"]


class _Context(dict[str, Any]):
    """What a pass_context filter reads: `.get("locale")`."""


@pytest.mark.parametrize("locale", ["nl", "en", "de", "xx"])
def test_cached_formatting_is_babels(locale: str) -> None:
    values = _Context(locale=locale)
    where = babel_locale(locale)
    days: list[Any] = [date(2027, 4, 2), date(2024, 2, 29), "2027-12-31"]
    for day in days:
        for style in ("long", "short", "d MMMM"):
            expected = format_date(
                date.fromisoformat(day) if isinstance(day, str) else day, style, locale=where
            )
            assert FILTERS["date"](values, day, style) == expected
            assert FILTERS["date"](values, day, style) == expected  # from the cache
    # Equal datetimes on different days stay apart; a datetime formats as its date.
    late = datetime(2027, 4, 1, 23, 30, tzinfo=UTC)
    early = late.astimezone(timezone(timedelta(hours=2)))
    assert late == early
    assert FILTERS["date"](values, late) == format_date(late, "long", locale=where)
    assert FILTERS["date"](values, early) == format_date(early, "long", locale=where)
    assert FILTERS["date"](values, late) != FILTERS["date"](values, early)
    for amount in (0, 1, 1.0, 12.5, 312.45, -3.2, 1_000_000, 0.005, 2.675):
        assert FILTERS["money"](values, amount) == format_currency(amount, "EUR", locale=where)
        assert FILTERS["money"](values, amount, "USD") == format_currency(
            amount, "USD", locale=where
        )
        assert FILTERS["number"](values, amount) == format_decimal(amount, locale=where)
        for decimals in (0, 2):
            pattern = "#,##0" + ("." + "0" * decimals if decimals else "")
            assert FILTERS["number"](values, amount, decimals) == format_decimal(
                amount, format=pattern, locale=where
            )
    # Other numbers go to Babel uncached: Decimal("1.10") == Decimal("1.1") may not look alike.
    for exact in (Decimal("1.10"), Decimal("1.1")):
        assert FILTERS["number"](values, exact) == format_decimal(exact, locale=where)
