"""`[bounces]` in trouw.toml: defaults, and every bad value named by `trouw check` at once."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import SETTINGS, write_files
from trouw.problems import Problems
from trouw.project import Bounces, load_project


def test_defaults_and_values(project_dir: Path) -> None:
    assert load_project(project_dir).settings.bounces == Bounces(3, "30d", "any-case")
    extra = '[bounces]\nsoft_limit = 5\nsoft_window = "2w"\nlocal_part = "exact"\n'
    write_files(project_dir, {"trouw.toml": SETTINGS + extra})
    assert load_project(project_dir).settings.bounces == Bounces(5, "2w", "exact")


def test_every_bad_value_is_a_problem_with_line_key_and_fix(project_dir: Path) -> None:
    extra = (
        '[bounces]\nsoft_limit = 0\nsoft_window = "forever"\nlocal_part = "ANY"\n'
        'folder = "../x"\nsoft = 1\n'
    )
    write_files(project_dir, {"trouw.toml": SETTINGS + extra})
    problems = Problems()
    settings = load_project(project_dir, problems).settings
    assert settings.bounces == Bounces()  # each bad value keeps its default
    found = {problem.key: (problem.line, problem.fix) for problem in problems}
    assert set(found) == {
        "bounces.soft_limit",
        "bounces.soft_window",
        "bounces.local_part",
        "bounces.folder",
        "bounces.soft",
    }
    assert found["bounces.soft_limit"][0] == 10
    assert all(fix for _, fix in found.values())
