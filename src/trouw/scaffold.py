"""`trouw init`: copy the starter project (package data in `starter/`)."""

from __future__ import annotations

from importlib.resources import files
from importlib.resources.abc import Traversable
from pathlib import Path

from trouw.errors import ProjectError
from trouw.project import SETTINGS_FILE


def create_project(directory: Path) -> list[Path]:
    """Write the starter project into `directory`; refuse to overwrite a project."""
    if (directory / SETTINGS_FILE).exists():
        raise ProjectError(
            f"{directory} already holds a project",
            path=directory / SETTINGS_FILE,
            fix="choose an empty or new folder",
        )
    written: list[Path] = []
    _copy(files("trouw") / "starter", directory, written)
    gitignore = directory / ".gitignore"
    if not gitignore.exists():
        gitignore.write_text(".trouw/\n", encoding="utf-8")
        written.append(gitignore)
    return written


def _copy(source: Traversable, target: Path, written: list[Path]) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        if item.name.startswith((".", "__")):
            continue
        if item.is_dir():
            _copy(item, target / item.name, written)
        elif not (target / item.name).exists():
            (target / item.name).write_bytes(item.read_bytes())
            written.append(target / item.name)
