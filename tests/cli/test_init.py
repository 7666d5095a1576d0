"""`trouw init`: a starter project whose first plan has sends, and the right next step."""

from __future__ import annotations

import os
import re
import subprocess
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from trouw.cli import main
from trouw.scaffold import plan_year_for

YEAR = plan_year_for(date.today())


@pytest.fixture(autouse=True)
def _no_database_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TROUW_DATABASE_URL", raising=False)


def trouw(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


@pytest.fixture
def shop(tmp_path: Path) -> Path:
    shop = tmp_path / "my-shop"
    result = trouw("init", str(shop))
    assert result.exit_code == 0, result.output
    return shop


def test_the_starters_first_plan_has_sends(shop: Path) -> None:
    checked = trouw("--project", str(shop), "templates", "check")
    assert checked.exit_code == 0, checked.output
    assert "0 problems" in checked.stdout

    examples = str(shop / "examples" / "contacts.csv")
    assert trouw("--project", str(shop), "import", "contacts", examples).exit_code == 0
    checked = trouw("--project", str(shop), "templates", "check")
    assert checked.exit_code == 0, checked.output
    assert "locales: en, nl), 0 problems" in checked.stdout  # Dutch mails, English twins
    planned = trouw("--project", str(shop), "plan", str(YEAR), "--as-of", f"{YEAR - 1}-12-01")
    assert planned.exit_code == 0, planned.output
    found = re.search(r"(\d+) contacts, ([\d,]+) sends", planned.stdout)
    assert found, planned.stdout
    assert int(found.group(1)) == 3
    assert int(found.group(2).replace(",", "")) == 3 * 12  # a newsletter a month, for each
    assert "newsletter" in planned.stdout
    assert (shop / ".trouw" / "trouw.db").is_file()  # the project's own, embedded database


def test_the_starters_mails_speak_the_contacts_language(shop: Path) -> None:
    examples = str(shop / "examples" / "contacts.csv")
    assert trouw("--project", str(shop), "import", "contacts", examples).exit_code == 0
    dutch = trouw("--project", str(shop), "preview", "newsletter", "--contact", "example-1")
    english = trouw("--project", str(shop), "preview", "newsletter", "--contact", "example-2")
    assert dutch.exit_code == 0 and english.exit_code == 0, dutch.output + english.output
    assert "Nieuws van My Shop" in dutch.stdout and "Meld je hier af" in dutch.stdout
    assert "News from My Shop" in english.stdout and "Unsubscribe here" in english.stdout
    for shown in (dutch.stdout, english.stdout):
        assert "Street 1, 1234 AB Town" in shown  # the postal address from trouw.toml

    layout = (shop / "templates" / "layout.html").read_text(encoding="utf-8")
    assert '<meta name="viewport" content="width=device-width, initial-scale=1">' in layout
    assert '{% include "trouw/footer.html" %}' in layout  # unsubscribe and postal address


def test_init_writes_a_gitignore_and_a_pre_commit_hook(shop: Path) -> None:
    ignored = (shop / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert ".trouw/" in ignored  # the database, the demo's database and files
    assert "letters/" in ignored  # names and addresses
    hook = shop / "hooks" / "pre-commit"
    assert os.access(hook, os.X_OK)
    text = hook.read_text(encoding="utf-8")
    assert text.startswith("#!/bin/sh\n")
    assert "exec trouw check\n" in text
    assert subprocess.run(["sh", "-n", str(hook)], check=False).returncode == 0
    checked = trouw("--project", str(shop), "check")  # what the hook runs: the starter passes
    assert checked.exit_code == 0, checked.output


def test_init_names_the_next_steps_and_keeps_the_demo_apart(tmp_path: Path) -> None:
    shop = tmp_path / "my-shop"
    result = trouw("init", str(shop))
    assert result.exit_code == 0, result.output
    lines = [line.strip() for line in result.stdout.splitlines()]
    assert f"cd {shop}" in lines
    steps = [line.split("   ")[0] for line in lines]
    assert "trouw import contacts examples/contacts.csv" in steps
    assert f"trouw plan {YEAR}" in steps
    assert steps.index("trouw import contacts examples/contacts.csv") < steps.index(
        f"trouw plan {YEAR}"
    )
    assert "&& trouw demo" not in result.stdout  # the demo is no step in a real project
    assert "its own database" in result.stdout and ".trouw/demo.db" in result.stdout


def test_init_refuses_a_project_and_keeps_files_already_there(tmp_path: Path) -> None:
    folder = tmp_path / "repo"
    folder.mkdir()
    (folder / "README.md").write_text("# Our shop\n", encoding="utf-8")
    (folder / ".gitignore").write_text("node_modules/\n.trouw/\n", encoding="utf-8")
    result = trouw("init", str(folder))
    assert result.exit_code == 0, result.output
    assert (folder / "README.md").read_text(encoding="utf-8") == "# Our shop\n"
    ignored = (folder / ".gitignore").read_text(encoding="utf-8").splitlines()
    assert ignored[:2] == ["node_modules/", ".trouw/"]  # kept, and the missing lines added
    assert ignored.count(".trouw/") == 1 and "letters/" in ignored
    again = trouw("init", str(folder))
    assert again.exit_code == 2
    assert "already holds a project" in again.stderr
    assert "fix: choose an empty or new folder" in again.stderr


def test_plan_year_is_the_coming_one_from_november() -> None:
    assert plan_year_for(date(2026, 10, 31)) == 2026
    assert plan_year_for(date(2026, 11, 1)) == 2027
