"""Finding a project and validating trouw.toml."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import SETTINGS, write_files
from trouw.errors import ProjectError
from trouw.project import find_project


def test_found_from_a_subfolder(project_dir: Path) -> None:
    deep = project_dir / "templates" / "spring"
    deep.mkdir(parents=True)
    project = find_project(start=deep)
    assert project.root == project_dir.resolve()
    assert project.settings.name == "Test Shop"


def test_missing_project_says_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(ProjectError, match="trouw init"):
        find_project(start=tmp_path)
    with pytest.raises(ProjectError, match=r"no trouw\.toml in"):
        find_project(explicit=tmp_path)


def test_database_url_precedence(project_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TROUW_DATABASE_URL", raising=False)
    project = find_project(explicit=project_dir)
    assert project.database_url() == f"sqlite:///{project_dir.resolve()}/.trouw/trouw.db"
    write_files(
        project_dir,
        {
            "trouw.toml": SETTINGS.replace(
                'locale = "nl"', 'locale = "nl"\ndatabase = "sqlite:///from-toml.db"'
            )
        },
    )
    project = find_project(explicit=project_dir)
    assert project.database_url() == "sqlite:///from-toml.db"
    monkeypatch.setenv("TROUW_DATABASE_URL", "sqlite:///from-env.db")
    assert project.database_url() == "sqlite:///from-env.db"
    assert project.database_url("sqlite:///from-flag.db") == "sqlite:///from-flag.db"


@pytest.mark.parametrize(
    ("extra", "line", "key", "expected"),
    [
        ("[policy]\nmax_per_weak = 2\n", 11, "policy.max_per_weak", "unknown setting"),
        ('[policy]\nmax_per_week = "two"\n', 11, "policy.max_per_week", "a whole number"),
        ("[policy]\nmax_per_week = true\n", 11, "policy.max_per_week", "a whole number"),
        ('[policy]\nmin_gap = "2m"\n', 11, "policy.min_gap", "ambiguous"),
        ('[policy]\nquiet_days = ["sundays"]\n', 11, "policy.quiet_days", "weekday"),
        ('[policy]\nsend_window = "9-17"\n', 11, "policy.send_window", "HH:MM-HH:MM"),
        ("[policy]\nmax_per_week = -1\n", 11, "policy.max_per_week", "no promotional mail"),
        ("[policy]\nmax_per_month = 0\n", 11, "policy.max_per_month", "at least 1"),
        ('[policy]\nquiet_days = ["holidays:XX"]\n', 11, "policy.quiet_days", "'XX'"),
        ("[letters]\nfolder = 'x'\n", 11, "letters.folder", "unknown"),
        ("[polcy]\n", 10, "polcy", "unknown setting"),
    ],
)
def test_bad_settings_name_file_line_and_key(
    project_dir: Path, extra: str, line: int, key: str, expected: str
) -> None:
    write_files(project_dir, {"trouw.toml": SETTINGS + "\n" + extra})
    with pytest.raises(ProjectError) as caught:
        find_project(explicit=project_dir)
    message = str(caught.value)
    assert message.startswith(f"{project_dir.resolve() / 'trouw.toml'}, line {line}, key '{key}'")
    assert expected in message
    assert "fix:" in message


def test_bad_timezone_and_bad_toml(project_dir: Path) -> None:
    write_files(project_dir, {"trouw.toml": SETTINGS.replace("Europe/Amsterdam", "Mars/Olympus")})
    with pytest.raises(ProjectError, match=r"line 3, key 'project\.timezone'"):
        find_project(explicit=project_dir)
    write_files(project_dir, {"trouw.toml": "[project\nname = 1"})
    with pytest.raises(ProjectError, match="not valid TOML"):
        find_project(explicit=project_dir)


def test_the_repository_is_itself_a_valid_project() -> None:
    root = Path(__file__).resolve().parent.parent
    project = find_project(explicit=root)
    assert project.settings.name == "Huis & Tuin"
    assert project.settings.policy.quiet_days == ("sunday", "holidays:NL")


def test_brand_colour_is_read_and_a_bad_one_is_named(project_dir: Path) -> None:
    toml = project_dir / "trouw.toml"
    text = toml.read_text()
    toml.write_text(text + '\n[brand]\ncolor = "#2F6B3A"\n')
    assert find_project(project_dir).settings.brand.color == "#2f6b3a"
    for bad in ('"green"', '"#12345"', "3"):
        toml.write_text(text + f"\n[brand]\ncolor = {bad}\n")
        with pytest.raises(ProjectError, match=r"key 'brand\.color'"):
            find_project(project_dir)
    toml.write_text(text + '\n[brand]\nlogo = "x.png"\n')
    with pytest.raises(ProjectError, match="unknown setting"):
        find_project(project_dir)
