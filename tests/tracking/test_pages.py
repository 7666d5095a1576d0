"""The unsubscribe pages: the contact's language, and nothing from settings becomes markup."""

from __future__ import annotations

import pytest

from trouw.tracking.pages import confirm_page, done_page, language


@pytest.mark.parametrize(
    ("locale", "expected"),
    [("nl", "nl"), ("nl-BE", "nl"), ("NL_nl", "nl"), ("en", "en"), ("de", "en"), (None, "nl")],
)
def test_dutch_for_nl_english_for_every_other_language(locale: str | None, expected: str) -> None:
    assert language(locale, default="nl") == expected


def test_a_contact_without_locale_gets_the_shops_language() -> None:
    assert language(None, default="en") == "en"
    assert language("", default="nl") == "nl"


def test_the_shop_name_and_action_are_escaped() -> None:
    page = confirm_page("en", 'Tom & "Jerry" <script>', action='x" onclick="y')
    assert "Tom &amp; &#34;Jerry&#34; &lt;script&gt;" in page
    assert "<script>" not in page
    assert 'action="x&#34; onclick=&#34;y"' in page
    assert "<form" not in done_page("nl", "Shop")
    assert "Je bent afgemeld" in done_page("nl", "Shop")
