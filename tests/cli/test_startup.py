"""The command line starts in a blink: commands are imported only when they run."""

from __future__ import annotations

import subprocess
import sys
import time

import click
import pytest

from trouw.cli import COMMANDS, main


def test_every_listed_command_loads_under_its_name() -> None:
    context = click.Context(main)
    for name, (_, summary) in COMMANDS.items():
        command = main.get_command(context, name)
        assert command is not None and command.name == name
        assert command.get_short_help_str(limit=200) == summary


def _best_of(runs: int, *argv: str) -> float:
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, *argv], check=True, capture_output=True)
        best = min(best, time.perf_counter() - start)
    return best


@pytest.mark.slow
def test_help_starts_about_as_fast_as_python_itself() -> None:
    python = _best_of(9, "-c", "pass")
    help_ = _best_of(9, "-m", "trouw", "--help")
    # Importing the commands' libraries (SQLAlchemy, Jinja, rich tables) cost 0.6 s, six times
    # Python's own start; the lazy command table keeps `trouw --help` within a few tens of ms.
    assert help_ / python < 2.5, f"trouw --help {help_:.3f} s, python -c pass {python:.3f} s"


def test_check_imports_no_database_library() -> None:
    # `trouw check` reads files only: SQLAlchemy (a quarter second to import) and link
    # signing stay out of its imports, through every package __init__ on the way.
    code = (
        "import sys, trouw.checking, trouw.cli.check; "
        "print(' '.join(m for m in ('sqlalchemy', 'itsdangerous') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert done.stdout.split() == [], f"import trouw.checking loads {done.stdout.strip()}"
