"""`trouw init`: copy the starter project (package data in `starter/`).

The starter is a project whose first plan has sends as soon as it has
contacts: a monthly newsletter beside the welcome journey, Dutch mails with
English twins in a layout with a viewport and the postal address, example
contacts to import, a .gitignore and a pre-commit hook that runs `trouw check`.
"""

from __future__ import annotations

from datetime import date
from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

from trouw.errors import ProjectError
from trouw.project import SETTINGS_FILE

# Package data leaves out dot-files, so the starter keeps them under another name.
RENAMED = {"gitignore": ".gitignore"}
# Files whose missing lines are added to a copy already there (a repository's .gitignore).
MERGED = (".gitignore",)
# Files in these starter folders are scripts: written executable.
SCRIPT_FOLDERS = ("hooks",)
EXAMPLE_CONTACTS = Path("examples") / "contacts.csv"
PRE_COMMIT = Path("hooks") / "pre-commit"


def create_project(directory: Path) -> list[Path]:
    """Write the starter project into `directory`; refuse to overwrite a project.

    Files already in the folder (a README) are kept; an existing .gitignore
    gets the starter's lines it lacks, so the database never goes into git.
    """
    if (directory / SETTINGS_FILE).exists():
        raise ProjectError(
            f"{directory} already holds a project",
            path=directory / SETTINGS_FILE,
            fix="choose an empty or new folder",
        )
    written: list[Path] = []
    _copy(files("trouw") / "starter", directory, written, script=False)
    return written


def plan_year_for(today: date) -> int:
    """The year a marketer plans now: the coming one from November on (like the cron job)."""
    return today.year + 1 if today.month >= 11 else today.year


def _copy(source: Traversable, target: Path, written: list[Path], *, script: bool) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for item in sorted(source.iterdir(), key=lambda item: item.name):
        if item.name.startswith((".", "__")):
            continue
        path = target / RENAMED.get(item.name, item.name)
        if item.is_dir():
            _copy(item, path, written, script=script or item.name in SCRIPT_FOLDERS)
        elif not path.exists():
            path.write_bytes(item.read_bytes())
            if script:
                path.chmod(0o755)
            written.append(path)
        elif path.name in MERGED and _merge_lines(path, item.read_text(encoding="utf-8")):
            written.append(path)


def _merge_lines(path: Path, starter: str) -> bool:
    """Append the starter's lines that `path` lacks (comments with them); True if any."""
    have = path.read_text(encoding="utf-8")
    known = {line.strip() for line in have.splitlines()}
    missing = [line for line in starter.splitlines() if line.strip() and line.strip() not in known]
    if not any(not line.startswith("#") for line in missing):
        return False
    separator = "" if not have or have.endswith("\n") else "\n"
    path.write_text(have + separator + "\n".join(missing) + "\n", encoding="utf-8")
    return True
