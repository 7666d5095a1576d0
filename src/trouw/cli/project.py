"""`trouw init DIR`."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def init_command(directory: Path) -> None:
    """Create a new campaign project in DIRECTORY.

    Writes trouw.toml, segments/, templates/ (Dutch mails with English twins),
    campaigns/ (a monthly newsletter and a welcome journey), example contacts
    in examples/contacts.csv, a .gitignore and hooks/pre-commit (runs
    `trouw check`), then shows the first steps.

    \b
    Example:
      trouw init my-shop
    """
    import shlex
    from datetime import date

    from trouw.cli.output import console
    from trouw.scaffold import EXAMPLE_CONTACTS, PRE_COMMIT, create_project, plan_year_for

    written = create_project(directory)
    year = plan_year_for(date.today())
    console.print(f"created a trouw project in {directory} ({len(written)} files)")
    steps: list[tuple[str, str]] = []
    if directory.resolve() != Path.cwd().resolve():
        steps.append((f"cd {shlex.quote(str(directory))}", ""))
    steps += [
        (
            f"trouw import contacts {EXAMPLE_CONTACTS}",
            "three example customers; your own export takes the same columns",
        ),
        (f"trouw plan {year}", "the year plan: the monthly newsletter, per contact"),
        (f"trouw calendar {year}", "the plan per day"),
        ("trouw preview newsletter", "the mail each contact gets"),
        (f"cp {PRE_COMMIT} .git/hooks/", "in a git repository: `trouw check` before each commit"),
    ]
    console.print("\n[bold]Next[/bold]")
    width = max(len(command) for command, _ in steps)
    for command, why in steps:
        console.print(f"  {command:<{width}}   [dim]{why}[/dim]" if why else f"  {command}")
    console.print(
        "\nTo look around a generated shop first: `trouw demo`. It works in its own database, "
        "[bold].trouw/demo.db[/bold], never in this project's, and `trouw demo --clean` "
        "removes it."
    )
