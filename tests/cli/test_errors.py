"""Exit codes: 2 for bad input with a message naming the fix, 1 when the work fails."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Cli


def test_an_unreachable_database_is_a_failure_of_the_work(project_dir: Path) -> None:
    cli = Cli(project_dir, "postgresql+psycopg://nobody@127.0.0.1:1/nothing")
    result = cli("contacts", "show", "c1")
    assert result.exit_code == 1
    assert "database error" in result.stderr


def test_a_malformed_database_url_is_bad_input(project_dir: Path) -> None:
    result = Cli(project_dir, "not a url")("contacts", "show", "c1")
    assert result.exit_code == 2
    assert "is not a database URL" in result.stderr
    assert "fix:" in result.stderr


def test_a_missing_project_says_how_to_make_one(tmp_path: Path) -> None:
    result = Cli(tmp_path / "nowhere", f"sqlite:///{tmp_path / 'x.db'}")("contacts", "show", "c1")
    assert result.exit_code == 2
    assert "trouw init" in result.stderr
