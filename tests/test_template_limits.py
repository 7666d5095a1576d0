"""Templates cannot build unbounded values: each way to a huge text fails fast, with the
file and line, and memory stays small (`{{ 'A' * 10**9 }}` used to peak at 3.9 GB)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.conftest import Cli, write_files
from tests.test_templates import context, make_templates
from trouw.templates import TemplateError

BIG = "{% set big = range(100000)|join %}\n"  # 488,890 characters, built within the bounds

ATTACKS = {
    "str * int": "{{ 'A' * 10**9 }}",
    "int * str": "{{ 10**9 * 'A' }}",
    "list * int": "{{ ['A'] * 10**9 }}",
    "int ** int": "{{ 10 ** (10 ** 8) }}",
    "doubling with ~": "{% set ns = namespace(s='A') %}\n{% for i in range(60) %}"
    "{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
    "doubling with +": "{% set ns = namespace(s='A') %}\n{% for i in range(60) %}"
    "{% set ns.s = ns.s + ns.s %}{% endfor %}",
    "nested list literals": "{% set ns = namespace(l=['x' * 1000]) %}\n"
    "{% for i in range(60) %}{% set ns.l = [ns.l, ns.l] %}{% endfor %}",
    "str.center": "{{ 'a'.center(10**9) }}",
    "center filter": "{{ 'a'|center(10**9) }}",
    "str.format width": "{{ '{:>1000000000}'.format('a') }}",
    "str.format precision": "{{ '{:.1000000000f}'.format(1.0) }}",
    "% width": "{{ '%1000000000s' % 'a' }}",
    "format filter": "{{ '%1000000000s'|format('a') }}",
    "str.replace": BIG + "{{ big.replace('1', big) }}",
    "replace filter": BIG + "{{ big|replace('1', big) }}",
    "join filter": BIG + "{{ range(100000)|join(big) }}",
    "str.join": BIG + "{{ big.join(range(100000)|map('string')) }}",
    "indent filter": "{{ 'a'|indent(10**9, first=True) }}",
    "batch filter": "{{ [1]|batch(10**9, 'x')|list }}",
    "lipsum": "{{ lipsum(10**6, max=10**6) }}",
    "a loop's output": BIG + "{% for i in range(100000) %}{{ big }}{% endfor %}",
    "a macro's output": BIG + "{% macro m() %}{% for i in range(100000) %}{{ big }}"
    "{% endfor %}{% endmacro %}{{ m() }}",
    "a set block": BIG + "{% set x %}{% for i in range(100000) %}{{ big }}{% endfor %}"
    "{% endset %}{{ x|length }}",
    "many loop steps": "{% for i in range(100000) %}\n{% for j in range(100000) %}{% endfor %}"
    "{% endfor %}",
    "many texts in all": BIG + "{{ range(100000)|map('replace', '1', big)|list|length }}",
    "namespace doubling": "{% set ns = namespace(n=namespace(v='x' * 100000)) %}\n"
    "{% for i in range(60) %}{% set ns.n = namespace(a=ns.n, b=ns.n) %}{% endfor %}",
    "number decimals": "{{ 1|number(10**9) }}",
}


@pytest.mark.parametrize("name", list(ATTACKS))
def test_a_template_that_builds_too_much_fails_with_file_and_line(
    tmp_path: Path, name: str
) -> None:
    body = ATTACKS[name]
    source = "{% block subject %}Hi{% endblock %}\n<p>hello</p>\n" + body
    templates = make_templates(tmp_path, {"huge.html": source})
    with pytest.raises(TemplateError) as caught:
        templates.render("huge", context())
    assert caught.value.path == tmp_path / "templates" / "huge.html"
    assert caught.value.line == source.count("\n") + 1  # the attack's last line
    assert "too big to render" in str(caught.value) or "number()" in str(caught.value)
    assert "fix: build smaller values" in str(caught.value)


def test_other_ways_out_are_closed(tmp_path: Path) -> None:
    cases = {
        "{{ contact.fromkeys(range(100000), 'x') }}": "not allowed",
        "{{ dict.fromkeys(range(10), 1) }}": "has no attribute 'fromkeys'",
        "{% macro m(n) %}{{ m(n) }}{% endmacro %}{{ m(1) }}": "recursion",
    }
    for body, message in cases.items():
        templates = make_templates(
            tmp_path, {"x.html": "{% block subject %}x{% endblock %}" + body}
        )
        with pytest.raises(TemplateError, match=message):
            templates.render("x", context())


def test_memory_stays_small(tmp_path: Path) -> None:
    """Peak memory of a process rendering the attacks, measured by the kernel."""
    script = textwrap.dedent(
        f"""
        import resource, sys
        from pathlib import Path
        sys.path.insert(0, {str(Path(__file__).parents[1])!r})
        from tests.test_template_limits import ATTACKS
        from tests.test_templates import context, make_templates
        from trouw.templates import TemplateError
        start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        for n, body in enumerate(ATTACKS.values()):
            source = "{{% block subject %}}x{{% endblock %}}" + body
            templates = make_templates(Path({str(tmp_path)!r}) / str(n), {{"a.html": source}})
            try:
                templates.render("a", context())
            except TemplateError:
                pass
            else:
                raise SystemExit("rendered: " + body)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(start // 1024, peak // 1024)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    start_mb, peak_mb = map(int, done.stdout.split())
    assert peak_mb - start_mb < 200, f"peak {peak_mb} MB after {start_mb} MB at the start"


def test_ordinary_templates_render_as_before(tmp_path: Path) -> None:
    source = """{% block subject %}Hi {{ contact.first_name ~ '!' }}{% endblock %}
{% set ns = namespace(total=0) %}{% for k, v in contact.attributes.items() %}{{ k }}={{ v }};\
{% set ns.total = ns.total + 1 %}{% endfor %}
{{ ns.total }}|{{ '%s-%s'|format('a', 2) }}|{{ '{} x {:>3}'.format(1, 2) }}|\
{{ [1,2]|join(', ') }}|{{ ([1, 2] + [3])|length }}
{% for x in [3, 0, 4] if x %}{{ loop.index + 1 }}{{ 'L' if loop.last }}{% endfor %}
{% set a, b = 1, 2 %}{{ a * b }}{{ 'ab' * 3 }}{{ 2 ** 10 }}{{ 7 % 3 }}{{ '%05.1f' % 3.14159 }}
{% macro box(t) %}[{{ t }}|{{ caller() }}]{% endmacro %}{% call box('c') %}in{% endcall %}
{% filter upper %}shout{% endfilter %}{% set captured %}cap{{ 1 }}{% endset %}{{ captured }}
{{ dict(a=1)|dictsort }}{{ 'a-b'.replace('-', '+') }}{{ 'x'.center(5) }}|\
{{ ', '.join(['p', 'q']) }}
{% for item in [{'n': [1, 2]}, {'n': [3]}] recursive %}{{ item.n|sum }}{% endfor %}\
{{ range(3)|list }}{{ 'ab'|center(6) }}|{{ 'a\nb'|indent(2) }}|{{ lipsum(1, False)|length > 9 }}"""
    mail = make_templates(tmp_path, {"x.html": source}).render("x", context())
    assert mail.subject == "Hi Anna!"
    expected = (
        "household=family;points=1250; 2|a-2|1 x 2|1, 2|3 23L 2ababab10241003.1 [c|in] "
        "SHOUTcap1 [('a', 1)]a+b x |p, q 33[0, 1, 2] ab |a b|True"
    )
    assert " ".join(mail.text.split()).endswith(" ".join(expected.split()))  # as Jinja does


def test_templates_check_names_the_file_and_line(cli: Cli) -> None:
    write_files(
        cli.project,
        {
            "templates/huge.html": "{% block subject %}Hi{% endblock %}\n<p>Hi</p>\n"
            "<p>{{ 'A' * 10**9 }}</p>\n{% include 'trouw/footer.html' %}\n",
            "campaigns/huge.yaml": "template: huge\n",
        },
    )
    result = cli("templates", "check", "--as-of", "2027-04-01")
    assert result.exit_code == 2
    output = " ".join(result.output.replace("│", " ").split())
    assert "huge.html, line 3" in output and "too big to render" in output
