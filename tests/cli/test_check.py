"""`trouw check`: the whole project without data, every problem at once, never a traceback."""

from __future__ import annotations

import re
import resource
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import SETTINGS, write_files
from trouw.campaigns import CampaignError, load_campaign, read_campaign
from trouw.cli import main
from trouw.problems import Problems
from trouw.project import find_project
from trouw.segments.definition import read_segment

REPO = Path(__file__).resolve().parents[2]
AS_OF = "2027-01-15"  # the coming year: 2027-01-15 to 2028-01-14
MAIL = (
    '{% extends "layout.html" %}{% block subject %}Hi{% endblock %}{% block body %}x{% endblock %}'
)
LAYOUT = "<html><body>{% block body %}{% endblock %}{% include 'trouw/footer.html' %}</body></html>"
GOOD = {
    "segments/families.yaml": "where:\n  attribute: household\n  equals: family\n",
    "templates/layout.html": LAYOUT,
    "templates/mail.html": MAIL,
    "campaigns/spring.yaml": (
        'segment: families\nschedule:\n  rrule: "FREQ=YEARLY;BYMONTH=4;BYMONTHDAY=2"\n'
        "template: mail\n"
    ),
}


def check(root: Path, *args: str) -> Result:
    """`trouw --project ROOT check ARGS`, in-process; an exception fails the test."""
    return CliRunner().invoke(
        main, ["--project", str(root), "check", "--as-of", AS_OF, *args], catch_exceptions=False
    )


def test_ten_mistakes_across_files_are_reported_in_one_run(project_dir: Path) -> None:
    settings = (
        SETTINGS.replace('from = "Test Shop <hello@shop.example>"', 'from = "Test Shop"')
        + '\n[tracking]\nbase_url = "t.shop.example/links"\n'
        + "\n[policy]\nmax_per_week = 8\nmax_per_month = 4\nmax_per_day = 1\n"
    )
    write_files(
        project_dir,
        {
            **GOOD,
            "trouw.toml": settings,
            "segments/buyers.yaml": "where:\n  event: purchase\n  count: {more_than: 2}\n",
            "campaigns/spring.yaml": GOOD["campaigns/spring.yaml"] + "kind: promo\n",
            "campaigns/winter.yaml": "segment: nobody\ntemplate: winter/mail\n",
            "campaigns/autumn.yaml": (
                'template: mail\nschedule:\n  rrule: "FREQ=YEARLY;BYMONTH=10;UNTIL=20201231"\n'
            ),
            "templates/broken.html": "{% block subject %}Hi{% endblock %}\n\n{{ contact.name \n",
            "templates/summer.html": (
                '{% extends "summer-layout.html" %}\n{% block subject %}S{% endblock %}'
            ),
        },
    )
    result = check(project_dir)
    assert result.exit_code == 2, result.output
    expected = [
        # trouw.toml: a From that is no address, a relative base_url, a cap that cannot bind,
        # a key the loader does not know
        r"trouw\.toml, line 7, key 'sender\.from': 'Test Shop' cannot be the From address",
        r"trouw\.toml, line 11, key 'tracking\.base_url': .* expected an absolute http\(s\) URL",
        r"trouw\.toml, line 14, key 'policy\.max_per_week': max_per_week = 8 is more than "
        r"max_per_month = 4",
        r"trouw\.toml, line 16, key 'policy\.max_per_day': unknown setting",
        # a segment with an operator there is not
        r"segments/buyers\.yaml, line 3, key 'more_than': unknown operator 'more_than' for count",
        # a campaign key with a value there is not
        r"campaigns/spring\.yaml, line 5, key 'kind': unknown kind 'promo'",
        # references to a segment and a template that do not exist
        r"campaigns/winter\.yaml, line 1, key 'segment': no segment 'nobody'",
        r"campaigns/winter\.yaml, line 2, key 'template': no template 'winter/mail'",
        # an rrule that ended years ago: no day in the coming year
        r"campaigns/autumn\.yaml, line 3, key 'schedule': the schedule \(rrule .*\) has no day "
        r"from 2027-01-15 to 2028-01-14",
        # Jinja: a syntax error, and a layout that does not exist
        r"templates/broken\.html, line 3: template syntax error",
        r"templates/summer\.html, line 1: \{% extends %\} names 'summer-layout\.html', which "
        r"does not exist",
    ]
    for pattern in expected:
        assert re.search(pattern, result.stderr), f"{pattern}\n---\n{result.stderr}"
    assert f"Error: {len(expected)} problems in 7 files" in result.stderr
    assert result.stderr.count("  fix: ") == len(expected)
    assert "Traceback" not in result.output


