"""`survey_link(question, score)` in templates: signed answer links, checked when rendered."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from itsdangerous import URLSafeSerializer

from tests.conftest import Cli, write_files
from tests.test_templates import SIGNER, context, make_templates
from trouw.templates import TemplateError, contact_view, mail_context
from trouw.templates.campaign_mails import SYNTHETIC_FACTS
from trouw.templates.links import SALTS, SurveyToken

ASK = """\
{% extends "layout.html" %}
{% block subject %}Eén vraag{% endblock %}
{% block body %}
<p><a href="{{ survey_link('nps', 9) }}">9</a> <a href="{{ survey_link('csat', 1) }}">1</a></p>
{% endblock %}
"""


def test_a_survey_link_signs_contact_campaign_question_score_and_day(tmp_path: Path) -> None:
    mail = make_templates(tmp_path, {"ask.html": ASK}).render("ask", context(link_key="k1"))
    prefix = "https://t.shop.example/s/"
    links = [part.split('"')[0] for part in mail.html.split(f'href="{prefix}')[1:]]
    assert len(links) == 2
    serializer = URLSafeSerializer("test-secret", salt=SALTS["s"])
    assert serializer.loads(links[0]) == ["c1", "spring", "nps", "9", "2027-04-02", "k1"]
    assert SIGNER.read_survey(links[1]) == SurveyToken(
        "c1", "spring", "csat", 1, "2027-04-02", "k1"
    )
    # Another kind of token is not an answer, nor is an answer another kind of token.
    assert SIGNER.read_click(links[0]) is None
    click = SIGNER.click_url("c1", "spring", "https://shop.example/", "nps")
    assert SIGNER.read_survey(click.rsplit("/", 1)[1]) is None


@pytest.mark.parametrize(
    ("call", "says"),
    [
        ("survey_link('nps', 11)", "from 0 to 10"),
        ("survey_link('nps', -1)", "from 0 to 10"),
        ("survey_link('csat', 0)", "from 1 to 5"),
        ("survey_link('nps', '9')", "whole number"),
        ("survey_link('nps', 8.5)", "whole number"),
        ("survey_link('ces', 3)", "not a known question"),
    ],
)
def test_a_score_outside_the_scale_is_a_template_error_with_file_and_line(
    tmp_path: Path, call: str, says: str
) -> None:
    source = ASK.replace("survey_link('csat', 1)", call)
    templates = make_templates(tmp_path, {"ask.html": source})
    with pytest.raises(TemplateError) as caught:
        templates.render("ask", context())
    assert caught.value.path == tmp_path / "templates" / "ask.html"
    assert caught.value.line == 4
    assert says in str(caught.value)


def test_a_letter_has_no_answer_links_but_still_checks_them(tmp_path: Path) -> None:
    letter = mail_context(
        contact=contact_view({"id": "c1", "first_name": "Anna", "locale": "nl"}, "nl"),
        facts=SYNTHETIC_FACTS,
        campaign={"name": "spring"},
        shop={"name": "Test Shop", "postal_address": "Street 1", "from": "", "reply_to": ""},
        signer=SIGNER,
        as_of=date(2027, 4, 2),
        channel="post",
    )
    assert letter["survey_link"]("nps", 9) == ""
    with pytest.raises(ValueError, match="from 0 to 10"):
        letter["survey_link"]("nps", 11)


def test_templates_check_names_the_file_and_line_of_a_bad_score(cli: Cli) -> None:
    write_files(
        cli.project,
        {
            "templates/ask.html": "{% block subject %}Vraag{% endblock %}\n"
            "<p><a href=\"{{ survey_link('nps', 10) }}\">10</a></p>\n"
            "<p><a href=\"{{ survey_link('nps', 11) }}\">11</a></p>\n"
            '{% include "trouw/footer.html" %}\n',
            "campaigns/ask.yaml": "template: ask\n",
        },
    )
    result = cli("templates", "check", "--as-of", "2027-04-01")
    assert result.exit_code == 2
    output = " ".join(result.output.replace("│", " ").split())
    assert "ask.html" in output and "line 3" in output
    assert "survey_link('nps', 11)" in output and "from 0 to 10" in output
