"""`trouw templates check`: each problem once, at its file and line; layouts wider than a phone."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Cli, write_files
from trouw.templates.check import phone_width_problems
from trouw.templates.environment import MailTemplates

AS_OF = "2027-04-01"
KEEP = (
    '<style data-css-inline="keep">'
    "@media (max-width: 620px) { .mail { width: 100% !important; } }</style>"
)
LAYOUT = f"""\
<!doctype html>
<html><head><title>{{% block subject %}}{{% endblock %}}</title>
<style>.mail {{ width: 600px; max-width: 600px; }}</style>
{KEEP}
</head><body><div class="mail">
<img src="https://shop.example/logo.png">
{{% block body %}}{{% endblock %}}
{{% include "trouw/footer.html" %}}</div></body></html>
"""
MAIL = """\
{% extends "layout.html" %}
{% block subject %}Hi {{ contact.first_name }}{% endblock %}
{% block body %}
<p>Hello {{ contact.first_name }},</p>
<p><a href="">our shop</a></p>
{% endblock %}
"""
CONTACTS = "id,first_name\n" + "".join(f"c{i},Name{i}\n" for i in range(1, 7))


def _project(cli: Cli, files: dict[str, str]) -> None:
    write_files(cli.project, {"contacts.csv": CONTACTS, **files})
    assert cli("import", "contacts", str(cli.project / "contacts.csv")).exit_code == 0


def _problems(output: str) -> list[str]:
    """The problem lines of the output (not the `seen in`, `fix` or summary lines)."""
    return [line for line in output.splitlines() if ", line " in line or "templates/" in line]


def test_each_problem_once_with_its_file_and_line(cli: Cli) -> None:
    _project(
        cli,
        {
            "templates/layout.html": LAYOUT,
            "templates/one.html": MAIL,
            "templates/two.html": MAIL,
            "campaigns/one.yaml": "template: one\n",
            "campaigns/two.yaml": "template: two\n",
        },
    )
    result = cli("templates", "check", "--as-of", AS_OF, "--samples", "3")
    assert result.exit_code == 2
    problems = _problems(result.output)
    # The layout's image: one problem for both campaigns and all their samples, at its line.
    image = [line for line in problems if "alt text" in line]
    assert len(image) == 1, result.output
    assert f"{cli.project / 'templates' / 'layout.html'}, line 6:" in image[0]
    seen = result.output.split(image[0])[1].splitlines()[1]
    assert "one → one" in seen and "two → two" in seen and "samples" in seen
    # The empty link: once per mail file, each at its line.
    links = [line for line in problems if "link without a target" in line]
    assert sorted(links) == sorted(
        f"{cli.project / 'templates' / name}, line 5: a link without a target (href='')"
        for name in ("one.html", "two.html")
    ), result.output
    assert "3 problems" in result.output


def test_a_missing_variable_is_reported_once_for_all_samples(cli: Cli) -> None:
    _project(
        cli,
        {
            "templates/hello.html": "{% block subject %}Hi{% endblock %}\n"
            "<p>{{ contact.nickname }}</p>\n{% include 'trouw/footer.html' %}\n",
            "campaigns/hello.yaml": "template: hello\n",
        },
    )
    result = cli("templates", "check", "--as-of", AS_OF, "--samples", "5")
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if "nickname" in line]
    assert len(lines) == 1 and "hello.html, line 2" in lines[0], result.output
    assert "5 samples" in result.output


def _wide(tmp_path: Path, files: dict[str, str]) -> list[str]:
    write_files(tmp_path / "templates", files)
    return [str(problem) for problem in phone_width_problems(MailTemplates(tmp_path / "templates"))]


def test_layouts_wider_than_a_phone_are_flagged_at_their_line(tmp_path: Path) -> None:
    found = _wide(
        tmp_path,
        {
            "a.html": '<p>x</p>\n<table width="600"><tr><td>x</td></tr></table>\n',
            "b.html": "<style>\n.box { color: red; }\n.mail {\n  width: 640px;\n}\n</style>\n",
            "c.html": '<div style="min-width: 500px">x</div>\n',
        },
    )
    assert len(found) == 3, found
    assert f"{tmp_path / 'templates' / 'a.html'}, line 2: a layout 600 px wide" in found[0]
    assert '`width="600"` on <table>' in found[0]
    assert f"{tmp_path / 'templates' / 'b.html'}, line 4: a layout 640 px wide" in found[1]
    assert f"{tmp_path / 'templates' / 'c.html'}, line 1: a layout 500 px wide" in found[2]
    assert "max-width: 100%" in found[0]  # the fix


def test_fluid_layouts_are_not_flagged(tmp_path: Path) -> None:
    found = _wide(
        tmp_path,
        {
            # a width capped by max-width in %, or small enough for a phone
            "a.html": '<table width="600" style="width: 100%; max-width: 600px"></table>\n'
            '<img src="x.png" width="300" alt="">\n'
            '<img src="y.png" width="600" style="max-width: 100%" alt="">\n',
            # a fixed width that a kept media query sizes again (by class)
            "b.html": "<style>.mail { width: 600px; }</style>\n" + KEEP + "\n"
            '<table class="mail" width="600"></table>\n',
            "c.html": "<style>.wrap { width: 100%; max-width: 100%; }</style>\n",
        },
    )
    assert found == []


def test_a_media_query_that_css_inline_drops_does_not_count(tmp_path: Path) -> None:
    found = _wide(
        tmp_path,
        {"a.html": "<style>.mail { width: 600px; }\n"
         "@media (max-width: 620px) { .mail { width: 100% !important; } }</style>\n"},
    )  # fmt: skip
    assert len(found) == 1 and 'data-css-inline=\\"keep\\"' not in found[0]
    assert 'data-css-inline="keep"' in found[0]  # the fix says where the rule must go


def test_the_example_project_fits_a_phone() -> None:
    root = Path(__file__).resolve().parents[1] / "templates"
    assert phone_width_problems(MailTemplates(root)) == []