def test_the_example_project_is_fine() -> None:
    result = check(REPO)
    assert result.exit_code == 0, result.output
    assert re.fullmatch(
        r"project is fine: \d+ segments, \d+ campaigns, \d+ templates\n", result.stdout
    )


def test_a_new_project_is_fine_and_check_makes_no_database(tmp_path: Path) -> None:
    root = tmp_path / "shop"
    assert CliRunner().invoke(main, ["init", str(root)]).exit_code == 0
    before = sorted(path.relative_to(root) for path in root.rglob("*"))
    result = CliRunner().invoke(main, ["--project", str(root), "check"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("project is fine: ")
    assert sorted(path.relative_to(root) for path in root.rglob("*")) == before
    assert not (root / ".trouw").exists()


def test_check_finds_the_project_upwards_and_uses_no_database_url(
    project_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_files(project_dir, GOOD)
    monkeypatch.chdir(project_dir / "segments")
    monkeypatch.setenv("TROUW_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:1/nothing")
    result = CliRunner().invoke(main, ["check"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.stdout == "project is fine: 1 segment, 1 campaign, 2 templates\n"
    assert not (project_dir / ".trouw").exists()


def test_every_independent_problem_of_one_file_is_listed(project_dir: Path) -> None:
    write_files(
        project_dir,
        {
            **GOOD,
            "campaigns/spring.yaml": (
                "kind: promo\npriority: high\ncolour: red\nvalid_for: 0d\n"
                "schedule:\n  dates: [2027-04-02, 2027-02-30, 2027-13-01]\n"
                "variants:\n  - {segment: families, template: mail}\n  - nonsense\n"
                "  - {segment: singles, template: mail, extra: 1}\n"
            ),
        },
    )
    result = check(project_dir)
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("campaigns/")]
    assert [line.split(":")[0] for line in lines] == [
        "campaigns/spring.yaml, line 1, key 'kind'",
        "campaigns/spring.yaml, line 2, key 'priority'",
        "campaigns/spring.yaml, line 3, key 'colour'",
        "campaigns/spring.yaml, line 4, key 'valid_for'",
        "campaigns/spring.yaml, line 6, key 'dates'",
        "campaigns/spring.yaml, line 6, key 'dates'",
        "campaigns/spring.yaml, line 9, key 'variants'",
        "campaigns/spring.yaml, line 10, key 'extra'",
        "campaigns/spring.yaml, line 10, key 'segment'",  # no segment 'singles'
    ]


def test_loading_for_a_command_still_stops_at_the_first_problem(project_dir: Path) -> None:
    path = project_dir / "campaigns" / "c.yaml"
    path.write_text("kind: promo\npriority: high\ntemplate: mail\n", encoding="utf-8")
    with pytest.raises(CampaignError, match="line 1, key 'kind'"):
        load_campaign(path)
    found = Problems()
    campaign = read_campaign(path, found)
    assert campaign is not None and campaign.steps[0].templates == ["mail"]
    assert [problem.key for problem in found] == ["kind", "priority"]


def test_settings_that_make_no_sense_still_load_for_other_commands(project_dir: Path) -> None:
    write_files(
        project_dir,
        {
            **GOOD,
            "trouw.toml": SETTINGS
            + '\n[tracking]\nbase_url = "/relative"\n'
            + '\n[policy]\nmax_per_week = 9\nmin_gap = "400d"\n',
        },
    )
    settings = find_project(project_dir).settings  # as plan and send load it
    assert settings.policy.max_per_week == 9
    result = check(project_dir)
    assert result.exit_code == 2
    assert "key 'policy.max_per_week'" in result.stderr
    assert "key 'policy.min_gap': min_gap = 400d is longer than a year" in result.stderr
    assert "key 'tracking.base_url'" in result.stderr


def test_a_schedule_names_its_next_day_when_the_coming_year_has_none(project_dir: Path) -> None:
    write_files(
        project_dir,
        {
            **GOOD,
            "campaigns/jubilee.yaml": "template: mail\nschedule:\n  dates: [2029-04-02]\n",
            "campaigns/biennial.yaml": (
                "template: mail\nschedule:\n"
                '  rrule: "FREQ=YEARLY;INTERVAL=2;BYMONTH=6;BYMONTHDAY=1"\n'
            ),
        },
    )
    result = check(project_dir)  # the coming year: 2027-01-15 to 2028-01-14
    assert result.exit_code == 2
    assert "campaigns/jubilee.yaml, line 3, key 'schedule'" in result.stderr
    assert "(its next day is 2029-04-02)" in result.stderr
    # Every other year from 1900 on: 2026 and 2028, so the coming year has none either.
    assert "campaigns/biennial.yaml, line 3, key 'schedule'" in result.stderr
    assert "(its next day is 2028-06-01)" in result.stderr
    result = CliRunner().invoke(
        main, ["--project", str(project_dir), "check", "--as-of", "2028-01-01"]
    )
    assert "biennial" not in result.stderr


def test_segments_that_name_no_segment_or_each_other_in_a_cycle(project_dir: Path) -> None:
    write_files(
        project_dir,
        {
            **GOOD,
            "segments/a.yaml": "where:\n  segment: b\n",
            "segments/b.yaml": "where:\n  any:\n    - segment: a\n    - segment: ghost\n",
            "segments/c.yaml": "where:\n  all:\n    - segment: a\n    - attribute: city\n",
        },
    )
    result = check(project_dir)
    assert result.exit_code == 2
    assert "segments/a.yaml, line 2, key 'segment': segment references form a cycle" in (
        result.stderr
    )
    assert "segments/b.yaml, line 4, key 'segment': refers to segment 'ghost'" in result.stderr
    assert "segments/c.yaml, line 4, key 'attribute': attribute 'city' has no operator" in (
        result.stderr
    )
    assert "which is invalid" not in result.stderr  # a consequence, not a problem of its own


# case: (the files written over a good project, what stderr must say: file, line, reason)
HOSTILE: dict[str, tuple[dict[str, bytes], str]] = {
    "binary segment": (
        {"segments/x.yaml": b"ok: 1\n\x89PNG\x00\xff"},
        "segments/x.yaml, line 2: not UTF-8 text",
    ),
    "empty segment": ({"segments/x.yaml": b""}, "segments/x.yaml, line 1: expected a mapping"),
    "a list segment": (
        {"segments/x.yaml": b"- a\n- b\n"},
        "segments/x.yaml, line 1: expected a mapping",
    ),
    "bad yaml": (
        {"segments/x.yaml": b"where: [unclosed\n"},
        "segments/x.yaml, line 2: not valid YAML",
    ),
    "bad operator": (
        {"segments/x.yaml": b"where:\n  attribute: city\n  like: Utrecht\n"},
        "segments/x.yaml, line 3, key 'like': unknown operator 'like' for an attribute",
    ),
    "unknown key": (
        {"segments/x.yaml": b"wehre: {}\n"},
        "segments/x.yaml, line 1, key 'wehre': unknown key",
    ),
    "a list campaign": (
        {"campaigns/x.yaml": b"- template: mail\n"},
        "campaigns/x.yaml, line 1: a campaign file must be a mapping",
    ),
    "a binary campaign": (
        {"campaigns/x.yaml": b"\xff\xfe\x00"},
        "campaigns/x.yaml, line 1: not UTF-8 text",
    ),
    "impossible date": (
        {"campaigns/x.yaml": b"template: mail\nschedule:\n  dates:\n    - 2027-02-30\n"},
        "campaigns/x.yaml, line 4, key 'dates': '2027-02-30' is not a date",
    ),
    "month 13": (
        {"campaigns/x.yaml": b"template: mail\nschedule:\n  rrule: FREQ=YEARLY;BYMONTH=13\n"},
        "campaigns/x.yaml, line 3, key 'rrule': the rule 'FREQ=YEARLY;BYMONTH=13' matches no day",
    ),
    "interval 0 (dateutil loops forever)": (
        {"campaigns/x.yaml": b"template: mail\nschedule:\n  rrule: FREQ=WEEKLY;INTERVAL=0\n"},
        "campaigns/x.yaml, line 3, key 'rrule': INTERVAL=0 is not a whole number of 1 or more",
    ),
    "a time zone in the rule": (
        {
            "campaigns/x.yaml": b'template: mail\nschedule:\n  rrule: "DTSTART;TZID=Europe/Paris:'
            b'20270101T090000\\nRRULE:FREQ=MONTHLY"\n'
        },
        "campaigns/x.yaml, line 3, key 'rrule': a time zone in the rule is not supported",
    ),
    "missing template": (
        {"campaigns/x.yaml": b"template: gone\n"},
        "campaigns/x.yaml, line 1, key 'template': no template 'gone'",
    ),
    "missing segment": (
        {"campaigns/x.yaml": b"template: mail\nsegment: gone\n"},
        "campaigns/x.yaml, line 2, key 'segment': no segment 'gone'",
    ),
    "jinja syntax": (
        {"templates/x.html": b"{% block subject %}x{% endblock %}\n{% if %}\n"},
        "templates/x.html, line 2: template syntax error",
    ),
    "unknown filter": (
        {"templates/x.html": b"{% block subject %}x{% endblock %}{{ 1 | shout }}"},
        "templates/x.html, line 1: template syntax error: No filter named 'shout'",
    ),
    "missing include": (
        {"templates/x.html": b'{% block subject %}x{% endblock %}\n\n{% include ["a", "b"] %}'},
        "templates/x.html, line 3: {% include %} names 'a or b', which does not exist",
    ),
    "a campaign's mail without a subject": (
        {"templates/x.html": b"<p>no subject</p>", "campaigns/x.yaml": b"template: x\n"},
        "templates/x.html: the mail sets no subject",
    ),
    "binary template": (
        {"templates/x.txt": b"\n\n\xc3\x28"},
        "templates/x.txt, line 3: not UTF-8 text",
    ),
    "binary trouw.toml": (
        {"trouw.toml": b"[project]\n\xff"},
        "trouw.toml, line 2: not UTF-8 text",
    ),
    "bad toml": ({"trouw.toml": b"[project\n"}, "trouw.toml, line 1: not valid TOML"),
    "a list for a table": (
        {"trouw.toml": b"policy = [1]\n"},
        "trouw.toml, line 1, key 'policy': expected a table",
    ),
    "an unknown time zone": (
        {"trouw.toml": b'[project]\ntimezone = "Mars/Olympus"\n'},
        "trouw.toml, line 2, key 'project.timezone': unknown time zone",
    ),
}


@pytest.mark.parametrize("case", HOSTILE, ids=list(HOSTILE))
def test_hostile_input_is_bad_input_naming_file_and_line(project_dir: Path, case: str) -> None:
    files, message = HOSTILE[case]
    write_files(project_dir, GOOD)
    for name, content in files.items():
        (project_dir / name).write_bytes(content)
    result = check(project_dir)
    assert result.exit_code == 2, result.output
    assert message in result.stderr, result.stderr


YAMLISH = st.lists(
    st.sampled_from(
        [
            "template: mail",
            "segment: families",
            "kind: lifecycle",
            "priority: 5",
            "schedule:",
            "  rrule: FREQ=YEARLY",
            "  dates: [2027-02-30]",
            "  - 2027-01-01",
            "trigger: {inactive: 3m}",
            "steps:",
            "  - {after: 1d, template: mail}",
            "  - 5",
            "variants:",
            "  - {segment: x}",
            "where:",
            "  all:",
            "    - event: purchase",
            "    - attribute: city",
            "      in: []",
            "  not: {nps: fan}",
            "- a",
            "{",
            ":",
            "'",
            "valid_for: 0d",
            "on_defer: maybe",
            "  count: {at_least: -1}",
            "\t",
            "&a [*a]",
        ]
    ),
    max_size=8,
).map("\n".join)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(text=YAMLISH | st.text(max_size=60))
def test_no_campaign_or_segment_text_ends_in_a_traceback(tmp_path: Path, text: str) -> None:
    path = tmp_path / "x.yaml"
    path.write_text(text, encoding="utf-8")
    for read in (read_campaign, read_segment):
        found = Problems()
        read(path, found)
        for problem in found:
            assert problem.path == path and problem.line is not None, str(problem)


@pytest.mark.slow
def test_check_of_the_example_project_takes_under_a_second() -> None:
    # Measured in CPU seconds of the child (user + system), best of three: the machine is
    # shared, and a busy neighbour stretches the wall clock, not the work check does. With
    # SQLAlchemy imported through package __init__s it took 0.85-1.25 s; without, 0.55-0.8 s
    # (both on the loaded, shared 2-core machine). What pins the imports is
    # test_startup.py::test_check_imports_no_database_library.
    best = float("inf")
    for _ in range(3):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        done = subprocess.run(
            [sys.executable, "-m", "trouw", "--project", str(REPO), "check"],
            capture_output=True,
            text=True,
            check=False,
        )
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        best = min(best, cpu)
        assert done.returncode == 0, done.stderr
    assert best < 1.0, f"trouw check took {best:.2f} s of CPU on the example project"
